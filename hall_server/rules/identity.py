"""Personal data rules (PIPL): the raw ID number is never stored.

We keep a keyed hash (HMAC-SHA256 with the server's secret) for per-person limits and look-ups, and a
masked form for staff. Names on public screens are masked too.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

_ID_RE = re.compile(r"^\d{17}[\dX]$")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


class InvalidIdNumber(ValueError):
    pass


def normalise_id(id_number: str) -> str:
    """Validate an 18-digit resident ID number (ISO 7064 MOD 11-2) and return it upper-cased."""
    n = id_number.strip().upper()
    if not _ID_RE.match(n):
        raise InvalidIdNumber("身份证号码应为18位 (expected 17 digits and a check character)")
    total = sum(int(c) * w for c, w in zip(n[:17], _WEIGHTS))
    if _CHECK[total % 11] != n[17]:
        raise InvalidIdNumber("身份证号码校验位错误 (check character does not match)")
    try:
        birth_date(n)
    except ValueError:
        raise InvalidIdNumber("身份证号码中的出生日期无效 (invalid birth date)") from None
    return n


def person_hash(id_number: str, key: bytes) -> str:
    return hmac.new(key, normalise_id(id_number).encode(), hashlib.sha256).hexdigest()


def mask_id(id_number: str) -> str:
    """3201**********1234: region and last four digits only."""
    n = normalise_id(id_number)
    return n[:4] + "*" * 10 + n[-4:]


def mask_name(name: str) -> str:
    """张*三 for three characters, 张* for two: safe for a public screen."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def birth_date(id_number: str) -> dt.date:
    n = id_number.strip()
    return dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14]))


def age_on(id_number: str, day: dt.date) -> int:
    b = birth_date(id_number)
    return day.year - b.year - ((day.month, day.day) < (b.month, b.day))

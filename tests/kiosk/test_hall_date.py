"""The kiosk's screen goes by the hall's date: a citizen turning 60 today in the hall is shown the elderly
badge, even on a kiosk PC whose clock is set to a time zone where it is still (or already) another day."""
from __future__ import annotations

import datetime as dt
import os
import time
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest

from device_drivers.sam import id_check_char
from hall_server.rules import identity
from kiosk_client.devices import Card
from kiosk_client.kiosk import hall_today

HALL_ZONE = "Asia/Shanghai"
CATALOGUE = {"hall": {"timezone": HALL_ZONE, "elderly_age": 60}}


def id_number(born: dt.date) -> str:
    """A valid resident ID number (ISO 7064 MOD 11-2 check character) of someone born on ``born``."""
    body = f"110105{born:%Y%m%d}123"
    return identity.normalise_id(body + id_check_char(body))


@pytest.fixture
def pc_on_another_day() -> Iterator[dt.date]:
    """The PC's clock in a time zone whose date differs from the hall's right now (Honolulu is 18 hours
    behind Shanghai, Kiritimati 6 hours ahead: one of them is always on another date); yields the hall's date."""
    hall_date = dt.datetime.now(ZoneInfo(HALL_ZONE)).date()
    zone = next(z for z in ("Pacific/Honolulu", "Pacific/Kiritimati")
                if dt.datetime.now(ZoneInfo(z)).date() != hall_date)
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        if dt.date.today() == hall_date:  # the zone's date changed between the two readings
            pytest.skip("the hall's date changed while the fixture was set up")
        yield hall_date
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def sixtieth_birthday_on(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 60)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 60, day=28)


def test_the_elderly_badge_turns_on_the_halls_date_not_the_pcs(pc_on_another_day: dt.date) -> None:
    hall_date = pc_on_another_day
    assert hall_today(CATALOGUE) == hall_date != dt.date.today()  # what the kiosk's status passes the card
    born = sixtieth_birthday_on(hall_date)
    card = Card(id_number(born), "王测试", born, read_at=0.0, seq=1)
    assert card.public(60, hall_today(CATALOGUE))["elderly"] is True  # 60 today, in the hall
    assert card.public(60, hall_date - dt.timedelta(days=1))["elderly"] is False  # the day before
    assert card.public(60, hall_date)["id_masked"] == card.id_number[:4] + "*" * 10 + card.id_number[-4:]


def test_without_a_hall_time_zone_the_pcs_date_is_used() -> None:
    assert hall_today({"hall": {}}) == dt.date.today()
    assert hall_today(None) == dt.date.today()

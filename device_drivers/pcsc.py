"""PC/SC card readers: card UIDs and the social security card (社保卡), as typed events.

Two layers, kept apart:

* A pure codec on bytes: command APDUs (GET UID ``FF CA 00 00 00``, SELECT of the 社保卡 application
  ``sx1.sh.社会保障``, SELECT EF, READ RECORD), response APDUs with their status words mapped to
  precise errors, an ISO 7816-4 SIMPLE-TLV parser, and :func:`read_social_security_card`, which runs
  the read sequence over any ``transmit(command) -> response`` function (a real card, or the virtual
  card's ``process_apdu`` in tests).
* :class:`PcscReaderService`, one monitor thread over pcsc-lite (pyscard's low-level ``scard``
  module) that notices readers coming and going and cards inserted and removed, reads each card and
  publishes :data:`PcscEvent` objects plus online/offline health.

pyscard is imported lazily: this module imports on a machine without pyscard or pcscd, and
:func:`is_usable` tells whether the service can run.

The 社保卡 layout (public, MOHRSS 社会保障卡规范, as read by deployed readers): after selecting the
application, EF05 holds the card's records (01 卡识别码, 02 卡类别, 03 规范版本, 04 初始化机构编号,
05 发卡日期, 06 卡有效期, 07 社会保障卡卡号) and EF06 the holder's (08 社会保障号码, 09 姓名,
0A 性别, 0B 民族, 0C 出生地, 0D 出生日期, 4E 姓名扩展). Each record is ``tag len value``.
"""
from __future__ import annotations

import datetime as _dt
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Union

from .health import Health, HealthEvent, HealthReporter

log = logging.getLogger(__name__)

KIND = "pcsc"

# ---------------------------------------------------------------------------------------------
# Command APDUs
# ---------------------------------------------------------------------------------------------

SSSE_AID = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")  # "sx1.sh." + 社会保障 in GBK
EF_CARD = 0xEF05  # card records (卡号, 卡识别码, dates)
EF_HOLDER = 0xEF06  # holder records (社会保障号码, 姓名, ...)

GET_UID = bytes.fromhex("FFCA000000")  # PC/SC part 3 pseudo-APDU, answered by the reader itself


def select_aid(aid: bytes = SSSE_AID) -> bytes:
    """SELECT by DF name (``00 A4 04 00 Lc AID``), the form deployed 社保卡 readers send."""
    if not 1 <= len(aid) <= 16:
        raise ValueError(f"an AID has 1..16 bytes, got {len(aid)}")
    return bytes([0x00, 0xA4, 0x04, 0x00, len(aid)]) + aid


def select_ef(fid: int) -> bytes:
    """SELECT an EF under the current DF by its 2-byte file id (``00 A4 02 00 02 FID``)."""
    if not 0 <= fid <= 0xFFFF:
        raise ValueError(f"a file id has 2 bytes, got {fid:#x}")
    return bytes([0x00, 0xA4, 0x02, 0x00, 0x02]) + fid.to_bytes(2, "big")


def read_record(number: int, le: int = 0) -> bytes:
    """READ RECORD ``number`` of the current EF (P2 = 04); Le 00 asks for the whole record."""
    if not 1 <= number <= 0xFE:
        raise ValueError(f"record numbers are 1..254, got {number}")
    if not 0 <= le <= 0xFF:
        raise ValueError(f"short Le is 0..255, got {le}")
    return bytes([0x00, 0xB2, number, 0x04, le])


def get_response(le: int) -> bytes:
    """GET RESPONSE, fetching what a T=0 card announced with ``61 xx``."""
    return bytes([0x00, 0xC0, 0x00, 0x00, le & 0xFF])


def with_le(command: bytes, le: int) -> bytes:
    """The same case-2 command with another Le, for a card that answered ``6C xx``."""
    return command[:4] + bytes([le & 0xFF]) if len(command) == 5 else command


# ---------------------------------------------------------------------------------------------
# Responses and status words
# ---------------------------------------------------------------------------------------------

class PcscError(Exception):
    """Base of every error this module raises."""


class PcscUnavailableError(PcscError):
    """pyscard is missing: the service cannot run on this machine."""


class CardTransportError(PcscError):
    """The reader or pcscd failed to carry an APDU (card pulled out, reader unplugged...)."""


class MalformedResponseError(PcscError):
    """A response APDU shorter than its two status bytes."""


# ISO 7816-4 status words, in words an operator understands.
_STATUS_TEXT: dict[int, str] = {
    0x9000: "成功",
    0x6281: "返回的数据可能已损坏",
    0x6282: "读到文件或记录末尾",
    0x6283: "所选文件已失效",
    0x6581: "卡片存储器故障",
    0x6700: "长度错误",
    0x6881: "不支持该逻辑通道",
    0x6882: "不支持安全报文",
    0x6981: "命令与文件结构不兼容",
    0x6982: "安全状态不满足（需要先验证密码）",
    0x6983: "密码已锁定",
    0x6984: "引用数据无效",
    0x6985: "使用条件不满足",
    0x6986: "不允许此命令（未选择文件）",
    0x6A80: "数据域参数错误",
    0x6A81: "功能不支持",
    0x6A82: "文件或应用未找到",
    0x6A83: "记录未找到",
    0x6A84: "文件空间不足",
    0x6A86: "参数 P1 P2 错误",
    0x6A88: "引用数据未找到",
    0x6B00: "参数 P1 P2 错误",
    0x6D00: "指令不支持",
    0x6E00: "命令类别不支持",
    0x6F00: "卡片内部错误（无具体原因）",
}


def describe_status(sw1: int, sw2: int) -> str:
    """The meaning of a status word, in Chinese for the operator's screen."""
    sw = (sw1 << 8) | sw2
    if sw in _STATUS_TEXT:
        return _STATUS_TEXT[sw]
    if sw1 == 0x61:
        return f"还有 {sw2} 字节数据待取"
    if sw1 == 0x6C:
        return f"长度错误，应为 {sw2} 字节"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"密码错误，还可尝试 {sw2 & 0x0F} 次"
    if sw1 == 0x62 or sw1 == 0x63:
        return "警告：卡片状态已改变" if sw1 == 0x63 else "警告：卡片状态未改变"
    if sw1 == 0x64 or sw1 == 0x65:
        return "执行出错"
    if sw1 == 0x67:
        return "长度错误"
    if sw1 == 0x68:
        return "不支持的功能"
    if sw1 == 0x69:
        return "命令不允许"
    if sw1 == 0x6A:
        return "参数错误"
    return "未知状态"


class CardStatusError(PcscError):
    """The card answered a command with an error status word."""

    def __init__(self, sw1: int, sw2: int, context: str = "") -> None:
        self.sw1 = sw1
        self.sw2 = sw2
        self.meaning = describe_status(sw1, sw2)
        self.context = context
        prefix = f"{context}失败：" if context else ""
        super().__init__(f"{prefix}{self.meaning} (SW {sw1:02X}{sw2:02X})")

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2


class NotSocialSecurityCardError(CardStatusError):
    """The card has no 社保卡 application (SELECT answered 6A82 or similar)."""

    def __init__(self, sw1: int, sw2: int) -> None:
        super().__init__(sw1, sw2, "选择社保应用")
        self.args = (f"此卡不是社会保障卡：{self.meaning} (SW {sw1:02X}{sw2:02X})",)


class SocialSecurityReadError(PcscError):
    """The 社保卡 application was found but none of its records could be read."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("社保卡信息读取失败：" + "；".join(self.problems))


@dataclass(frozen=True)
class ResponseApdu:
    data: bytes
    sw1: int
    sw2: int

    @classmethod
    def parse(cls, raw: bytes) -> "ResponseApdu":
        if len(raw) < 2:
            raise MalformedResponseError(f"response APDU of {len(raw)} bytes has no status word: {raw.hex()}")
        return cls(bytes(raw[:-2]), raw[-2], raw[-1])

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    def check(self, context: str = "") -> bytes:
        """The data when the card said 90 00, else :class:`CardStatusError`."""
        if not self.ok:
            raise CardStatusError(self.sw1, self.sw2, context)
        return self.data


Transmit = Callable[[bytes], bytes]  # raw command APDU -> raw response APDU (data + SW1 SW2)


def exchange(transmit: Transmit, command: bytes, *, max_rounds: int = 8) -> ResponseApdu:
    """Send one command, absorbing the T=0 dialogue: ``6C xx`` (resend with Le = xx) and
    ``61 xx`` (GET RESPONSE, repeated while more data is announced)."""
    response = ResponseApdu.parse(transmit(command))
    rounds = 0
    if response.sw1 == 0x6C:
        response = ResponseApdu.parse(transmit(with_le(command, response.sw2)))
    data = b""
    while response.sw1 == 0x61:
        rounds += 1
        if rounds > max_rounds:
            raise MalformedResponseError(f"card keeps announcing more data after {max_rounds} GET RESPONSE")
        data += response.data
        response = ResponseApdu.parse(transmit(get_response(response.sw2)))
    return ResponseApdu(data + response.data, response.sw1, response.sw2) if data else response


# ---------------------------------------------------------------------------------------------
# SIMPLE-TLV (ISO 7816-4 5.2.1): tag 1 byte (not 00/FF), length 1 byte or FF + 2 bytes
# ---------------------------------------------------------------------------------------------

class TlvError(PcscError, ValueError):
    """TLV data ends inside a length or a value."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes


def parse_simple_tlv(data: bytes) -> list[Tlv]:
    """Split records into TLVs. 00 and FF where a tag would start are padding (cards pad records
    and files with them) and are skipped; a truncated item raises :class:`TlvError`."""
    items: list[Tlv] = []
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        if tag in (0x00, 0xFF):
            i += 1
            continue
        if i + 1 >= n:
            raise TlvError(f"TLV tag {tag:02X} at offset {i} has no length byte")
        length = data[i + 1]
        start = i + 2
        if length == 0xFF:
            if start + 2 > n:
                raise TlvError(f"TLV tag {tag:02X} at offset {i}: 3-byte length cut short")
            length = int.from_bytes(data[start:start + 2], "big")
            start += 2
        end = start + length
        if end > n:
            raise TlvError(f"TLV tag {tag:02X} at offset {i} announces {length} bytes, {n - start} left")
        items.append(Tlv(tag, bytes(data[start:end])))
        i = end
    return items


def encode_simple_tlv(tag: int, value: bytes) -> bytes:
    if not 0x01 <= tag <= 0xFE:
        raise ValueError(f"SIMPLE-TLV tags are 01..FE, got {tag:#x}")
    if len(value) > 0xFFFF:
        raise ValueError(f"SIMPLE-TLV values hold at most 65535 bytes, got {len(value)}")
    if len(value) < 0xFF:
        return bytes([tag, len(value)]) + value
    return bytes([tag, 0xFF]) + len(value).to_bytes(2, "big") + value


# ---------------------------------------------------------------------------------------------
# The social security card's data
# ---------------------------------------------------------------------------------------------

SEX_NAMES = {"0": "未知", "1": "男", "2": "女", "9": "未说明"}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number_valid(number: str) -> bool:
    """ISO 7064 MOD 11-2 check of an 18-character citizen ID number (check 'X' stands for 10)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return "10X98765432"[total % 11] == number[17].upper()


@dataclass(frozen=True)
class SocialSecurityCardData:
    """What a 社保卡 let us read. Fields stay ``None`` when the card withheld them (for example EF06
    behind a PIN); ``problems`` then says why, and ``extra`` keeps tags this code does not know."""

    card_number: str | None = None  # 社会保障卡卡号 (07)
    name: str | None = None  # 姓名 (09, plus 4E 姓名扩展 when present)
    id_number: str | None = None  # 社会保障号码 = citizen ID number (08)
    sex_code: str | None = None  # 0A: 1 男, 2 女
    nation_code: str | None = None  # 0B: GB 3304 code, "01" = 汉
    birth_place_code: str | None = None  # 0C: 6-digit region code
    birth_date: _dt.date | None = None  # 0D
    card_id_code: str | None = None  # 卡识别码 (01), hex
    card_type: str | None = None  # 卡类别 (02)
    spec_version: str | None = None  # 规范版本 (03), e.g. "3.00"
    issuer_code: str | None = None  # 初始化机构编号 (04), hex
    issue_date: _dt.date | None = None  # 发卡日期 (05)
    expiry_date: _dt.date | None = None  # 卡有效期 (06)
    extra: dict[int, bytes] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def sex(self) -> str | None:
        return SEX_NAMES.get(self.sex_code, "未知") if self.sex_code is not None else None

    @property
    def region_code(self) -> str | None:
        """统筹区编码: the first 6 digits of the card identification code."""
        return self.card_id_code[:6] if self.card_id_code and len(self.card_id_code) >= 6 else None

    @property
    def id_number_valid(self) -> bool:
        return self.id_number is not None and id_number_valid(self.id_number)

    @property
    def complete(self) -> bool:
        """The three fields a hall needs to identify a citizen were all read."""
        return bool(self.card_number and self.name and self.id_number)


def _text(value: bytes) -> str:
    """Card text is GBK (GB18030 decodes it and more), padded with spaces, 00 or FF."""
    return value.rstrip(b"\x00\xff ").decode("gb18030", errors="replace").strip()


def _bcd_date(value: bytes) -> _dt.date:
    """Dates are 4 BCD bytes YYYYMMDD; some issuers write 8 ASCII digits instead."""
    if len(value) == 8 and value.isdigit():
        digits = value.decode("ascii")
    elif len(value) == 4:
        digits = value.hex()
    else:
        raise ValueError(f"a date has 4 BCD or 8 ASCII bytes, got {value.hex().upper()}")
    if not digits.isdigit():
        raise ValueError(f"not a BCD date: {value.hex().upper()}")
    return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))


def _code(value: bytes) -> str:
    """A short code stored either as ASCII digits or as BCD/binary bytes."""
    if value and all(0x30 <= b <= 0x39 for b in value):
        return value.decode("ascii")
    return value.hex().upper()


def _sex_code(value: bytes) -> str:
    if len(value) == 1 and value[0] <= 9:  # stored as a binary digit
        return str(value[0])
    return _code(value)


_FIELDS: dict[int, tuple[str, Callable[[bytes], Any]]] = {
    0x01: ("card_id_code", lambda v: v.hex().upper()),
    0x02: ("card_type", _text),
    0x03: ("spec_version", _text),
    0x04: ("issuer_code", lambda v: v.hex().upper()),
    0x05: ("issue_date", _bcd_date),
    0x06: ("expiry_date", _bcd_date),
    0x07: ("card_number", _text),
    0x08: ("id_number", _text),
    0x09: ("name", _text),
    0x0A: ("sex_code", _sex_code),
    0x0B: ("nation_code", _code),
    0x0C: ("birth_place_code", _code),
    0x0D: ("birth_date", _bcd_date),
}
TAG_NAME_EXTENSION = 0x4E


def decode_social_security(tlvs: Iterable[Tlv], problems: Iterable[str] = ()) -> SocialSecurityCardData:
    """Typed card data from the TLVs of EF05/EF06; a value that does not decode is reported in
    ``problems`` instead of failing the whole card."""
    values: dict[str, Any] = {}
    extra: dict[int, bytes] = {}
    notes = list(problems)
    name_extension = ""
    for item in tlvs:
        if item.tag == TAG_NAME_EXTENSION:
            name_extension = _text(item.value)
            continue
        spec = _FIELDS.get(item.tag)
        if spec is None:
            extra[item.tag] = item.value
            continue
        attr, decode = spec
        if not item.value.strip(b"\x00\xff "):
            continue  # an empty, unpersonalised field
        try:
            values[attr] = decode(item.value)
        except ValueError as exc:
            notes.append(f"标签 {item.tag:02X} 无法解析：{exc}")
            extra[item.tag] = item.value
    if name_extension:
        values["name"] = (values.get("name") or "") + name_extension
    return SocialSecurityCardData(**values, extra=extra, problems=tuple(notes))


def read_uid(transmit: Transmit) -> bytes | None:
    """The contactless UID, or None when the reader or card does not answer GET UID (a contact
    card, or a reader without the PC/SC part 3 pseudo-APDU)."""
    try:
        response = exchange(transmit, GET_UID)
    except MalformedResponseError as exc:
        log.info("GET UID: %s", exc)
        return None
    if not response.ok:
        log.info("GET UID refused: %s", CardStatusError(response.sw1, response.sw2))
        return None
    return response.data or None


def read_social_security_card(transmit: Transmit, *, max_records: int = 16) -> SocialSecurityCardData:
    """Select the 社保卡 application and read every record of EF05 and EF06.

    Raises :class:`NotSocialSecurityCardError` when the application is missing and
    :class:`SocialSecurityReadError` when it is there but nothing was readable; a file withheld
    (6982 behind a PIN, 6A82 missing) only adds to ``problems``.
    """
    selected = exchange(transmit, select_aid(SSSE_AID))
    if not selected.ok:
        raise NotSocialSecurityCardError(selected.sw1, selected.sw2)
    tlvs: list[Tlv] = []
    problems: list[str] = []
    for fid in (EF_CARD, EF_HOLDER):
        label = f"EF{fid & 0xFF:02X}"
        sel = exchange(transmit, select_ef(fid))
        if not sel.ok:
            problems.append(str(CardStatusError(sel.sw1, sel.sw2, f"选择 {label}")))
            continue
        for number in range(1, max_records + 1):
            record = exchange(transmit, read_record(number))
            if record.sw in (0x6A83, 0x6282) and not record.data:
                break  # past the last record
            if not record.ok:
                problems.append(str(CardStatusError(record.sw1, record.sw2, f"读 {label} 记录 {number}")))
                break  # 6982 and friends hold for the whole file
            try:
                tlvs.extend(parse_simple_tlv(record.data))
            except TlvError as exc:
                problems.append(f"{label} 记录 {number} 格式错误：{exc}")
    if not tlvs:
        raise SocialSecurityReadError(problems or ["卡内没有社保记录"])
    return decode_social_security(tlvs, problems)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReaderAdded:
    reader: str


@dataclass(frozen=True)
class ReaderRemoved:
    reader: str


@dataclass(frozen=True)
class CardInserted:
    reader: str
    uid: bytes | None  # None when the reader cannot tell it (contact cards)
    atr: bytes


@dataclass(frozen=True)
class CardRemoved:
    reader: str


@dataclass(frozen=True)
class SocialSecurityCardRead:
    reader: str
    data: SocialSecurityCardData


@dataclass(frozen=True)
class CardError:
    """A card was seen but not read. ``message`` is for the citizen or operator; ``sw`` is the
    status word when the card itself refused (6A82 = not a 社保卡)."""

    reader: str
    message: str
    sw: int | None = None


PcscEvent = Union[ReaderAdded, ReaderRemoved, CardInserted, CardRemoved, SocialSecurityCardRead, CardError]
EventListener = Callable[[PcscEvent], None]

NO_READER = "未检测到读卡器"


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------

def _scard() -> Any:
    try:
        from smartcard import scard  # type: ignore[import-not-found]
    except ImportError as exc:
        raise PcscUnavailableError(
            "未安装 pyscard，无法使用 PC/SC 读卡器 (pip install 'hall-queue[pcsc]')") from exc
    return scard


def is_usable() -> bool:
    """True when pyscard is importable (pcscd itself may still be down: that shows as offline)."""
    try:
        _scard()
    except PcscUnavailableError:
        return False
    return True


class _ServiceGone(Exception):
    """pcscd went away or our context became invalid: drop the context and start over."""


class PcscReaderService:
    """Watches every PC/SC reader (or those whose name contains ``reader_filter``), reads each card
    put on one and publishes typed events to listeners, from its own monitor thread.

    Health is online while at least one reader is present and offline ``未检测到读卡器`` otherwise,
    including while pcscd is down; the context to pcscd is re-established with capped exponential
    backoff plus jitter, so a restarted pcscd is picked up without restarting the service.
    """

    kind = KIND

    def __init__(
        self,
        name: str = "pcsc",
        *,
        reader_filter: str | None = None,
        read_social_security: bool = True,
        poll_interval: float = 0.25,
        max_backoff: float = 5.0,
    ) -> None:
        self.name = name
        self.reader_filter = reader_filter
        self.read_social_security = read_social_security
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.health = HealthReporter(name, KIND)
        self._listeners: list[EventListener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers: list[str] = []
        self._states: dict[str, int] = {}  # reader -> last event state we acted on
        self._present: set[str] = set()  # readers holding a card we announced
        self._card_events: dict[str, int] = {}  # reader -> pcsc-lite's event counter at the insert
        self._context: Any = None

    @staticmethod
    def is_usable() -> bool:
        return is_usable()

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "PcscReaderService":
        known = {"name", "reader_filter", "read_social_security", "poll_interval", "max_backoff"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"pcsc: unknown option(s) {', '.join(sorted(unknown))}; expected some of "
                             f"{', '.join(sorted(known))}")
        return cls(**options)

    # ---- listeners -----------------------------------------------------------------------------
    def subscribe(self, listener: EventListener) -> None:
        """Listeners run on the monitor thread; keep them short (hand off to a queue)."""
        self._listeners.append(listener)

    def subscribe_health(self, listener: Callable[[HealthEvent], None]) -> None:
        self.health.subscribe(listener)

    def _emit(self, event: PcscEvent) -> None:
        log.debug("%s: %s", self.name, event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener bug must not stop the reader
                log.exception("%s: listener failed on %s", self.name, event)

    @property
    def readers(self) -> list[str]:
        return list(self._readers)

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "PcscReaderService":
        _scard()  # fail now, with the install hint, rather than inside the thread
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"pcsc-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: monitor thread did not stop within %.1fs", self.name, timeout)
            self._thread = None

    def __enter__(self) -> "PcscReaderService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- monitor loop --------------------------------------------------------------------------
    def _run(self) -> None:
        scard = _scard()
        failures = 0
        while not self._stop.is_set():
            try:
                if self._context is None:
                    self._context = self._establish(scard)
                    failures = 0
                self._poll(scard)
            except _ServiceGone as exc:
                log.info("%s: PC/SC service unavailable: %s", self.name, exc)
                self._drop_context(scard)
                self._update_readers([])
                failures += 1
                # capped exponential backoff with jitter; short cap: a restarted pcscd should be
                # noticed within seconds, and a failed connect to a local socket costs nothing
                delay = min(self.max_backoff, self.poll_interval * 2 ** min(failures, 8))
                self._stop.wait(delay * random.uniform(0.5, 1.0))
            except Exception:  # never let the monitor die silently
                log.exception("%s: monitor loop failed", self.name)
                self._drop_context(scard)
                self._stop.wait(self.max_backoff)
        self._drop_context(scard)

    def _establish(self, scard: Any) -> Any:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise _ServiceGone(scard.SCardGetErrorMessage(hresult))
        return context

    def _drop_context(self, scard: Any) -> None:
        if self._context is not None:
            try:
                scard.SCardReleaseContext(self._context)
            except Exception:
                log.debug("%s: release context failed", self.name, exc_info=True)
            self._context = None

    def _list_readers(self, scard: Any) -> list[str]:
        hresult, readers = scard.SCardListReaders(self._context, [])
        if hresult in (scard.SCARD_E_NO_READERS_AVAILABLE,):
            return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise _ServiceGone(scard.SCardGetErrorMessage(hresult))
        readers = list(readers or [])
        if self.reader_filter:
            readers = [r for r in readers if self.reader_filter in r]
        return readers

    def _update_readers(self, readers: list[str]) -> None:
        for reader in [r for r in self._readers if r not in readers]:
            if reader in self._present:
                self._present.discard(reader)
                self._emit(CardRemoved(reader))
            self._states.pop(reader, None)
            self._emit(ReaderRemoved(reader))
        for reader in [r for r in readers if r not in self._readers]:
            self._states[reader] = 0  # SCARD_STATE_UNAWARE: the next status call reports it
            self._emit(ReaderAdded(reader))
        self._readers = list(readers)
        if readers:
            self.health.report(Health.ONLINE)
        else:
            self.health.report(Health.OFFLINE, NO_READER)

    def _poll(self, scard: Any) -> None:
        self._update_readers(self._list_readers(scard))
        if not self._readers:
            self._stop.wait(self.poll_interval)
            return
        states = [(r, self._states.get(r, 0)) for r in self._readers]
        timeout_ms = int(self.poll_interval * 1000)
        hresult, new_states = scard.SCardGetStatusChange(self._context, timeout_ms, states)
        if hresult == scard.SCARD_E_TIMEOUT:
            return
        if hresult in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE):
            return  # a reader vanished between list and wait: the next list shows it
        if hresult != scard.SCARD_S_SUCCESS:
            raise _ServiceGone(scard.SCardGetErrorMessage(hresult))
        for reader, event_state, atr in new_states:
            log.debug("%s: %s state %#x", self.name, reader, event_state)
            self._states[reader] = event_state & ~scard.SCARD_STATE_CHANGED
            self._on_state(scard, reader, event_state, bytes(atr or b""))

    def _on_state(self, scard: Any, reader: str, state: int, atr: bytes) -> None:
        present = bool(state & scard.SCARD_STATE_PRESENT) and not state & scard.SCARD_STATE_EMPTY
        events = state >> 16  # pcsc-lite counts card insertions and removals in the high word
        if present and reader in self._present and self._card_events.get(reader) != events:
            # removed and another put on between two polls: the first card is gone
            self._present.discard(reader)
            self._emit(CardRemoved(reader))
        if present and reader not in self._present:
            self._present.add(reader)
            self._card_events[reader] = events
            if state & scard.SCARD_STATE_MUTE:
                self._emit(CardInserted(reader, None, atr))
                self._emit(CardError(reader, "卡片无响应，请重新插卡或换一张卡"))
                return
            self._read_card(scard, reader, atr)
        elif not present and reader in self._present:
            self._present.discard(reader)
            self._emit(CardRemoved(reader))

    def _read_card(self, scard: Any, reader: str, atr: bytes) -> None:
        hresult, card, protocol = scard.SCardConnect(
            self._context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if hresult != scard.SCARD_S_SUCCESS:
            self._emit(CardInserted(reader, None, atr))
            self._emit(CardError(reader, f"无法连接卡片：{scard.SCardGetErrorMessage(hresult)}"))
            return

        def transmit(command: bytes) -> bytes:
            hr, response = scard.SCardTransmit(card, protocol, list(command))
            if hr != scard.SCARD_S_SUCCESS:
                raise CardTransportError(f"读卡失败：{scard.SCardGetErrorMessage(hr)}")
            if not response:  # some drivers (vpcd) report success with nothing when the card left
                raise CardTransportError("读卡失败：卡片无应答")
            return bytes(response)

        announced = False
        try:
            uid = read_uid(transmit)
            self._emit(CardInserted(reader, uid, atr))
            announced = True
            if self.read_social_security:
                data = read_social_security_card(transmit)
                self._emit(SocialSecurityCardRead(reader, data))
        except CardTransportError as exc:
            if not announced:
                self._emit(CardInserted(reader, None, atr))
            # CardRemoved follows when pcscd sees the reader empty
            self._emit(CardError(reader, f"{exc}（读卡时卡片被移走或更换，请重新放卡）"))
        except CardStatusError as exc:
            self._emit(CardError(reader, str(exc), exc.sw))
        except PcscError as exc:
            self._emit(CardError(reader, str(exc)))
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

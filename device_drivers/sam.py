"""Second-generation resident ID card reader speaking the SAM protocol (GA 467 family).

Three layers, each usable alone:

* the codec: :class:`Request` / :class:`Reply` framing (``AA AA AA 96 69`` | LEN | body | CHK) and the
  pure streaming :class:`FrameParser`, plus the 256-byte UTF-16LE text block <-> :class:`IdCardData`;
* :class:`SamReader`: one request, one reply over any port URL, with typed errors;
* :class:`SamReaderService`: supervised polling that turns card placements into
  :class:`CardRead` / :class:`CardError` events and publishes the reader's health.

Messages meant for a kiosk screen are Chinese (``SamError.message``); log lines are English.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable

import serial

from .health import Health, HealthReporter
from .supervisor import DeviceSupervisor
from .transport import PortError, open_port

log = logging.getLogger(__name__)

KIND = "sam"
PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
HEADER_LEN = len(PREAMBLE) + 2  # preamble + LEN
# The longest real reply is 30 10 (text + photo + fingerprint, ~2.3 kB). A LEN beyond this is taken
# as a false preamble inside garbage, so one stray match cannot make the parser wait for 64 kB.
MAX_FRAME_LEN = 4096


# ---- status words -------------------------------------------------------------------------------
class SamStatus(enum.IntEnum):
    """SW3 of a reply."""

    OK = 0x90
    CARD_FOUND = 0x9F
    FIND_FAILED = 0x80
    SELECT_FAILED = 0x81
    READ_FAILED = 0x41
    NO_CONTENT = 0x91
    CHECKSUM_ERROR = 0x10
    LENGTH_ERROR = 0x11
    BAD_COMMAND = 0x21
    UNAUTHORISED = 0x23
    UNKNOWN_ERROR = 0x24
    CARD_AUTH_SAM_FAILED = 0x31
    SAM_AUTH_CARD_FAILED = 0x32
    VERIFY_ERROR = 0x33
    FINGERPRINT_ERROR = 0x37
    UNKNOWN_CARD_TYPE = 0x40
    RANDOM_FAILED = 0x47
    SAM_SELF_TEST_FAILED = 0x60
    SAM_NOT_AUTHORISED = 0x66


SUCCESS_STATUSES = frozenset({SamStatus.OK, SamStatus.CARD_FOUND})

# Shown to the citizen (card problems) or to staff (reader problems) on the kiosk screen.
STATUS_MESSAGES: dict[SamStatus, str] = {
    SamStatus.OK: "操作成功",
    SamStatus.CARD_FOUND: "已检测到身份证",
    SamStatus.FIND_FAILED: "未检测到身份证，请将身份证放在感应区",
    SamStatus.SELECT_FAILED: "身份证选取失败，请重新放置身份证",
    SamStatus.READ_FAILED: "读取身份证失败，请重新放置身份证",
    SamStatus.NO_CONTENT: "身份证中无此项内容",
    SamStatus.CHECKSUM_ERROR: "阅读器收到的数据校验错误，请重试",
    SamStatus.LENGTH_ERROR: "阅读器收到的数据长度错误，请重试",
    SamStatus.BAD_COMMAND: "阅读器不支持该命令，请联系工作人员",
    SamStatus.UNAUTHORISED: "阅读器拒绝越权操作，请联系工作人员",
    SamStatus.UNKNOWN_ERROR: "阅读器发生未知错误，请重新放置身份证",
    SamStatus.CARD_AUTH_SAM_FAILED: "身份证认证阅读器失败，请重新放置身份证",
    SamStatus.SAM_AUTH_CARD_FAILED: "阅读器认证身份证失败，请确认是有效的居民身份证",
    SamStatus.VERIFY_ERROR: "身份证信息验证错误，请重新放置身份证",
    SamStatus.FINGERPRINT_ERROR: "指纹信息验证错误，请重试",
    SamStatus.UNKNOWN_CARD_TYPE: "无法识别的卡片，请放置居民身份证",
    SamStatus.RANDOM_FAILED: "阅读器产生随机数失败，请重新放置身份证",
    SamStatus.SAM_SELF_TEST_FAILED: "身份证阅读器安全模块自检失败，请联系工作人员",
    SamStatus.SAM_NOT_AUTHORISED: "身份证阅读器安全模块未授权，请联系工作人员",
}


def status_message(code: int) -> str:
    """Screen text for any SW3, including codes the standard does not list."""
    try:
        return STATUS_MESSAGES[SamStatus(code)]
    except ValueError:
        return f"身份证阅读器返回未知状态（0x{code:02X}），请联系工作人员"


# ---- errors -------------------------------------------------------------------------------------
class SamError(Exception):
    """Base of every reader error. ``message`` is for the screen, ``detail`` for the log."""

    default_message = "身份证阅读器错误"

    def __init__(self, message: str | None = None, detail: str = "") -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(f"{self.message} ({detail})" if detail else self.message)


class SamTransportError(SamError):
    """The reader could not be talked to: the device is offline or the line is bad."""


class SamPortError(SamTransportError):
    default_message = "身份证阅读器连接中断，请联系工作人员"


class SamTimeoutError(SamTransportError):
    default_message = "身份证阅读器无响应，请联系工作人员"


class SamFrameError(SamTransportError):
    """A reply arrived but was damaged; retrying usually helps."""

    default_message = "身份证阅读器通信错误，请重新放置身份证"


class SamChecksumError(SamFrameError):
    default_message = "身份证阅读器应答校验错误，请重新放置身份证"


class SamTruncatedFrameError(SamFrameError):
    default_message = "身份证阅读器应答不完整，请重新放置身份证"


class SamStatusError(SamError):
    """The reader answered with a failure status (SW3)."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        try:
            self.status: SamStatus | None = SamStatus(code)
        except ValueError:
            self.status = None
        super().__init__(status_message(code), detail or f"SW3 0x{code:02X}")


class IdCardDataError(SamError, ValueError):
    """The card was read but its content is not a valid resident ID card."""

    default_message = "身份证信息有误，请到人工窗口办理"


class InvalidIdNumberError(IdCardDataError):
    default_message = "身份证号码校验错误，请到人工窗口办理"


class UnsupportedCardLayoutError(IdCardDataError):
    """A card the reader can read but whose text layout differs from the resident ID card."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        kind = CARD_TYPE_MARKERS.get(marker, "其他证件")
        super().__init__(
            f"暂不支持{kind}，请使用居民身份证或到人工窗口办理",
            f"card type marker {marker!r} at text byte 248",
        )


# ---- framing ------------------------------------------------------------------------------------
def xor_checksum(data: Iterable[int]) -> int:
    """CHK: XOR of every byte after the preamble, LEN included."""
    chk = 0
    for b in data:
        chk ^= b
    return chk


def encode_frame(body: bytes) -> bytes:
    """Wrap ``body`` (CMD PARA DATA, or SW1 SW2 SW3 DATA) into a complete frame."""
    length = len(body) + 1
    if length > 0xFFFF:
        raise ValueError(f"frame body of {len(body)} bytes does not fit LEN")
    head = length.to_bytes(2, "big")
    return PREAMBLE + head + body + bytes([xor_checksum(head + body)])


@dataclass(frozen=True)
class Frame:
    """One checked frame: ``body`` is everything between LEN and CHK."""

    body: bytes

    def encode(self) -> bytes:
        return encode_frame(self.body)


@dataclass(frozen=True)
class Request:
    cmd: int
    para: int
    data: bytes = b""

    def encode(self) -> bytes:
        return encode_frame(bytes([self.cmd, self.para]) + self.data)

    @classmethod
    def from_frame(cls, frame: Frame) -> "Request":
        if len(frame.body) < 2:
            raise SamFrameError(detail=f"request body too short: {frame.body.hex(' ')}")
        return cls(frame.body[0], frame.body[1], frame.body[2:])


@dataclass(frozen=True)
class Reply:
    sw1: int
    sw2: int
    sw3: int
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.sw3 in SUCCESS_STATUSES

    def encode(self) -> bytes:
        return encode_frame(bytes([self.sw1, self.sw2, self.sw3]) + self.data)

    @classmethod
    def from_frame(cls, frame: Frame) -> "Reply":
        if len(frame.body) < 3:
            raise SamFrameError(detail=f"reply body too short: {frame.body.hex(' ')}")
        return cls(frame.body[0], frame.body[1], frame.body[2], frame.body[3:])

    def raise_for_status(self, *expected: int) -> "Reply":
        if self.sw3 not in (expected or (SamStatus.OK,)):
            raise SamStatusError(self.sw3)
        return self


# The fixed requests of devices.md, byte-exact.
FIND_CARD = Request(0x20, 0x01)
SELECT_CARD = Request(0x20, 0x02)
READ_TEXT_PHOTO = Request(0x30, 0x01)
READ_TEXT_PHOTO_FP = Request(0x30, 0x10)
RESET_SAM = Request(0x10, 0xFF)
SAM_STATUS = Request(0x11, 0xFF)
SAM_ID = Request(0x12, 0xFF)
SET_BAUD_CMD = 0x60
BAUD_PARAMS: dict[int, int] = {115200: 0x00, 57600: 0x01, 38400: 0x02, 19200: 0x03, 9600: 0x04}


class RejectReason(str, enum.Enum):
    CHECKSUM = "checksum"
    LENGTH = "length"


@dataclass(frozen=True)
class Rejected:
    """Something that looked like a frame start but was not a good frame."""

    reason: RejectReason
    data: bytes  # the bytes that were examined (header, or the whole bad frame)


class FrameParser:
    """Pure streaming parser: ``feed(bytes) -> list[Frame]``.

    Garbage before a preamble is dropped. A frame whose checksum or LEN is wrong is reported to
    ``on_reject`` and only its first byte is dropped, so a good frame hidden inside it (its
    preamble swallowed by a corrupted LEN) is still found.
    """

    def __init__(
        self,
        *,
        min_body: int = 2,
        max_len: int = MAX_FRAME_LEN,
        on_reject: Callable[[Rejected], None] | None = None,
    ) -> None:
        self._min_len = min_body + 1  # LEN also counts CHK
        self._max_len = max_len
        self._buf = bytearray()
        self.on_reject = on_reject
        self.discarded = 0  # garbage bytes dropped so far, for diagnostics

    @property
    def pending(self) -> int:
        """Bytes of a frame start kept while waiting for the rest (non-zero: a frame is cut)."""
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()

    def _reject(self, reason: RejectReason, data: bytes) -> None:
        log.debug("rejected frame (%s): %s", reason.value, data[:32].hex(" "))
        if self.on_reject is not None:
            self.on_reject(Rejected(reason, data))
        del self._buf[:1]
        self.discarded += 1

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        while True:
            start = buf.find(PREAMBLE)
            if start < 0:
                keep = next((k for k in range(len(PREAMBLE) - 1, 0, -1) if buf.endswith(PREAMBLE[:k])), 0)
                self.discarded += len(buf) - keep
                del buf[: len(buf) - keep]
                return frames
            if start:
                self.discarded += start
                del buf[:start]
            if len(buf) < HEADER_LEN:
                return frames
            length = int.from_bytes(buf[5:7], "big")
            if not self._min_len <= length <= self._max_len:
                self._reject(RejectReason.LENGTH, bytes(buf[:HEADER_LEN]))
                continue
            end = HEADER_LEN + length
            if len(buf) < end:
                return frames
            if xor_checksum(buf[5 : end - 1]) != buf[end - 1]:
                self._reject(RejectReason.CHECKSUM, bytes(buf[:end]))
                continue
            frames.append(Frame(bytes(buf[HEADER_LEN : end - 1])))
            del buf[:end]


# ---- the card's text block ----------------------------------------------------------------------
TEXT_LEN = 256
PHOTO_LEN = 1024
LONG_TERM = "长期"
# Byte 248 of the text block names the card type; a resident ID card leaves it blank.
CARD_TYPE_OFFSET = 248
CARD_TYPE_MARKERS: dict[str, str] = {
    "I": "外国人永久居留身份证",
    "Y": "外国人永久居留身份证（2023版）",
    "J": "港澳台居民居住证",
}

# (name, byte offset, byte length) in the UTF-16LE text block of a resident ID card.
_FIELDS: dict[str, tuple[int, int]] = {
    "name": (0, 30),
    "sex": (30, 2),
    "nation": (32, 4),
    "birth": (36, 16),
    "address": (52, 70),
    "id_number": (122, 36),
    "authority": (158, 30),
    "valid_from": (188, 16),
    "valid_to": (204, 16),
}

SEXES: dict[str, str] = {"0": "未知", "1": "男", "2": "女", "9": "未说明"}

# GB/T 3304 codes as printed on the card (the card says 汉, not 汉族).
NATIONS: dict[str, str] = {
    code: name
    for code, name in zip(
        (f"{i:02d}" for i in range(1, 57)),
        "汉 蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳 佤 畲 高山 拉祜 水 "
        "东乡 纳西 景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 普米 塔吉克 怒 乌孜别克 "
        "俄罗斯 鄂温克 德昂 保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 基诺".split(),
        strict=True,
    )
} | {"97": "其他", "98": "外国血统中国籍人士"}

_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_ID_CHECK_CHARS = "10X98765432"


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits ('X' stands for 10)."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise InvalidIdNumberError("身份证号码格式错误", f"need 17 digits, got {first17!r}")
    return _ID_CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS)) % 11]


def validate_id_number(id_number: str) -> str:
    """Return the 18-character number (upper-case X) or raise :class:`InvalidIdNumberError`."""
    number = id_number.strip().upper()
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        raise InvalidIdNumberError("身份证号码格式错误，应为18位", f"got {id_number!r}")
    expected = id_check_char(number[:17])
    if number[17] != expected:
        raise InvalidIdNumberError(
            "身份证号码校验位错误，请到人工窗口办理",
            f"check character {number[17]!r}, expected {expected!r}",
        )
    return number


def _parse_date(text: str, what: str) -> date:
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError(text)
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise IdCardDataError(f"身份证{what}无法识别，请到人工窗口办理", f"{what}: {text!r}") from None


@dataclass(frozen=True)
class IdCardData:
    """What a resident ID card holds. ``valid_to`` None means 长期 (no end date)."""

    name: str
    sex: str  # 男 / 女
    nation: str  # 汉, 维吾尔, ...
    birth_date: date
    address: str
    id_number: str
    issuing_authority: str
    valid_from: date
    valid_to: date | None
    sex_code: str = "1"
    nation_code: str = "01"
    photo_wlt: bytes = field(default=b"", repr=False)  # vendor-compressed WLT, kept raw
    fingerprint: bytes = field(default=b"", repr=False)

    @classmethod
    def build(
        cls,
        *,
        name: str,
        sex_code: str,
        nation_code: str,
        birth_date: date,
        address: str,
        id_number: str,
        issuing_authority: str,
        valid_from: date,
        valid_to: date | None,
        photo_wlt: bytes = b"",
        fingerprint: bytes = b"",
    ) -> "IdCardData":
        """Make a record from codes, naming sex and nation the way the card does."""
        if sex_code not in SEXES:
            raise IdCardDataError("身份证性别代码无法识别", f"sex code {sex_code!r}")
        return cls(
            name=name, sex=SEXES[sex_code], nation=NATIONS.get(nation_code, "未知"),
            birth_date=birth_date, address=address, id_number=id_number,
            issuing_authority=issuing_authority, valid_from=valid_from, valid_to=valid_to,
            sex_code=sex_code, nation_code=nation_code, photo_wlt=photo_wlt, fingerprint=fingerprint,
        )

    def __repr__(self) -> str:
        # Cards end up in logs; personal data there must be masked (个人信息保护).
        return (
            f"IdCardData(name={self.name[:1] + '*' * (len(self.name) - 1)!r}, sex={self.sex!r}, "
            f"nation={self.nation!r}, id_number={self.masked_id_number!r}, "
            f"valid={self.validity_text!r}, photo={len(self.photo_wlt)} bytes)"
        )

    @property
    def masked_id_number(self) -> str:
        return self.id_number[:6] + "*" * 8 + self.id_number[14:]

    @property
    def long_term(self) -> bool:
        return self.valid_to is None

    @property
    def validity_text(self) -> str:
        """As printed on the card's back: ``2016.08.08-2036.08.08`` or ``2008.05.20-长期``."""
        end = LONG_TERM if self.valid_to is None else self.valid_to.strftime("%Y.%m.%d")
        return f"{self.valid_from.strftime('%Y.%m.%d')}-{end}"

    def is_expired(self, on: date | None = None) -> bool:
        return self.valid_to is not None and (on or date.today()) > self.valid_to

    def age(self, on: date | None = None) -> int:
        on = on or date.today()
        b = self.birth_date
        return on.year - b.year - ((on.month, on.day) < (b.month, b.day))

    def to_text_block(self, card_type: str = " ") -> bytes:
        """The 256-byte UTF-16LE block as the card stores it (the simulator's side)."""
        values = {
            "name": self.name,
            "sex": self.sex_code,
            "nation": self.nation_code,
            "birth": self.birth_date.strftime("%Y%m%d"),
            "address": self.address,
            "id_number": self.id_number,
            "authority": self.issuing_authority,
            "valid_from": self.valid_from.strftime("%Y%m%d"),
            "valid_to": LONG_TERM if self.valid_to is None else self.valid_to.strftime("%Y%m%d"),
        }
        block = bytearray(" ".encode("utf-16-le") * (TEXT_LEN // 2))
        for key, (offset, size) in _FIELDS.items():
            raw = values[key].encode("utf-16-le")
            if len(raw) > size:
                raise ValueError(f"{key} {values[key]!r} needs {len(raw)} bytes, the card has {size}")
            block[offset : offset + len(raw)] = raw
        block[CARD_TYPE_OFFSET : CARD_TYPE_OFFSET + 2] = card_type[:1].encode("utf-16-le")
        return bytes(block)


def parse_text_block(text: bytes, photo_wlt: bytes = b"", fingerprint: bytes = b"") -> IdCardData:
    """Decode the 256-byte text block; validate dates and the ID number's check character."""
    if len(text) < TEXT_LEN:
        raise IdCardDataError(detail=f"text block is {len(text)} bytes, expected {TEXT_LEN}")
    marker = text[CARD_TYPE_OFFSET : CARD_TYPE_OFFSET + 2].decode("utf-16-le", "replace")
    if marker in CARD_TYPE_MARKERS:
        raise UnsupportedCardLayoutError(marker)

    def get(key: str) -> str:
        offset, size = _FIELDS[key]
        try:
            value = text[offset : offset + size].decode("utf-16-le")
        except UnicodeDecodeError as exc:
            raise IdCardDataError(detail=f"{key} is not UTF-16LE: {exc}") from None
        return value.strip(" \x00\u3000")

    sex_code = get("sex")
    if sex_code not in SEXES:
        raise IdCardDataError("身份证性别信息无法识别，请到人工窗口办理", f"sex code {sex_code!r}")
    nation_code = get("nation")
    if nation_code not in NATIONS:
        # Not worth refusing a citizen over: the queue needs name and number, not the nation.
        log.warning("unknown nation code %r on an ID card", nation_code)
    id_number = validate_id_number(get("id_number"))
    birth_date = _parse_date(get("birth"), "出生日期")
    if id_number[6:14] != birth_date.strftime("%Y%m%d"):
        raise IdCardDataError(
            "身份证出生日期与号码不符，请到人工窗口办理",
            f"birth {birth_date:%Y%m%d} vs number digits {id_number[6:14]}",
        )
    valid_to_text = get("valid_to")
    valid_to = None if valid_to_text == LONG_TERM else _parse_date(valid_to_text, "有效期限")
    name = get("name")
    if not name:
        raise IdCardDataError("身份证姓名为空，请重新放置身份证", "empty name")
    return IdCardData(
        name=name,
        sex=SEXES[sex_code],
        nation=NATIONS.get(nation_code, "未知"),
        birth_date=birth_date,
        address=get("address"),
        id_number=id_number,
        issuing_authority=get("authority"),
        valid_from=_parse_date(get("valid_from"), "有效期限"),
        valid_to=valid_to,
        sex_code=sex_code,
        nation_code=nation_code,
        photo_wlt=photo_wlt,
        fingerprint=fingerprint,
    )


def encode_read_data(text: bytes, photo: bytes, fingerprint: bytes | None = None) -> bytes:
    """DATA of a 30 01 reply (or 30 10 when ``fingerprint`` is given): lengths, then the blocks."""
    out = len(text).to_bytes(2, "big") + len(photo).to_bytes(2, "big")
    if fingerprint is not None:
        out += len(fingerprint).to_bytes(2, "big")
    return out + text + photo + (fingerprint or b"")


def parse_read_reply(reply: Reply, with_fingerprint: bool = False) -> IdCardData:
    """Decode a 30 01 / 30 10 reply into :class:`IdCardData`."""
    reply.raise_for_status(SamStatus.OK)
    data = reply.data
    n_lengths = 3 if with_fingerprint else 2
    head = 2 * n_lengths
    if len(data) < head:
        raise SamFrameError(detail=f"read reply data is {len(data)} bytes, no length fields")
    lengths = [int.from_bytes(data[i : i + 2], "big") for i in range(0, head, 2)]
    if head + sum(lengths) != len(data):
        raise SamFrameError(detail=f"read reply lengths {lengths} do not add up to {len(data) - head}")
    text = data[head : head + lengths[0]]
    photo = data[head + lengths[0] : head + lengths[0] + lengths[1]]
    fp = data[head + lengths[0] + lengths[1] :] if with_fingerprint else b""
    return parse_text_block(text, photo, fp)


def encode_sam_id(sam_id: str) -> bytes:
    """16 reply bytes for a SAM id like ``05.01-20101111-0012345678-1234567890``."""
    try:
        head, a, b, c = sam_id.split("-")
        major, minor = (int(x) for x in head.split("."))
        parts = [int(a), int(b), int(c)]
    except ValueError:
        raise ValueError(f"SAM id {sam_id!r} is not like 05.01-20101111-0012345678-1234567890") from None
    return (
        major.to_bytes(2, "little") + minor.to_bytes(2, "little")
        + b"".join(p.to_bytes(4, "little") for p in parts)
    )


def decode_sam_id(data: bytes) -> str:
    """The module number as vendors print it (``05.01-20101111-0012345678-1234567890``)."""
    if len(data) < 16:
        raise SamFrameError(detail=f"SAM id reply has {len(data)} data bytes, expected 16")
    a, b, c = (int.from_bytes(data[i : i + 4], "little") for i in (4, 8, 12))
    return f"{data[0]:02d}.{data[2]:02d}-{a:08d}-{b:010d}-{c:010d}"


# ---- driver -------------------------------------------------------------------------------------
class SamReader:
    """One SAM reader on one port URL. Each call sends one request and waits for its reply.

    ``timeout`` bounds short commands; ``read_timeout`` bounds 30 01 / 30 10, which take a real
    reader about a second (the card's photo is read over the air).
    """

    def __init__(
        self,
        port_url: str,
        baudrate: int = 115200,
        timeout: float = 1.0,
        *,
        read_timeout: float = 3.0,
        name: str = "sam",
        log_traffic: bool = False,
    ) -> None:
        self.port_url = port_url
        self.baudrate = baudrate
        self.timeout = timeout
        self.read_timeout = max(read_timeout, timeout)
        self.name = name
        self.log_traffic = log_traffic
        self._port: Any = None
        self._lock = threading.RLock()
        self._rejects: list[Rejected] = []
        self._parser = FrameParser(min_body=3, on_reject=self._rejects.append)

    # -- port --
    def open(self) -> "SamReader":
        with self._lock:
            if self._port is None:
                try:
                    self._port = open_port(
                        self.port_url, baudrate=self.baudrate, timeout=0.05,
                        name=self.name, log_traffic=self.log_traffic,
                    )
                except PortError as exc:
                    raise SamPortError(detail=str(exc)) from exc
        return self

    def close(self) -> None:
        with self._lock:
            port, self._port = self._port, None
            if port is not None:
                try:
                    port.close()
                except (OSError, serial.SerialException):
                    log.debug("%s: close failed", self.name, exc_info=True)

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def __enter__(self) -> "SamReader":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- exchange --
    def transact(self, request: Request, timeout: float | None = None) -> Reply:
        """Send ``request`` and return its reply; raise a :class:`SamTransportError` if none came."""
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            port = self.open()._port
            try:
                port.reset_input_buffer()  # a late reply to an earlier request must not answer this one
                self._parser.reset()
                self._rejects.clear()
                port.write(request.encode())
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    chunk = port.read(port.in_waiting or 1)
                    if not chunk:
                        continue
                    frames = self._parser.feed(chunk)
                    if frames:
                        return Reply.from_frame(frames[0])
                    if self._rejects:
                        bad = self._rejects[0]
                        error = SamChecksumError if bad.reason is RejectReason.CHECKSUM else SamFrameError
                        raise error(detail=f"{bad.reason.value} error in reply to "
                                    f"{request.cmd:02X} {request.para:02X}: {bad.data[:16].hex(' ')}")
            except (serial.SerialException, OSError) as exc:
                self.close()
                raise SamPortError(detail=f"{self.port_url}: {exc}") from exc
            if self._parser.pending:
                raise SamTruncatedFrameError(
                    detail=f"{self._parser.pending} bytes of a reply to {request.cmd:02X} "
                    f"{request.para:02X} within {timeout:.2f}s"
                )
            raise SamTimeoutError(
                detail=f"no reply to {request.cmd:02X} {request.para:02X} within {timeout:.2f}s "
                f"on {self.port_url}"
            )

    # -- commands --
    def find_card(self) -> bool:
        """True when a card is on the reader (9F), False when none (80); raise on anything else."""
        reply = self.transact(FIND_CARD)
        if reply.sw3 == SamStatus.FIND_FAILED:
            return False
        reply.raise_for_status(SamStatus.CARD_FOUND)
        return True

    def select_card(self) -> None:
        self.transact(SELECT_CARD).raise_for_status(SamStatus.OK)

    def read_selected(self, with_fingerprint: bool = False) -> IdCardData:
        """Read a card already found and selected (30 01, or 30 10 with fingerprints)."""
        request = READ_TEXT_PHOTO_FP if with_fingerprint else READ_TEXT_PHOTO
        return parse_read_reply(self.transact(request, self.read_timeout), with_fingerprint)

    def read_card(self, with_fingerprint: bool = False) -> IdCardData:
        """Find, select and read the card on the reader."""
        if not self.find_card():
            raise SamStatusError(SamStatus.FIND_FAILED)
        self.select_card()
        return self.read_selected(with_fingerprint)

    def reset(self) -> None:
        self.transact(RESET_SAM).raise_for_status(SamStatus.OK)

    def sam_status(self) -> SamStatus:
        """SamStatus.OK when the security module is working; raise :class:`SamStatusError` if not."""
        self.transact(SAM_STATUS).raise_for_status(SamStatus.OK)
        return SamStatus.OK

    def sam_id(self) -> str:
        return decode_sam_id(self.transact(SAM_ID).raise_for_status(SamStatus.OK).data)

    def set_baud(self, baud: int) -> None:
        """Switch the reader's UART (60 00..04); the reply comes at the old rate, then we follow."""
        if baud not in BAUD_PARAMS:
            raise ValueError(f"baud {baud} not supported; choose one of {sorted(BAUD_PARAMS)}")
        self.transact(Request(SET_BAUD_CMD, BAUD_PARAMS[baud])).raise_for_status(SamStatus.OK)
        with self._lock:
            self.baudrate = baud
            if self._port is not None:
                self._port.baudrate = baud


# ---- supervised polling service -----------------------------------------------------------------
@dataclass(frozen=True)
class CardRead:
    """A card was placed and read."""

    data: IdCardData
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class CardError:
    """A card was placed but could not be read. ``code`` is SW3, or None for line/content errors;
    ``message`` is Chinese text for the kiosk screen."""

    code: int | None
    message: str
    at: float = field(default_factory=time.time)


CardEvent = CardRead | CardError
CardCallback = Callable[[CardEvent], None]


class SamReaderService:
    """Polls the reader and reports each card placement once.

    A card counts as removed after ``removal_polls`` consecutive empty polls, so a reader that
    briefly loses the card does not cause a second read. Silence or a lost port takes the reader
    offline (the supervisor reconnects with backoff and probes with 11 FF); damaged replies make it
    degraded, and ``max_frame_errors`` of them in a row take it offline too. After a reconnect a
    card still lying on the reader is read again.
    """

    kind = KIND

    def __init__(
        self,
        port_url: str,
        callback: CardCallback,
        *,
        name: str = "sam",
        baudrate: int = 115200,
        timeout: float = 1.0,
        read_timeout: float = 3.0,
        poll_interval_ms: int = 300,
        removal_polls: int = 2,
        max_frame_errors: int = 3,
        with_fingerprint: bool = False,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        log_traffic: bool = False,
        reporter: HealthReporter | None = None,
    ) -> None:
        if poll_interval_ms <= 0:
            raise ValueError(f"poll_interval_ms must be positive, got {poll_interval_ms}")
        self.port_url = port_url
        self.callback = callback
        self.name = name
        self._reader_args = dict(
            baudrate=baudrate, timeout=timeout, read_timeout=read_timeout, name=name,
            log_traffic=log_traffic,
        )
        self.poll_interval = poll_interval_ms / 1000
        self.removal_polls = max(1, removal_polls)
        self.max_frame_errors = max(1, max_frame_errors)
        self.with_fingerprint = with_fingerprint
        self.reporter = reporter or HealthReporter(name, KIND)
        self.supervisor: DeviceSupervisor[SamReader] = DeviceSupervisor(
            self.reporter, self._connect, self._serve, self._close,
            initial_backoff=initial_backoff, max_backoff=max_backoff,
        )

    @property
    def health(self) -> Health | None:
        return self.reporter.current.health if self.reporter.current else None

    def start(self) -> "SamReaderService":
        self.supervisor.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.supervisor.stop(timeout)

    def __enter__(self) -> "SamReaderService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- supervisor hooks --
    def _connect(self) -> SamReader:
        reader = SamReader(self.port_url, **self._reader_args)  # type: ignore[arg-type]
        try:
            reader.open()
            reader.sam_status()  # an open TCP socket proves nothing; the reader must answer
        except Exception:
            reader.close()
            raise
        log.info("%s: SAM reader answering on %s", self.name, self.port_url)
        return reader

    @staticmethod
    def _close(reader: SamReader) -> None:
        reader.close()

    def _serve(self, reader: SamReader, stop: threading.Event) -> None:
        present = False
        misses = 0
        frame_errors = 0
        while not stop.is_set():
            try:
                if reader.find_card():
                    misses = 0
                    if not present:
                        present = True
                        self._read_and_emit(reader)
                elif present:
                    misses += 1
                    if misses >= self.removal_polls:
                        present, misses = False, 0
                        log.debug("%s: card removed", self.name)
                frame_errors = 0
                if self.health == Health.DEGRADED:
                    self.reporter.report(Health.ONLINE)
            except (SamFrameError, SamStatusError) as exc:
                # damaged reply, or a find that failed with an odd status: the line or module is ill
                frame_errors += 1
                log.warning("%s: %s (%d in a row)", self.name, exc, frame_errors)
                if frame_errors >= self.max_frame_errors:
                    raise
                self.reporter.report(Health.DEGRADED, exc.message)
            stop.wait(self.poll_interval)

    def _read_and_emit(self, reader: SamReader) -> None:
        try:
            reader.select_card()
            data = reader.read_selected(self.with_fingerprint)
        except SamStatusError as exc:
            self._emit(CardError(exc.code, exc.message))
        except IdCardDataError as exc:
            log.warning("%s: unusable card: %s", self.name, exc.detail)
            self._emit(CardError(None, exc.message))
        except SamError as exc:  # transport trouble mid-read: tell the citizen, then let it count
            self._emit(CardError(None, exc.message))
            raise
        else:
            self._emit(CardRead(data))

    def _emit(self, event: CardEvent) -> None:
        try:
            self.callback(event)
        except Exception:  # a broken listener must not stop the reader
            log.exception("%s: card event callback failed", self.name)

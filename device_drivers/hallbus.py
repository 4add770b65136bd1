"""Hall bus codec: the product's own addressed, checksummed frames for LED boards and pads.

No public standard exists for hall LED boards, caller pads (呼叫器) or evaluation pads (评价器), so the
product defines one (``docs/protocols.md`` is the byte-level spec with worked examples). This module is
pure: it builds frames and parses a byte stream into :class:`Frame` objects, and packs/unpacks the
payload of every command, so the bus master, the drivers and the simulator share one definition.

Frame on the wire::

    7E | ADDR SEQ CMD LEN_lo LEN_hi PAYLOAD... CRC_lo CRC_hi | 7F
         \\_____________ byte-stuffed (7D, 7E, 7F escaped) _____/

CRC-16/ARC over ADDR..PAYLOAD (before stuffing), little-endian. Stuffing: a body byte equal to
``7D``, ``7E`` or ``7F`` is sent as ``7D`` followed by the byte XOR ``20``, so the start byte ``7E``
and the end byte ``7F`` never appear inside a frame and a receiver resynchronises at the next ``7E``.
"""
from __future__ import annotations

import enum
import logging
import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

from crccheck.crc import Crc16Arc

log = logging.getLogger(__name__)

SOF = 0x7E  # start of frame
EOF = 0x7F  # end of frame
ESC = 0x7D  # escape: next byte is XOR ESC_XOR
ESC_XOR = 0x20
SPECIAL = frozenset((SOF, EOF, ESC))

HOST_ADDRESS = 0x00  # the bus master; never a device address
BROADCAST = 0xFF  # every device executes, none answers
DEVICE_ADDRESSES = range(1, 0xFF)  # 1..254

REPLY_FLAG = 0x80  # bit 7 of CMD: set in every frame a device sends
MAX_PAYLOAD = 1024
HEADER_LEN = 5  # ADDR SEQ CMD LEN(2)
CRC_LEN = 2
PROTOCOL_VERSION = 1
TEXT_ENCODING = "gb18030"


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (poly 0x8005 reflected, init 0, no final XOR); check value of b"123456789" is 0xBB3D."""
    return Crc16Arc.calc(data)


class DeviceType(enum.IntEnum):
    """Reported in INFO and used to pick the right commands; the value is the wire byte."""

    WINDOW_LED = 0x01
    COMPOSITE_LED = 0x02
    CALLER_PAD = 0x03
    EVAL_PAD = 0x04

    @property
    def kind(self) -> str:
        """Registry kind key of the driver for this device type."""
        return _KIND_OF_TYPE[self]

    @property
    def is_led(self) -> bool:
        return self in (DeviceType.WINDOW_LED, DeviceType.COMPOSITE_LED)

    @property
    def is_pad(self) -> bool:
        return self in (DeviceType.CALLER_PAD, DeviceType.EVAL_PAD)


_KIND_OF_TYPE = {
    DeviceType.WINDOW_LED: "led",
    DeviceType.COMPOSITE_LED: "led",
    DeviceType.CALLER_PAD: "caller",
    DeviceType.EVAL_PAD: "evalpad",
}


class Command(enum.IntEnum):
    """CMD byte. Host requests have bit 7 clear; device replies have it set."""

    PING = 0x01
    POLL = 0x02
    SHOW_LINES = 0x10
    CLEAR = 0x11
    SHOW_CALLED = 0x12
    SET_BRIGHTNESS = 0x13
    PAD_DISPLAY = 0x20
    EVAL_PROMPT = 0x30
    EVAL_CANCEL = 0x31
    # replies
    INFO = 0x81
    EVENTS = 0x82
    ACK = 0xF0
    NAK = 0xF1


class NakReason(enum.IntEnum):
    UNKNOWN_COMMAND = 0x01
    BAD_PAYLOAD = 0x02
    BAD_TEXT = 0x03
    BUSY = 0x04
    BAD_VALUE = 0x05

    @property
    def transient(self) -> bool:
        """Worth sending the same request again (the others would be refused the same way)."""
        return self in (NakReason.BAD_PAYLOAD, NakReason.BUSY)

    @property
    def label(self) -> str:
        return _NAK_LABELS[self]


_NAK_LABELS = {
    NakReason.UNKNOWN_COMMAND: "设备不支持该命令",
    NakReason.BAD_PAYLOAD: "数据格式错误",
    NakReason.BAD_TEXT: "文字无法显示",
    NakReason.BUSY: "设备忙",
    NakReason.BAD_VALUE: "参数超出范围",
}


class Colour(enum.IntEnum):
    RED = 0x01
    GREEN = 0x02
    YELLOW = 0x03


class Mode(enum.IntEnum):
    STEADY = 0x00
    BLINK = 0x01
    SCROLL = 0x02


class EventCode(enum.IntEnum):
    """Event codes a pad reports in an EVENTS reply."""

    CALL_NEXT = 0x01
    RECALL = 0x02
    START = 0x03
    FINISH = 0x04
    NO_SHOW = 0x05
    TRANSFER = 0x06  # data: target (GB18030 text, e.g. window "5" or business "B")
    PAUSE = 0x07
    RESUME = 0x08
    GRADE = 0x20  # data: PROMPT_ID GRADE(1..5)
    EVAL_TIMEOUT = 0x21  # data: PROMPT_ID
    EVAL_CANCELLED = 0x22  # data: PROMPT_ID


class FrameError(ValueError):
    """A frame or payload could not be built or understood."""


@dataclass(frozen=True)
class Frame:
    address: int
    seq: int
    cmd: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFF:
            raise FrameError(f"address {self.address} outside 0..255")
        if not 0 <= self.seq <= 0xFF:
            raise FrameError(f"sequence number {self.seq} outside 0..255")
        if not 0 <= self.cmd <= 0xFF:
            raise FrameError(f"command {self.cmd} outside 0..255")
        if len(self.payload) > MAX_PAYLOAD:
            raise FrameError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")

    @property
    def is_reply(self) -> bool:
        return bool(self.cmd & REPLY_FLAG)

    def describe(self) -> str:
        try:
            name = Command(self.cmd).name
        except ValueError:
            name = f"0x{self.cmd:02X}"
        return f"addr={self.address} seq={self.seq} {name} payload={self.payload.hex(' ')}"


# ---- framing -----------------------------------------------------------------------------------
def escape(body: bytes) -> bytes:
    """Byte-stuff ``body`` so that none of 7D/7E/7F remains."""
    out = bytearray()
    for b in body:
        if b in SPECIAL:
            out.append(ESC)
            out.append(b ^ ESC_XOR)
        else:
            out.append(b)
    return bytes(out)


def body_of(frame: Frame) -> bytes:
    """Unstuffed ADDR..PAYLOAD+CRC of ``frame``."""
    head = struct.pack("<BBBH", frame.address, frame.seq, frame.cmd, len(frame.payload))
    unsigned = head + frame.payload
    return unsigned + struct.pack("<H", crc16_arc(unsigned))


def encode(frame: Frame) -> bytes:
    """The bytes to put on the wire for ``frame``."""
    return bytes((SOF,)) + escape(body_of(frame)) + bytes((EOF,))


class FrameParser:
    """Streaming parser: feed it any chunks, get back every complete, valid frame.

    Resynchronises on the next start byte after garbage, truncation or a bad escape; frames with a
    bad CRC or a length that does not match are counted and dropped without losing the next frame.
    """

    _MAX_BODY = HEADER_LEN + MAX_PAYLOAD + CRC_LEN

    def __init__(self) -> None:
        self._body = bytearray()
        self._in_frame = False
        self._escaped = False
        self.frames = 0
        self.crc_errors = 0
        self.framing_errors = 0  # truncated, too long, bad escape, length mismatch
        self.garbage_bytes = 0  # bytes seen outside any frame

    @property
    def in_frame(self) -> bool:
        """True while a frame has started but not ended (a reader may wait a little longer)."""
        return self._in_frame

    def reset(self) -> None:
        self._body.clear()
        self._in_frame = False
        self._escaped = False

    def _abort(self, why: str) -> None:
        self.framing_errors += 1
        log.debug("hall bus frame dropped: %s", why)
        self.reset()

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        for b in data:
            if b == SOF:
                if self._in_frame and self._body:
                    self._abort("start byte inside a frame (truncated frame)")
                self.reset()
                self._in_frame = True
                continue
            if not self._in_frame:
                self.garbage_bytes += 1
                continue
            if b == EOF:
                if self._escaped:
                    self._abort("escape byte before end byte")
                    continue
                frame = self._finish()
                if frame is not None:
                    out.append(frame)
                self.reset()
                continue
            if self._escaped:
                b ^= ESC_XOR
                self._escaped = False
                if b not in SPECIAL:
                    self._abort(f"invalid escape 7D {b ^ ESC_XOR:02X}")
                    continue
            elif b == ESC:
                self._escaped = True
                continue
            self._body.append(b)
            if len(self._body) > self._MAX_BODY:
                self._abort("frame longer than the maximum")
        return out

    def _finish(self) -> Frame | None:
        body = bytes(self._body)
        if len(body) < HEADER_LEN + CRC_LEN:
            self.framing_errors += 1
            log.debug("hall bus frame dropped: %d bytes is too short", len(body))
            return None
        address, seq, cmd, length = struct.unpack_from("<BBBH", body)
        if length != len(body) - HEADER_LEN - CRC_LEN:
            self.framing_errors += 1
            log.debug("hall bus frame dropped: LEN %d but %d payload bytes", length,
                      len(body) - HEADER_LEN - CRC_LEN)
            return None
        (crc,) = struct.unpack_from("<H", body, len(body) - CRC_LEN)
        if crc != crc16_arc(body[:-CRC_LEN]):
            self.crc_errors += 1
            log.debug("hall bus frame dropped: bad CRC in %s", body.hex(" "))
            return None
        self.frames += 1
        return Frame(address, seq, cmd, body[HEADER_LEN:-CRC_LEN])


# ---- payloads ----------------------------------------------------------------------------------
def encode_text(text: str, *, limit: int = 255) -> bytes:
    """GB18030 bytes of ``text``; refuses text that does not fit a 1-byte length."""
    try:
        data = text.encode(TEXT_ENCODING)
    except UnicodeEncodeError as exc:
        raise FrameError(f"text {text!r} cannot be encoded in GB18030: {exc}") from exc
    if len(data) > limit:
        raise FrameError(f"文本过长: {text!r} is {len(data)} bytes in GB18030, at most {limit}")
    return data


def decode_text(data: bytes) -> str:
    return data.decode(TEXT_ENCODING, errors="replace")


class _Reader:
    """Cursor over a payload that raises a precise FrameError when it runs short."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise FrameError(f"{self.what} payload too short: need {n} bytes at offset {self.pos}, "
                             f"have {len(self.data) - self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def text(self) -> str:
        return decode_text(self.take(self.u8()))

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk

    def end(self) -> None:
        if self.pos != len(self.data):
            raise FrameError(f"{self.what} payload has {len(self.data) - self.pos} extra bytes")


def _lp(text: str) -> bytes:
    data = encode_text(text)
    return bytes((len(data),)) + data


def _enum(cls: type[enum.IntEnum], value: int, what: str) -> enum.IntEnum:
    try:
        return cls(value)
    except ValueError:
        raise FrameError(f"{what}: unknown value 0x{value:02X}") from None


@dataclass(frozen=True)
class LedLine:
    """One line of an LED board: text, colour and how it is shown."""

    text: str
    colour: Colour = Colour.RED
    mode: Mode = Mode.STEADY


def pack_lines(lines: Sequence[LedLine]) -> bytes:
    if len(lines) > 32:
        raise FrameError(f"{len(lines)} lines; an LED board takes at most 32")
    out = bytearray((len(lines),))
    for line in lines:
        out += bytes((int(line.colour), int(line.mode))) + _lp(line.text)
    return bytes(out)


def unpack_lines(payload: bytes) -> list[LedLine]:
    r = _Reader(payload, "SHOW_LINES")
    lines = []
    for _ in range(r.u8()):
        colour = _enum(Colour, r.u8(), "colour")
        mode = _enum(Mode, r.u8(), "mode")
        lines.append(LedLine(r.text(), colour, mode))  # type: ignore[arg-type]
    r.end()
    return lines


@dataclass(frozen=True)
class CalledInfo:
    """SHOW_CALLED: the board shows "请{ticket}号" over the window label, blinking."""

    ticket: str
    window: str
    colour: Colour = Colour.RED
    blink_seconds: int = 10  # 0: blink until the next command


def pack_called(info: CalledInfo) -> bytes:
    if not 0 <= info.blink_seconds <= 255:
        raise FrameError(f"blink_seconds {info.blink_seconds} outside 0..255")
    return bytes((int(info.colour), info.blink_seconds)) + _lp(info.ticket) + _lp(info.window)


def unpack_called(payload: bytes) -> CalledInfo:
    r = _Reader(payload, "SHOW_CALLED")
    colour = _enum(Colour, r.u8(), "colour")
    blink = r.u8()
    info = CalledInfo(r.text(), r.text(), colour, blink)  # type: ignore[arg-type]
    r.end()
    return info


def pack_brightness(level: int) -> bytes:
    if not 0 <= level <= 15:
        raise FrameError(f"brightness {level} outside 0..15")
    return bytes((level,))


@dataclass(frozen=True)
class PadDisplay:
    """PAD_DISPLAY: what a caller pad's small screen shows."""

    ticket: str  # current ticket, "" for none
    waiting: int  # people waiting for this counter
    message: str = ""  # e.g. "暂停中"


def pack_pad_display(d: PadDisplay) -> bytes:
    if not 0 <= d.waiting <= 0xFFFF:
        raise FrameError(f"waiting count {d.waiting} outside 0..65535")
    return struct.pack("<H", d.waiting) + _lp(d.ticket) + _lp(d.message)


def unpack_pad_display(payload: bytes) -> PadDisplay:
    r = _Reader(payload, "PAD_DISPLAY")
    waiting = r.u16()
    d = PadDisplay(r.text(), waiting, r.text())
    r.end()
    return d


@dataclass(frozen=True)
class EvalPromptPayload:
    """EVAL_PROMPT: the pad shows who served the citizen and asks for a grade."""

    prompt_id: int
    timeout_s: int
    ticket: str
    clerk_name: str
    staff_no: str
    matter: str


def pack_eval_prompt(p: EvalPromptPayload) -> bytes:
    if not 1 <= p.prompt_id <= 255:
        raise FrameError(f"prompt id {p.prompt_id} outside 1..255")
    if not 1 <= p.timeout_s <= 255:
        raise FrameError(f"evaluation timeout {p.timeout_s}s outside 1..255")
    return (bytes((p.prompt_id, p.timeout_s)) + _lp(p.ticket) + _lp(p.clerk_name)
            + _lp(p.staff_no) + _lp(p.matter))


def unpack_eval_prompt(payload: bytes) -> EvalPromptPayload:
    r = _Reader(payload, "EVAL_PROMPT")
    p = EvalPromptPayload(r.u8(), r.u8(), r.text(), r.text(), r.text(), r.text())
    r.end()
    if p.prompt_id == 0 or p.timeout_s == 0:
        raise FrameError("EVAL_PROMPT: prompt id and timeout must be 1..255")
    return p


@dataclass(frozen=True)
class RawEvent:
    """One entry of an EVENTS reply; the pad drivers turn these into typed events."""

    code: int
    data: bytes = b""


def pack_events(events: Iterable[RawEvent]) -> bytes:
    items = list(events)
    if len(items) > 255:
        raise FrameError(f"{len(items)} events in one reply; at most 255")
    out = bytearray((len(items),))
    for ev in items:
        if len(ev.data) > 255:
            raise FrameError(f"event data of {len(ev.data)} bytes; at most 255")
        out += bytes((ev.code, len(ev.data))) + ev.data
    return bytes(out)


def unpack_events(payload: bytes) -> list[RawEvent]:
    r = _Reader(payload, "EVENTS")
    events = [RawEvent(r.u8(), r.take(r.u8())) for _ in range(r.u8())]
    r.end()
    return events


@dataclass(frozen=True)
class DeviceInfo:
    """INFO reply to PING."""

    device_type: int
    version: int = PROTOCOL_VERSION
    model: str = ""


def pack_info(info: DeviceInfo) -> bytes:
    return bytes((info.device_type, info.version)) + _lp(info.model)


def unpack_info(payload: bytes) -> DeviceInfo:
    r = _Reader(payload, "INFO")
    info = DeviceInfo(r.u8(), r.u8(), r.text() if r.pos < len(payload) else "")
    r.end()
    return info


def pack_nak(reason: NakReason) -> bytes:
    return bytes((int(reason),))


def unpack_nak(payload: bytes) -> NakReason | int:
    if not payload:
        return 0
    try:
        return NakReason(payload[0])
    except ValueError:
        return payload[0]

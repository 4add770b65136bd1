"""Pure ESC/POS byte-stream parser: bytes in, typed print events out.

The simulated printer (``simulators/escpos_sim.py``) is a thin state machine over these events, so
the parser is tested on bytes alone. It reads the stream the way a printer does: every command has a
known length (fixed arguments, a ``pL pH`` length, or a NUL terminator), so it is skipped whole even
when it is not modelled, and text is decoded as GB18030 while Chinese mode (``FS &``) is on.

Resynchronising after garbage: a byte that starts no known command is skipped alone; an unknown
``ESC x`` / ``GS x`` / ``FS x`` skips the two bytes unless ``x`` itself is a control byte (then only the
prefix is dropped, so a following ``ESC @`` is not lost); an invalid GB18030 sequence yields U+FFFD
for its first byte only; a declared data length beyond what the command allows is treated as
garbage instead of swallowing the next ticket.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Union

log = logging.getLogger(__name__)

LF, CR, HT, DLE, EOT, ENQ, DC4, ESC, FS, GS, NUL = 0x0A, 0x0D, 0x09, 0x10, 0x04, 0x05, 0x14, 0x1B, 0x1C, 0x1D, 0x00
_CONTROL_PREFIXES = frozenset((ESC, FS, GS, DLE, LF))


# ---- events --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Init:
    """``ESC @``: modes back to power-on defaults."""


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class LineFeed:
    """``LF``: print the line buffer and feed one line."""


@dataclass(frozen=True)
class Feed:
    """``ESC d n``: print the buffer and feed ``lines`` lines."""

    lines: int


@dataclass(frozen=True)
class PrintMode:
    """``ESC ! n``: bit 0 font B, bit 3 bold, bit 4 double height, bit 5 double width, bit 7 underline."""

    mode: int


@dataclass(frozen=True)
class CharSize:
    """``GS ! n``: magnification, 1..8 each way."""

    width: int
    height: int


@dataclass(frozen=True)
class Align:
    """``ESC a n``: 0 left, 1 centre, 2 right."""

    align: int


@dataclass(frozen=True)
class Bold:
    """``ESC E n`` (or ``ESC G n``)."""

    on: bool


@dataclass(frozen=True)
class Invert:
    """``GS B n``: white on black."""

    on: bool


@dataclass(frozen=True)
class ChineseMode:
    """``FS &`` on, ``FS .`` off."""

    on: bool


@dataclass(frozen=True)
class Qr:
    """``GS ( k`` with cn = 49 (QR): ``fn`` 65 model, 67 module size, 69 error level, 80 store, 81 print."""

    fn: int
    data: bytes


@dataclass(frozen=True)
class Cut:
    """``GS V``."""

    partial: bool


@dataclass(frozen=True)
class StatusRequest:
    """``DLE EOT n``: real-time status, answered at once with one byte."""

    n: int


@dataclass(frozen=True)
class Skipped:
    """A command known by length but not modelled, or garbage; kept for logs and tests."""

    data: bytes


Event = Union[Init, Text, LineFeed, Feed, PrintMode, CharSize, Align, Bold, Invert, ChineseMode, Qr, Cut,
              StatusRequest, Skipped]

# ---- command tables ------------------------------------------------------------------------
# number of argument bytes after ``ESC x``
_ESC_ARGS: dict[int, int] = {
    ord(c): n for c, n in {
        "@": 0, "!": 1, "a": 1, "E": 1, "G": 1, "-": 1, "M": 1, "d": 1, "J": 1, "e": 1, "2": 0, "3": 1,
        " ": 1, "t": 1, "R": 1, "{": 1, "V": 1, "p": 3, "$": 2, "\\": 2, "%": 1, "?": 1, "i": 0,
        "m": 0, "r": 1, "U": 1, "=": 1, "L": 0, "S": 0, "T": 1, "W": 8, "c": 2, "K": 1,
    }.items()
}
_GS_ARGS: dict[int, int] = {
    ord(c): n for c, n in {
        "!": 1, "B": 1, "H": 1, "h": 1, "w": 1, "f": 1, "L": 2, "W": 2, "/": 1, "r": 1, "I": 1,
        "a": 1, "P": 2, "b": 1, ":": 0, "^": 3, "$": 2, "\\": 2, "T": 1, "E": 1,
    }.items()
}
_FS_ARGS: dict[int, int] = {
    ord(c): n for c, n in {
        "&": 0, ".": 0, "!": 1, "-": 1, "C": 1, "S": 2, "W": 1, "p": 2, "2": 74,
    }.items()
}
# longest data a ``GS ( x`` / ``FS ( x`` function may declare; QR store is at most 7092 + 3
_PAREN_MAX = {ord("k"): 7100, ord("L"): 65535}
_PAREN_DEFAULT_MAX = 1024
_RASTER_MAX = 2_000_000  # GS v 0 / GS 8 L image data


class _NeedMore(Exception):
    """The item at the start of the buffer is not complete yet."""


class EscPosParser:
    """Incremental parser. ``feed`` returns the events completed by ``data``; an incomplete command or
    multibyte character stays buffered until the rest arrives, so any split of a stream gives the
    same events (adjacent :class:`Text` events aside)."""

    def __init__(self, chinese: bool = True, codepage: str = "cp437") -> None:
        self.chinese_default = chinese
        self.chinese = chinese
        self.codepage = codepage
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()
        self.chinese = self.chinese_default

    @property
    def pending(self) -> int:
        """Bytes waiting for the rest of a command."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        text: list[str] = []
        pos = 0
        buf = self._buf
        while pos < len(buf):
            try:
                consumed, item = self._parse_one(buf, pos)
            except _NeedMore:
                break
            pos += consumed
            if isinstance(item, str):
                text.append(item)
                continue
            if text:
                events.append(Text("".join(text)))
                text.clear()
            if item is not None:
                if isinstance(item, ChineseMode):
                    self.chinese = item.on
                elif isinstance(item, Init):
                    self.chinese = self.chinese_default
                events.append(item)
        if text:
            events.append(Text("".join(text)))
        del buf[:pos]
        return events

    # ---- one item at buf[pos] ---------------------------------------------------------------
    def _parse_one(self, buf: bytearray, pos: int) -> tuple[int, Event | str | None]:
        b = buf[pos]
        if b == LF:
            return 1, LineFeed()
        if b == CR:
            return 1, None  # printers without auto line feed ignore CR
        if b == HT:
            return 1, " "
        if b == ESC:
            return self._esc(buf, pos)
        if b == GS:
            return self._gs(buf, pos)
        if b == FS:
            return self._fs(buf, pos)
        if b == DLE:
            return self._dle(buf, pos)
        if b < 0x20 or b == 0x7F:
            return 1, Skipped(bytes([b]))
        if b < 0x80:
            return 1, chr(b)
        if not self.chinese:
            return 1, bytes([b]).decode(self.codepage, errors="replace")
        return self._gb18030(buf, pos)

    @staticmethod
    def _need(buf: bytearray, end: int) -> None:
        if len(buf) < end:
            raise _NeedMore

    def _gb18030(self, buf: bytearray, pos: int) -> tuple[int, str]:
        b = buf[pos]
        if not 0x81 <= b <= 0xFE:
            return 1, "\ufffd"
        self._need(buf, pos + 2)
        b2 = buf[pos + 1]
        if 0x40 <= b2 <= 0xFE and b2 != 0x7F:
            size = 2
        elif 0x30 <= b2 <= 0x39:
            self._need(buf, pos + 4)
            if not (0x81 <= buf[pos + 2] <= 0xFE and 0x30 <= buf[pos + 3] <= 0x39):
                return 1, "\ufffd"
            size = 4
        else:
            return 1, "\ufffd"
        try:
            return size, bytes(buf[pos:pos + size]).decode("gb18030")
        except UnicodeDecodeError:
            return 1, "\ufffd"

    def _fixed(self, buf: bytearray, pos: int, nargs: int) -> bytes:
        self._need(buf, pos + 2 + nargs)
        return bytes(buf[pos + 2:pos + 2 + nargs])

    @staticmethod
    def _unknown_prefix(buf: bytearray, pos: int) -> tuple[int, Skipped]:
        """An unknown ``ESC x``: drop both bytes, unless ``x`` starts a command of its own."""
        if buf[pos + 1] in _CONTROL_PREFIXES:
            return 1, Skipped(bytes(buf[pos:pos + 1]))
        return 2, Skipped(bytes(buf[pos:pos + 2]))

    def _esc(self, buf: bytearray, pos: int) -> tuple[int, Event]:
        self._need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd == ord("*"):  # ESC * m nL nH d1..dk: bit image
            self._need(buf, pos + 5)
            m, n = buf[pos + 2], buf[pos + 3] | buf[pos + 4] << 8
            if m not in (0, 1, 32, 33):
                return self._unknown_prefix(buf, pos)
            end = pos + 5 + n * (1 if m < 32 else 3)
            self._need(buf, end)
            return end - pos, Skipped(bytes(buf[pos:end]))
        if cmd == ord("D"):  # ESC D n1..nk NUL: tab positions, at most 32
            for end in range(pos + 2, min(len(buf), pos + 35)):
                if buf[end] == NUL:
                    return end + 1 - pos, Skipped(bytes(buf[pos:end + 1]))
            if len(buf) < pos + 35:
                raise _NeedMore
            return self._unknown_prefix(buf, pos)
        nargs = _ESC_ARGS.get(cmd)
        if nargs is None:
            return self._unknown_prefix(buf, pos)
        args = self._fixed(buf, pos, nargs)
        size = 2 + nargs
        c = chr(cmd)
        if c == "@":
            return size, Init()
        if c == "!":
            return size, PrintMode(args[0])
        if c == "a":
            return size, Align(args[0] - 48 if 48 <= args[0] <= 50 else args[0])
        if c in "EG":
            return size, Bold(bool(args[0] & 1))
        if c == "d":
            return size, Feed(args[0])
        return size, Skipped(bytes(buf[pos:pos + size]))

    def _paren(self, buf: bytearray, pos: int) -> tuple[int, Event]:
        """``GS ( x pL pH data`` / ``FS ( x pL pH data``."""
        self._need(buf, pos + 5)
        fn_class = buf[pos + 2]
        length = buf[pos + 3] | buf[pos + 4] << 8
        if length > _PAREN_MAX.get(fn_class, _PAREN_DEFAULT_MAX):
            log.debug("implausible length %d for %r; treated as garbage", length, bytes(buf[pos:pos + 3]))
            return 1, Skipped(bytes(buf[pos:pos + 1]))
        end = pos + 5 + length
        self._need(buf, end)
        body = bytes(buf[pos + 5:end])
        if buf[pos] == GS and fn_class == ord("k") and len(body) >= 2 and body[0] == 49:
            fn = body[1]
            data = body[2:]
            if fn in (80, 81) and data[:1] == b"0":  # store / print carry m = '0'
                data = data[1:]
            return end - pos, Qr(fn, data)
        return end - pos, Skipped(bytes(buf[pos:end]))

    def _gs(self, buf: bytearray, pos: int) -> tuple[int, Event]:
        self._need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd == ord("("):
            return self._paren(buf, pos)
        if cmd == ord("V"):
            self._need(buf, pos + 3)
            m = buf[pos + 2]
            if m in (0, 1, 48, 49):
                return 3, Cut(partial=m in (1, 49))
            if m in (65, 66, 97, 98, 103, 104):
                self._need(buf, pos + 4)
                return 4, Cut(partial=m in (66, 98, 104))
            return self._unknown_prefix(buf, pos)
        if cmd == ord("k"):  # barcode
            self._need(buf, pos + 3)
            m = buf[pos + 2]
            if m <= 6:
                for end in range(pos + 3, min(len(buf), pos + 3 + 256)):
                    if buf[end] == NUL:
                        return end + 1 - pos, Skipped(bytes(buf[pos:end + 1]))
                if len(buf) < pos + 3 + 256:
                    raise _NeedMore
                return self._unknown_prefix(buf, pos)
            if 65 <= m <= 79:
                self._need(buf, pos + 4)
                end = pos + 4 + buf[pos + 3]
                self._need(buf, end)
                return end - pos, Skipped(bytes(buf[pos:end]))
            return self._unknown_prefix(buf, pos)
        if cmd == ord("v"):  # GS v 0 m xL xH yL yH data: raster image
            self._need(buf, pos + 8)
            if buf[pos + 2] not in (0, 48):
                return self._unknown_prefix(buf, pos)
            x = buf[pos + 4] | buf[pos + 5] << 8
            y = buf[pos + 6] | buf[pos + 7] << 8
            if x * y > _RASTER_MAX:
                return 1, Skipped(bytes(buf[pos:pos + 1]))
            end = pos + 8 + x * y
            self._need(buf, end)
            return end - pos, Skipped(bytes(buf[pos:end]))
        if cmd == ord("8"):  # GS 8 L p1 p2 p3 p4 ...: graphics with a 4-byte length
            self._need(buf, pos + 7)
            if buf[pos + 2] != ord("L"):
                return self._unknown_prefix(buf, pos)
            length = int.from_bytes(buf[pos + 3:pos + 7], "little")
            if length > _RASTER_MAX:
                return 1, Skipped(bytes(buf[pos:pos + 1]))
            end = pos + 7 + length
            self._need(buf, end)
            return end - pos, Skipped(bytes(buf[pos:end]))
        if cmd == ord("*"):  # GS * x y d1..d(x*y*8): downloaded image
            self._need(buf, pos + 4)
            end = pos + 4 + buf[pos + 2] * buf[pos + 3] * 8
            self._need(buf, end)
            return end - pos, Skipped(bytes(buf[pos:end]))
        nargs = _GS_ARGS.get(cmd)
        if nargs is None:
            return self._unknown_prefix(buf, pos)
        args = self._fixed(buf, pos, nargs)
        if cmd == ord("!"):
            return 3, CharSize(((args[0] >> 4) & 7) + 1, (args[0] & 7) + 1)
        if cmd == ord("B"):
            return 3, Invert(bool(args[0] & 1))
        return 2 + nargs, Skipped(bytes(buf[pos:pos + 2 + nargs]))

    def _fs(self, buf: bytearray, pos: int) -> tuple[int, Event]:
        self._need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd == ord("&"):
            return 2, ChineseMode(True)
        if cmd == ord("."):
            return 2, ChineseMode(False)
        if cmd == ord("("):
            return self._paren(buf, pos)
        nargs = _FS_ARGS.get(cmd)
        if nargs is None:
            return self._unknown_prefix(buf, pos)
        self._fixed(buf, pos, nargs)
        return 2 + nargs, Skipped(bytes(buf[pos:pos + 2 + nargs]))

    def _dle(self, buf: bytearray, pos: int) -> tuple[int, Event]:
        self._need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd == EOT:
            self._need(buf, pos + 3)
            n = buf[pos + 2]
            if 1 <= n <= 4:
                return 3, StatusRequest(n)
        elif cmd == ENQ:
            self._need(buf, pos + 3)
            if 0 <= buf[pos + 2] <= 2:
                return 3, Skipped(bytes(buf[pos:pos + 3]))
        elif cmd == DC4:
            self._need(buf, pos + 3)
            if 1 <= buf[pos + 2] <= 8:
                self._need(buf, pos + 5)
                return 5, Skipped(bytes(buf[pos:pos + 5]))
        return 1, Skipped(bytes(buf[pos:pos + 1]))

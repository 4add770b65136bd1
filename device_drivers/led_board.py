"""LED boards: window boards (窗口屏) and the hall's composite board (综合屏).

The boards speak whatever protocol their controller has, so a board object talks to an
:class:`LedAdapter` and knows nothing of bytes. Two adapters exist:

* :class:`HallBusLedAdapter`: the product's own hall bus (``docs/protocols.md``), through a
  :class:`~device_drivers.hallbus_master.HallBusMaster` shared with other devices on the bus.
* :class:`OnbonBxAdapter`: Onbon BX-5K/6K controllers, framed as described in ``devices.md``
  (8 x A5 preamble, packet header, CRC-16/ARC, 5A, A5/A6/5A/5B escaping), text in GB2312.

A new vendor is one more :class:`LedAdapter` subclass. The board remembers what it last showed and
shows it again when the adapter reports the controller back online (a board that was powered off
comes back with the right number on it).
"""
from __future__ import annotations

import logging
import struct
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import hallbus as hb
from .hallbus import Colour, LedLine, Mode
from .hallbus_master import acked
from .transport import open_port

log = logging.getLogger(__name__)

__all__ = [
    "Colour", "Mode", "LedLine", "LedAdapter", "HallBusLedAdapter", "OnbonBxAdapter",
    "WindowLedBoard", "CompositeLedBoard", "OnbonFrame", "OnbonParser", "encode_onbon",
]


def _done(result: Any = None) -> "Future[Any]":
    f: Future[Any] = Future()
    f.set_result(result)
    return f


class LedAdapter(ABC):
    """What a board needs from a controller protocol. Methods return a future that completes when
    the controller accepted the content (or at once for protocols without acknowledgement)."""

    @abstractmethod
    def show_lines(self, lines: Sequence[LedLine]) -> "Future[None]":
        """Replace the whole screen by ``lines``, top to bottom."""

    @abstractmethod
    def clear(self) -> "Future[None]":
        """Blank the screen."""

    def show_called(self, ticket: str, window: str, *, colour: Colour = Colour.RED,
                    blink_seconds: int = 10) -> "Future[None]":
        """Highlight a call. Protocols without a dedicated command blink the two lines."""
        return self.show_lines([LedLine(f"请{ticket}号", colour, Mode.BLINK),
                                LedLine(window, colour, Mode.BLINK)])

    def set_brightness(self, level: int) -> "Future[None]":
        log.info("%s: brightness not supported", type(self).__name__)
        return _done()

    def on_back_online(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the controller answers again after being offline (if the protocol
        can tell); the board then repaints."""


class HallBusLedAdapter(LedAdapter):
    """An LED board at ``address`` on a hall bus."""

    def __init__(self, bus: Any, address: int,
                 device_type: hb.DeviceType = hb.DeviceType.WINDOW_LED) -> None:
        self.bus = bus
        self.address = address
        self.reporter = bus.add_device(address, device_type)

    def show_lines(self, lines: Sequence[LedLine]) -> "Future[None]":
        return acked(self.bus.submit(self.address, hb.Command.SHOW_LINES, hb.pack_lines(lines)))

    def clear(self) -> "Future[None]":
        return acked(self.bus.submit(self.address, hb.Command.CLEAR))

    def show_called(self, ticket: str, window: str, *, colour: Colour = Colour.RED,
                    blink_seconds: int = 10) -> "Future[None]":
        payload = hb.pack_called(hb.CalledInfo(ticket, window, colour, blink_seconds))
        return acked(self.bus.submit(self.address, hb.Command.SHOW_CALLED, payload))

    def set_brightness(self, level: int) -> "Future[None]":
        return acked(self.bus.submit(self.address, hb.Command.SET_BRIGHTNESS,
                                        hb.pack_brightness(level)))

    def on_back_online(self, callback: Callable[[], None]) -> None:
        self.bus.on_online(self.address, lambda _address: callback())


# ---- boards ------------------------------------------------------------------------------------
class _Board:
    def __init__(self, adapter: LedAdapter, *, name: str | None = None) -> None:
        self.adapter = adapter
        self.name = name or type(adapter).__name__
        self._repaint: Callable[[], "Future[None]"] | None = None
        self.last_shown: str = ""  # human-readable description of the current content
        adapter.on_back_online(self._on_back_online)

    def _show(self, what: str, action: Callable[[], "Future[None]"]) -> "Future[None]":
        fut = action()  # raises at once on content the adapter cannot encode; keep the old state then
        self._repaint = action
        self.last_shown = what
        return fut

    def _on_back_online(self) -> None:
        if self._repaint is not None:
            log.info("%s: back online, repainting %s", self.name, self.last_shown)
            fut = self._repaint()
            fut.add_done_callback(lambda f: f.exception() and log.warning(
                "%s: repaint failed: %s", self.name, f.exception()))

    def show_text(self, text: str, *, colour: Colour = Colour.RED,
                  mode: Mode = Mode.STEADY) -> "Future[None]":
        """Free text; ``\\n`` separates lines."""
        lines = [LedLine(t, colour, mode) for t in text.split("\n")]
        return self._show(f"text {text!r}", lambda: self.adapter.show_lines(lines))

    def clear(self) -> "Future[None]":
        return self._show("blank", self.adapter.clear)

    def set_brightness(self, level: int) -> "Future[None]":
        return self.adapter.set_brightness(level)


class WindowLedBoard(_Board):
    """The board above one service window."""

    @classmethod
    def on_bus(cls, bus: Any, address: int, *, name: str | None = None) -> "WindowLedBoard":
        return cls(HallBusLedAdapter(bus, address, hb.DeviceType.WINDOW_LED),
                   name=name or f"{bus.name}.{address}")

    def show_called(self, ticket_no: str, window_label: str, *, colour: Colour = Colour.RED,
                    blink_seconds: int = 10) -> "Future[None]":
        """"请A001号" over the window label, blinking for ``blink_seconds`` then steady."""
        return self._show(
            f"called {ticket_no} at {window_label}",
            lambda: self.adapter.show_called(ticket_no, window_label, colour=colour,
                                             blink_seconds=blink_seconds))

    def show_paused(self, text: str = "暂停服务", *, colour: Colour = Colour.YELLOW) -> "Future[None]":
        lines = [LedLine(text, colour, Mode.STEADY)]
        return self._show(f"paused {text!r}", lambda: self.adapter.show_lines(lines))

    def show_idle(self, text: str, *, colour: Colour = Colour.GREEN,
                  scroll: bool = False) -> "Future[None]":
        lines = [LedLine(t, colour, Mode.SCROLL if scroll else Mode.STEADY) for t in text.split("\n")]
        return self._show(f"idle {text!r}", lambda: self.adapter.show_lines(lines))


class CompositeLedBoard(_Board):
    """The hall's big board listing the latest calls, newest first."""

    def __init__(self, adapter: LedAdapter, *, name: str | None = None, max_lines: int = 8,
                 title: str | None = None, highlight_latest: bool = True) -> None:
        super().__init__(adapter, name=name)
        self.max_lines = max_lines
        self.title = title
        self.highlight_latest = highlight_latest

    @classmethod
    def on_bus(cls, bus: Any, address: int, *, name: str | None = None,
               **kwargs: Any) -> "CompositeLedBoard":
        return cls(HallBusLedAdapter(bus, address, hb.DeviceType.COMPOSITE_LED),
                   name=name or f"{bus.name}.{address}", **kwargs)

    def format_recent(self, recent: Sequence[tuple[str, str]]) -> list[LedLine]:
        lines: list[LedLine] = []
        if self.title:
            lines.append(LedLine(self.title, Colour.GREEN, Mode.STEADY))
        room = self.max_lines - len(lines)
        for i, (ticket, window) in enumerate(recent[:room]):
            highlight = i == 0 and self.highlight_latest
            lines.append(LedLine(f"{ticket}  {window}", Colour.RED if highlight else Colour.YELLOW,
                                 Mode.BLINK if highlight else Mode.STEADY))
        return lines

    def show_recent(self, recent: Sequence[tuple[str, str]]) -> "Future[None]":
        """``recent``: (ticket, window label) pairs, newest first; the newest blinks."""
        lines = self.format_recent(recent)
        return self._show(f"recent {list(recent)[:self.max_lines]}",
                          lambda: self.adapter.show_lines(lines))


# ---- Onbon BX-5K/6K ----------------------------------------------------------------------------
ONBON_PREAMBLE = b"\xA5" * 8
ONBON_START = 0xA5
ONBON_END = 0x5A
_ONBON_ESCAPES = {0xA5: b"\xA6\x02", 0xA6: b"\xA6\x01", 0x5A: b"\x5B\x02", 0x5B: b"\x5B\x01"}
_ONBON_UNESCAPE = {(0xA6, 0x02): 0xA5, (0xA6, 0x01): 0xA6, (0x5B, 0x02): 0x5A, (0x5B, 0x01): 0x5B}
ONBON_HEADER = struct.Struct("<HH3sBBBBH")  # dst src reserved check display type version len


@dataclass(frozen=True)
class OnbonFrame:
    """One Onbon BX packet (header fields as in devices.md; ``data`` is the command data)."""

    dst: int  # screen address, 0xFFFE/0xFFFF broadcast on some firmware
    data: bytes
    src: int = 0x8000  # "00 80": the PC
    reserved: bytes = b"\x00\x00\x00"
    check_mode: int = 0x00  # 0 = CRC-16
    display_mode: int = 0x00
    device_type: int = 0xFE  # any controller
    version: int = 0x02


def onbon_escape(body: bytes) -> bytes:
    out = bytearray()
    for b in body:
        out += _ONBON_ESCAPES.get(b, bytes((b,)))
    return bytes(out)


def encode_onbon(frame: OnbonFrame) -> bytes:
    """Preamble, escaped(header + data + CRC-16/ARC LE), 5A. The CRC covers the unescaped header
    and data."""
    if len(frame.reserved) != 3:
        raise hb.FrameError("Onbon reserved field must be 3 bytes")
    header = ONBON_HEADER.pack(frame.dst, frame.src, frame.reserved, frame.check_mode,
                               frame.display_mode, frame.device_type, frame.version, len(frame.data))
    body = header + frame.data
    return ONBON_PREAMBLE + onbon_escape(body + struct.pack("<H", hb.crc16_arc(body))) + bytes((ONBON_END,))


class OnbonParser:
    """Streaming parser for Onbon frames (controller replies use the same framing)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self.crc_errors = 0
        self.framing_errors = 0

    def feed(self, data: bytes) -> list[OnbonFrame]:
        out: list[OnbonFrame] = []
        for b in data:
            if b == ONBON_START:  # never inside a frame after escaping: (re)start
                if self._in_frame and self._buf:
                    self.framing_errors += 1
                self._buf.clear()
                self._in_frame = True
            elif not self._in_frame:
                continue
            elif b == ONBON_END:
                frame = self._finish(bytes(self._buf))
                if frame is not None:
                    out.append(frame)
                self._buf.clear()
                self._in_frame = False
            else:
                self._buf.append(b)
        return out

    def _finish(self, raw: bytes) -> OnbonFrame | None:
        body = bytearray()
        i = 0
        while i < len(raw):
            b = raw[i]
            if b in (0xA6, 0x5B):
                pair = (b, raw[i + 1]) if i + 1 < len(raw) else None
                if pair not in _ONBON_UNESCAPE:
                    self.framing_errors += 1
                    return None
                body.append(_ONBON_UNESCAPE[pair])  # type: ignore[index]
                i += 2
            else:
                body.append(b)
                i += 1
        if len(body) < ONBON_HEADER.size + 2:
            self.framing_errors += 1
            return None
        dst, src, reserved, check, display, dtype, version, length = ONBON_HEADER.unpack_from(body)
        if length != len(body) - ONBON_HEADER.size - 2:
            self.framing_errors += 1
            return None
        (crc,) = struct.unpack_from("<H", body, len(body) - 2)
        if crc != hb.crc16_arc(bytes(body[:-2])):
            self.crc_errors += 1
            return None
        return OnbonFrame(dst, bytes(body[ONBON_HEADER.size:-2]), src, reserved, check, display,
                          dtype, version)


def onbon_dynamic_text(text: str, *, width: int, height: int, area_id: int = 0,
                       stay_seconds: int = 10) -> bytes:
    """Data field that puts ``text`` into one dynamic area covering the screen.

    Command group A3, command 06 (real-time dynamic area update) with one area. The area layout
    follows the public BX-5K/6K protocol document as far as we know it; verify it on a controller
    before relying on it (the frame layer around it is what devices.md confirms)."""
    try:
        payload = text.encode("gb2312")
    except UnicodeEncodeError as exc:
        raise hb.FrameError(f"text {text!r} is not GB2312, which Onbon controllers need: {exc}") from exc
    area = struct.pack(
        "<BHHHHBBBH3sBBBBBBI",
        0x00,  # area type: dynamic text
        0, 0,  # x (units of 8 px), y
        width // 8, height,  # width (units of 8 px), height
        area_id,  # dynamic area number
        0x00,  # line spacing
        0x02,  # run mode: show until replaced
        stay_seconds,  # timeout
        b"\x00\x00\x00",  # reserved
        0x01,  # multi-line
        0x02,  # automatic line wrap
        0x01,  # display mode: static
        0x00,  # exit mode
        0x00,  # speed
        stay_seconds,  # stay time
        len(payload),
    ) + payload
    return bytes((0xA3, 0x06, 0x01, 0x00, 0x00, 0x00, 0x01)) + struct.pack("<H", len(area)) + area


class OnbonBxAdapter(LedAdapter):
    """An Onbon BX-5K/6K controller on its own port. Fire and forget: controller replies are not
    awaited (they are logged if a reader is attached)."""

    def __init__(self, write: Callable[[bytes], Any], *, address: int = 1, width: int = 64,
                 height: int = 32) -> None:
        self._write = write
        self.address = address
        self.width = width
        self.height = height

    @classmethod
    def open(cls, url: str, *, address: int = 1, baudrate: int = 57600, **kwargs: Any) -> "OnbonBxAdapter":
        port = open_port(url, baudrate=baudrate, name=f"onbon.{address}")
        return cls(port.write, address=address, **kwargs)

    def _send(self, data: bytes) -> "Future[None]":
        try:
            self._write(encode_onbon(OnbonFrame(self.address, data)))
        except Exception as exc:  # report through the future like the bus adapter does
            f: Future[None] = Future()
            f.set_exception(exc)
            return f
        return _done()

    def show_lines(self, lines: Sequence[LedLine]) -> "Future[None]":
        text = "\r\n".join(line.text for line in lines)
        return self._send(onbon_dynamic_text(text, width=self.width, height=self.height))

    def clear(self) -> "Future[None]":
        return self._send(onbon_dynamic_text("", width=self.width, height=self.height))

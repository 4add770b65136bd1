"""Simulated Chinese thermal ticket printer speaking ESC/POS.

It reads the same byte stream a real printer does (see :mod:`simulators.escpos_parser`), keeps every
cut slip as a :class:`PrintedTicket` (text lines with their size, QR payloads) that tests can read as
text and that renders to a PNG (Pillow with the WenQuanYi Zen Hei CJK font, QR via ``qrcode``), and
answers ``DLE EOT n`` status requests from its paper state.

Faults: paper near end (prints, answers 0x1E), paper out (prints nothing, answers 0x72), offline
(swallows everything and answers nothing, like a printer switched off), slowness (``delay`` seconds
before each answer). ``paper_tickets`` makes the roll run out by itself after that many slips.

Run it: ``python -m simulators.escpos_sim --tcp-port 9100 --png-dir /tmp/tickets``.
"""
from __future__ import annotations

import argparse
import enum
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import qrcode
from PIL import Image, ImageDraw, ImageFont

from .base import DeviceBase, SimulatorServer
from .escpos_parser import (
    Align, Bold, CharSize, ChineseMode, Cut, EscPosParser, Feed, Init, Invert, LineFeed, PrintMode, Qr,
    Skipped, StatusRequest, Text,
)

log = logging.getLogger(__name__)

FONT_PATH = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
DOTS_80MM = 576  # printable dots of an 80 mm head at 203 dpi (58 mm: 384)
CHAR_DOTS = 24  # font A is 12 x 24 dots, a Chinese character 24 x 24
LINE_GAP = 6
_ALIGN = {0: "left", 1: "center", 2: "right"}
_QR_ERROR = {48: "L", 49: "M", 50: "Q", 51: "H"}
_QR_ERROR_LIB = {
    "L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H,
}


class PaperState(str, enum.Enum):
    OK = "ok"
    NEAR_END = "near_end"
    OUT = "out"


# DLE EOT 4 answers: bits 1 and 4 always set; 2-3 near-end sensor; 5-6 roll end
PAPER_STATUS_BYTE = {PaperState.OK: 0x12, PaperState.NEAR_END: 0x1E, PaperState.OUT: 0x72}


def char_columns(ch: str) -> int:
    """In GB mode every multibyte character gets a 24-dot cell (two columns), ASCII a 12-dot one."""
    return 1 if ch.isascii() else 2


def display_columns(text: str) -> int:
    """Columns a line takes in font A."""
    return sum(char_columns(ch) for ch in text)


@dataclass(frozen=True)
class PrintedLine:
    text: str
    width: int = 1  # magnification
    height: int = 1
    bold: bool = False
    align: str = "left"
    inverted: bool = False

    @property
    def columns(self) -> int:
        return display_columns(self.text) * self.width


@dataclass(frozen=True)
class PrintedQr:
    payload: str
    module_size: int = 3
    error_level: str = "L"
    align: str = "left"

    @property
    def width_dots(self) -> int:
        """Printed width: modules of the QR version this payload needs, times the module size."""
        code = qrcode.QRCode(error_correction=_QR_ERROR_LIB[self.error_level], border=0)
        code.add_data(self.payload)
        code.make(fit=True)
        return code.modules_count * self.module_size


PrintedItem = Union[PrintedLine, PrintedQr]


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_PATH, size)


def _render_line(line: PrintedLine) -> Image.Image:
    """Characters in the printer's cells: 12 dots wide (24 for a wide character), 24 high."""
    font = _font(CHAR_DOTS - 2)
    height = CHAR_DOTS + 4
    if not line.text:
        return Image.new("L", (1, height * line.height + LINE_GAP), 255)
    half = CHAR_DOTS // 2
    ink, paper = (255, 0) if line.inverted else (0, 255)
    img = Image.new("L", (max(1, display_columns(line.text) * half), height), paper)
    draw = ImageDraw.Draw(img)
    x = 0
    for ch in line.text:
        cell = half * char_columns(ch)
        glyph_w = font.getlength(ch)
        draw.text((x + (cell - glyph_w) / 2, 3), ch, font=font, fill=ink,
                  stroke_width=1 if line.bold else 0, stroke_fill=ink)
        x += cell
    # the head magnifies dots, it does not use a bigger font
    img = img.resize((img.width * line.width, height * line.height), Image.Resampling.NEAREST)
    out = Image.new("L", (img.width, img.height + LINE_GAP), 255)
    out.paste(img, (0, 0))
    return out


def _render_qr(qr: PrintedQr) -> Image.Image:
    code = qrcode.QRCode(error_correction=_QR_ERROR_LIB[qr.error_level], box_size=qr.module_size, border=0)
    code.add_data(qr.payload)
    code.make(fit=True)
    img = code.make_image(fill_color="black", back_color="white").get_image().convert("L")
    out = Image.new("L", (img.width, img.height + 2 * LINE_GAP), 255)
    out.paste(img, (0, LINE_GAP))
    return out


@dataclass
class PrintedTicket:
    """One slip, from the first printed line to the cut."""

    items: list[PrintedItem] = field(default_factory=list)
    partial_cut: bool = False

    @property
    def lines(self) -> list[PrintedLine]:
        return [item for item in self.items if isinstance(item, PrintedLine)]

    @property
    def qr_payloads(self) -> list[str]:
        return [item.payload for item in self.items if isinstance(item, PrintedQr)]

    @property
    def text(self) -> str:
        """The slip as plain text; a QR code shows as ``[QR] payload``."""
        return "\n".join(
            item.text if isinstance(item, PrintedLine) else f"[QR] {item.payload}" for item in self.items
        )

    def render(self, paper_dots: int = DOTS_80MM) -> Image.Image:
        """The slip as the head would print it (grayscale), wide lines clipped at the paper edge."""
        margin = 24  # unprintable strip at each side of the paper and above the first line
        blocks = [(_render_line(i) if isinstance(i, PrintedLine) else _render_qr(i), i.align)
                  for i in self.items]
        height = sum(img.height for img, _ in blocks) + 2 * margin
        paper = Image.new("L", (paper_dots + 2 * margin, height), 255)
        y = margin
        for img, align in blocks:
            x = {"left": 0, "center": (paper_dots - img.width) // 2, "right": paper_dots - img.width}[align]
            img = img.crop((0, 0, min(img.width, paper_dots), img.height))  # the head ends at the edge
            paper.paste(img, (margin + max(0, x), y))
            y += img.height
        return paper

    def save_png(self, path: str | Path, paper_dots: int = DOTS_80MM) -> Path:
        path = Path(path)
        self.render(paper_dots).save(path, format="PNG")
        return path


class EscPosPrinterSimulator(DeviceBase):
    """A thermal printer: parse, print into :attr:`printed`, answer status."""

    def __init__(
        self,
        *,
        paper: PaperState | str = PaperState.OK,
        chinese_default: bool = True,
        paper_tickets: int | None = None,
        near_end_tickets: int = 3,
        paper_dots: int = DOTS_80MM,
        delay: float = 0.0,
        offline: bool = False,
        png_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.paper = PaperState(paper)
        self.paper_status_override: int | None = None  # answer this byte instead (printers set more bits)
        self.paper_tickets = paper_tickets  # slips left on the roll; None: endless roll
        self.near_end_tickets = near_end_tickets
        self.paper_dots = paper_dots
        self.delay = delay
        self.offline = offline
        self.png_dir = Path(png_dir) if png_dir else None
        self.parser = EscPosParser(chinese=chinese_default)
        self.printed: list[PrintedTicket] = []
        self.status_requests = 0
        self.skipped: list[bytes] = []  # commands and garbage not modelled, for tests and logs
        self._cond = threading.Condition()
        self._reset_modes()
        self._current: list[PrintedItem] = []
        self._line: list[str] = []
        self._line_style: tuple[int, int, bool, str, bool] | None = None
        self._qr_data = b""

    # ---- faults ------------------------------------------------------------------------------
    @property
    def offline(self) -> bool:
        return self.silent

    @offline.setter
    def offline(self, value: bool) -> None:
        self.silent = value

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "EscPosPrinterSimulator":
        """Build from a config mapping; unknown keys and bad values name the key."""
        kinds: dict[str, tuple[type, ...]] = {
            "paper": (str,), "chinese_default": (bool,), "paper_tickets": (int, type(None)),
            "near_end_tickets": (int,), "paper_dots": (int,), "delay": (int, float), "offline": (bool,),
            "png_dir": (str, type(None)),
        }
        for key, value in options.items():
            if key not in kinds:
                raise ValueError(f"escpos simulator: unknown option {key!r}; expected one of {sorted(kinds)}")
            if not isinstance(value, kinds[key]) or (isinstance(value, bool) and bool not in kinds[key]):
                raise ValueError(f"escpos simulator: option {key!r} must be {kinds[key]}, got {value!r}")
        if "paper" in options and options["paper"] not in {p.value for p in PaperState}:
            raise ValueError(f"escpos simulator: option 'paper' must be ok, near_end or out, got {options['paper']!r}")
        return cls(**options)

    @property
    def paper_status_byte(self) -> int:
        if self.paper_status_override is not None:
            return self.paper_status_override
        return PAPER_STATUS_BYTE[self.paper]

    # ---- byte stream -------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        if self.offline:
            return
        with self._cond:
            for event in self.parser.feed(data):
                self._handle(event)

    def _reset_modes(self) -> None:
        self._width = self._height = 1
        self._bold = False
        self._inverted = False
        self._align = 0
        self._qr_size = 3
        self._qr_error = "L"

    def _handle(self, event: object) -> None:
        printing = self.paper != PaperState.OUT
        if isinstance(event, StatusRequest):
            self.status_requests += 1
            self.send(bytes([self._status(event.n)]))
        elif isinstance(event, Text):
            if printing:
                if self._line_style is None:
                    self._line_style = self._style()
                else:  # a line mixing sizes is as tall as its tallest part
                    w, h, b, a, i = self._line_style
                    self._line_style = (max(w, self._width), max(h, self._height), b or self._bold, a,
                                        i or self._inverted)
                self._line.append(event.text)
        elif isinstance(event, LineFeed):
            self._end_line()
        elif isinstance(event, Feed):
            self._end_line(force=False)
            if printing:
                self._current.extend(PrintedLine("") for _ in range(event.lines))
        elif isinstance(event, Init):
            self._end_line(force=False)
            self._reset_modes()
        elif isinstance(event, PrintMode):
            self._bold = bool(event.mode & 0x08)
            self._height = 2 if event.mode & 0x10 else 1
            self._width = 2 if event.mode & 0x20 else 1
        elif isinstance(event, CharSize):
            self._width, self._height = event.width, event.height
        elif isinstance(event, Align):
            self._align = event.align
        elif isinstance(event, Bold):
            self._bold = event.on
        elif isinstance(event, Invert):
            self._inverted = event.on
        elif isinstance(event, Qr):
            self._qr(event, printing)
        elif isinstance(event, Cut):
            self._cut(event.partial)
        elif isinstance(event, Skipped):
            self.skipped.append(event.data)
            log.debug("skipped %s", event.data[:16].hex(" "))
        elif isinstance(event, ChineseMode):
            pass  # the parser already decodes accordingly

    def _style(self) -> tuple[int, int, bool, str, bool]:
        return self._width, self._height, self._bold, _ALIGN.get(self._align, "left"), self._inverted

    def _status(self, n: int) -> int:
        out = self.paper == PaperState.OUT
        if n == 4:
            return self.paper_status_byte
        if n == 1:  # printer: bit 3 offline (a printer without paper stops)
            return 0x1E if out else 0x16
        if n == 2:  # offline cause: bit 5 stopped by paper end
            return 0x32 if out else 0x12
        return 0x12  # n == 3: no error

    def _end_line(self, force: bool = True) -> None:
        if self._line or force:
            if self.paper != PaperState.OUT:
                self._current.append(PrintedLine("".join(self._line), *(self._line_style or self._style())))
        self._line.clear()
        self._line_style = None

    def _qr(self, event: Qr, printing: bool) -> None:
        if event.fn == 67 and event.data:
            self._qr_size = max(1, min(16, event.data[0]))
        elif event.fn == 69 and event.data:
            self._qr_error = _QR_ERROR.get(event.data[0], "L")
        elif event.fn == 80:
            self._qr_data = event.data
        elif event.fn == 81 and printing and self._qr_data:
            self._end_line(force=False)
            self._current.append(PrintedQr(self._qr_data.decode("utf-8", errors="replace"), self._qr_size,
                                           self._qr_error, _ALIGN.get(self._align, "left")))

    def _cut(self, partial: bool) -> None:
        self._end_line(force=False)
        items = self._current
        self._current = []
        while items and isinstance(items[-1], PrintedLine) and not items[-1].text:
            items.pop()
        while items and isinstance(items[0], PrintedLine) and not items[0].text:
            items.pop(0)
        if not items:
            return
        ticket = PrintedTicket(items, partial)
        self.printed.append(ticket)
        if self.paper_tickets is not None:
            self.paper_tickets = max(0, self.paper_tickets - 1)
            if self.paper_tickets == 0:
                self.paper = PaperState.OUT
            elif self.paper_tickets <= self.near_end_tickets:
                self.paper = PaperState.NEAR_END
        if self.png_dir is not None:
            self.png_dir.mkdir(parents=True, exist_ok=True)
            path = ticket.save_png(self.png_dir / f"ticket-{len(self.printed):04d}.png", self.paper_dots)
            log.info("printed slip %d -> %s", len(self.printed), path)
        self._cond.notify_all()

    # ---- for tests and demos -----------------------------------------------------------------
    def wait_for_tickets(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` slips have been cut; False after ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.printed) >= count, timeout)

    def save_png(self, path: str | Path, index: int = -1) -> Path:
        """Save printed slip ``index`` (the last by default) as a PNG."""
        with self._cond:
            ticket = self.printed[index]
        return ticket.save_png(path, self.paper_dots)


def main(argv: list[str] | None = None) -> None:
    """Serve one simulated printer on a pty and TCP until interrupted."""
    ap = argparse.ArgumentParser(description="Simulated ESC/POS ticket printer")
    ap.add_argument("--tcp-port", type=int, default=0, help="TCP port (9100 like a network printer; 0: any)")
    ap.add_argument("--paper", choices=[p.value for p in PaperState], default="ok")
    ap.add_argument("--paper-tickets", type=int, default=None, help="slips left on the roll")
    ap.add_argument("--png-dir", default=None, help="save every slip as a PNG here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sim = EscPosPrinterSimulator(paper=args.paper, paper_tickets=args.paper_tickets, png_dir=args.png_dir)
    with SimulatorServer(sim, name="escpos", tcp_port=args.tcp_port) as server:
        log.info("printer on %s and tcp://127.0.0.1:%s", server.pty_path, server.tcp_port)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

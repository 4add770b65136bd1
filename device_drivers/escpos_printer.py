"""ESC/POS thermal ticket printers (Chinese models in GB18030 mode).

Three layers, each usable alone:

* :func:`render_ticket` turns a :class:`TicketSlip` into the printer's bytes. python-escpos builds the
  commands (through its ``Dummy`` printer); the text is encoded here as GB18030, because
  python-escpos only does so for lines holding a character in U+4E00..U+9FA5, so a line of full-width
  punctuation ("：") or a rarer character (𠮷, a four-byte GB18030 sequence) would print as ``?``.
* :class:`EscPosPrinter` sends bytes and asks for the paper state (``DLE EOT 4``) over a serial port
  URL (anything ``serial_for_url`` opens), raw TCP (``tcp://host:9100``) or USB (``usb://VID:PID``).
* :class:`EscPosPrinterService` keeps one printer open under :class:`DeviceSupervisor`, polls the paper
  and publishes online / degraded / offline.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import qrcode
import serial
from escpos.constants import QR_ECLEVEL_M, RT_STATUS_PAPER
from escpos.printer import Dummy

from .health import Health, HealthEvent, HealthReporter
from .supervisor import DeviceSupervisor
from .transport import PortError, open_port

log = logging.getLogger(__name__)

KIND = "escpos"
FS_CHINESE_ON = b"\x1c\x26"  # FS &
QR_MAX_BYTES = 2331  # byte-mode capacity of a version-40 QR code at error level M

# DLE EOT 4 answer: bits 1 and 4 are always 1, bits 0 and 7 always 0; printers set either or both
# bits of a sensor pair, so test the pair, not an exact byte.
_STATUS_FIXED_MASK, _STATUS_FIXED_VALUE = 0x93, 0x12
_NEAR_END_BITS = 0x0C
_ROLL_END_BITS = 0x60


# ---- errors --------------------------------------------------------------------------------
class PrinterError(Exception):
    """Base of the printer errors; the message is Chinese, for the operator."""


class PrinterOffline(PrinterError):
    """No answer to a status request within the timeout (switched off, cable, wrong baud rate)."""


class PaperOut(PrinterError):
    """The paper roll is out; nothing can be printed."""


class PaperOutDuringPrint(PaperOut):
    """The roll ran out while the slip was sent: it may be cut short, so it must not count as issued
    without a look (the citizen may hold part of a slip)."""


class PrinterNotFound(PortError):
    """A USB printer with the configured vendor/product id is not plugged in (or not accessible)."""


# ---- paper status --------------------------------------------------------------------------
class PaperStatus(str, enum.Enum):
    OK = "ok"
    NEAR_END = "near_end"
    OUT = "out"


def decode_paper_status(byte: int) -> PaperStatus | None:
    """Decode a ``DLE EOT 4`` answer; ``None`` when ``byte`` cannot be one (fixed bits wrong)."""
    if byte & _STATUS_FIXED_MASK != _STATUS_FIXED_VALUE:
        return None
    if byte & _ROLL_END_BITS:
        return PaperStatus.OUT
    if byte & _NEAR_END_BITS:
        return PaperStatus.NEAR_END
    return PaperStatus.OK


# ---- rendering -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TicketSlip:
    """What goes on one paper slip. Plain render input: the printer knows nothing of queues."""

    hall_name: str  # 淮安市政务服务中心
    ticket_number: str  # A001, printed big
    queue_name: str  # 不动产登记
    people_ahead: int
    wait_minutes: int | None  # None: no estimate printed
    issued_at: datetime
    qr_url: str  # what the QR code holds, e.g. the ticket's progress page
    notes: tuple[str, ...] = field(default_factory=tuple)
    priority_label: str | None = None  # e.g. 优先 (elderly, disabled), printed inverted

    def __post_init__(self) -> None:
        if not self.ticket_number.strip():
            raise ValueError("ticket_number must not be empty")
        if self.people_ahead < 0:
            raise ValueError(f"people_ahead must be >= 0, got {self.people_ahead}")
        if len(self.qr_url.encode("utf-8")) > QR_MAX_BYTES:
            raise ValueError(f"qr_url is {len(self.qr_url.encode())} bytes; a QR code holds at most {QR_MAX_BYTES}")
        object.__setattr__(self, "notes", tuple(self.notes))


def char_columns(ch: str) -> int:
    """In GB mode a Chinese printer prints every multibyte GB18030 character (that is, every non-ASCII
    one, even "·" or "é") in a 24-dot cell: two columns of font A."""
    return 1 if ch.isascii() else 2


def display_columns(text: str) -> int:
    """Columns a text takes in font A."""
    return sum(char_columns(ch) for ch in text)


def wrap_columns(text: str, columns: int) -> list[str]:
    """Split ``text`` into pieces at most ``columns`` wide (a printer would wrap mid-character)."""
    lines: list[str] = []
    current, width = "", 0
    for ch in text:
        w = char_columns(ch)
        if current and width + w > columns:
            lines.append(current)
            current, width = "", 0
        current += ch
        width += w
    lines.append(current)
    return lines


def _clean(text: str) -> list[str]:
    """Lines of ``text`` with control characters removed, so no field can inject printer commands."""
    return [
        "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in part)
        for part in text.split("\n")
    ]


def encode_text(text: str) -> bytes:
    """GB18030 for every line: it is ASCII-compatible, so pure ASCII lines come out unchanged, and it
    encodes every Unicode character (four-byte sequences beyond GBK), so nothing becomes ``?``."""
    return text.encode("gb18030")


class _Slip:
    """Small builder over python-escpos's Dummy printer, adding text encoded by us."""

    def __init__(self, columns: int) -> None:
        self.p = Dummy()
        self.columns = columns
        self._style: tuple[int, int, bool, str] | None = None

    def line(self, text: str, *, width: int = 1, height: int = 1, bold: bool = False,
             align: str = "left") -> None:
        if self._style != (width, height, bold, align):  # send only what changes the printer state
            self.p.set(align=align, bold=bold, custom_size=True, width=width, height=height)
            self._style = (width, height, bold, align)
        for part in _clean(text):
            for piece in wrap_columns(part, max(1, self.columns // width)):
                self.p._raw(encode_text(piece) + b"\n")  # noqa: SLF001 - Dummy's raw sink is the API

    def forget_style(self) -> None:
        """The printer state was changed behind :meth:`line`'s back: send the full style next time."""
        self._style = None

    def raw(self, data: bytes) -> None:
        self.p._raw(data)  # noqa: SLF001


def qr_module_size(payload: str, columns: int, preferred: int | None = None) -> int:
    """Dots per QR module: as big as ``preferred`` (6 on 80 mm, 4 on 58 mm) but never wider than the
    paper (``columns`` x 12 dots), since a long URL needs a bigger QR version."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(payload)
    code.make(fit=True)
    preferred = preferred or (6 if columns >= 42 else 4)
    return max(1, min(preferred, (columns * 12) // code.modules_count, 16))


def render_ticket(slip: TicketSlip, *, columns: int = 48, qr_module: int | None = None) -> bytes:
    """Bytes for one slip: 48 columns for 80 mm paper, 32 for 58 mm."""
    s = _Slip(columns)
    s.p.hw("INIT")  # ESC @
    s.raw(FS_CHINESE_ON)  # Chinese printers default to it, but a previous job may have left it off
    # double width only when the name fits on one line: a lone wrapped character looks broken
    hall_width = 2 if display_columns(slip.hall_name) * 2 <= columns else 1
    s.line(slip.hall_name, width=hall_width, height=2, bold=True, align="center")
    s.line(slip.queue_name, height=2, align="center")
    s.line("-" * columns, align="center")
    if slip.priority_label:
        s.raw(b"\x1dB\x01")  # GS B 1: white on black
        s.line(f" {slip.priority_label} ", width=2, height=2, bold=True, align="center")
        s.raw(b"\x1dB\x00")
    s.line(slip.ticket_number, width=4, height=4, bold=True, align="center")  # GS ! 0x33
    s.line(f"您前面还有 {slip.people_ahead} 人等候", align="center")
    if slip.wait_minutes is not None:
        s.line(f"预计等待：约 {slip.wait_minutes} 分钟", align="center")
    s.line(f"取号时间：{slip.issued_at:%Y-%m-%d %H:%M:%S}", align="center")
    if slip.qr_url:
        s.p.set(align="center")  # printers centre the QR code by ESC a
        s.forget_style()
        module = qr_module_size(slip.qr_url, columns, qr_module)
        s.p.qr(slip.qr_url, native=True, size=module, ec=QR_ECLEVEL_M)  # GS ( k: store, then print
        s.line("扫码查看排队进度", align="center")
    if slip.notes:
        s.line("-" * columns, align="center")
        for note in slip.notes:
            s.line(note)
    s.p.set(align="left", bold=False, custom_size=True, width=1, height=1)
    s.p.cut()  # ESC d 6 (clear the cutter), GS V 0
    return s.p.output


# ---- transports ----------------------------------------------------------------------------
class _Link(Protocol):
    def write(self, data: bytes) -> None: ...

    def read_byte(self, timeout: float) -> bytes: ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


class _PortLink:
    """A pyserial port: device path, socket://, rfc2217://, hwgrep://, or raw TCP."""

    POLL = 0.05

    def __init__(self, url: str, baudrate: int, name: str, log_traffic: bool) -> None:
        self.url = url
        self.port = open_port(url, baudrate=baudrate, timeout=self.POLL, write_timeout=10.0,
                              name=name, log_traffic=log_traffic)

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read_byte(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            data = self.port.read(1)
            if data or time.monotonic() >= deadline:
                return data

    def discard_input(self) -> None:
        self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()


class _UsbLink:
    """A USB printer class device through python-escpos ``Usb`` (pyusb + libusb)."""

    def __init__(self, vid: int, pid: int, in_ep: int, out_ep: int) -> None:
        import usb.core  # optional dependency: only USB printers need pyusb and libusb
        from escpos.printer import Usb

        self.ident = f"{vid:04x}:{pid:04x}"
        self._usb_core = usb.core
        try:
            found = usb.core.find(idVendor=vid, idProduct=pid)
        except usb.core.NoBackendError as exc:
            raise PrinterNotFound(
                f"无法访问USB打印机 {self.ident}：未找到 libusb（请安装 libusb-1.0-0）") from exc
        if found is None:
            raise PrinterNotFound(f"未找到USB打印机 {self.ident}，请检查USB线和打印机电源")
        self.in_ep = in_ep
        self.printer = Usb(vid, pid, timeout=5000, in_ep=in_ep, out_ep=out_ep)
        try:
            self.printer.open()
        except Exception as exc:  # python-escpos wraps pyusb errors in its own types
            raise PrinterNotFound(f"无法打开USB打印机 {self.ident}：{exc}") from exc
        self._pending = b""

    def write(self, data: bytes) -> None:
        self.printer._raw(data)  # noqa: SLF001 - the transport's documented raw sink

    def read_byte(self, timeout: float) -> bytes:
        if not self._pending:
            try:
                self._pending = bytes(self.printer.device.read(self.in_ep, 64, int(timeout * 1000)))
            except self._usb_core.USBTimeoutError:
                return b""
        data, self._pending = self._pending[:1], self._pending[1:]
        return data

    def discard_input(self) -> None:
        self._pending = b""

    def close(self) -> None:
        self.printer.close()


def _open_link(url: str, baudrate: int, name: str, log_traffic: bool) -> _Link:
    parts = urlsplit(url)
    if parts.scheme == "usb":
        try:
            vid_s, pid_s = parts.netloc.split(":")
            vid, pid = int(vid_s, 16), int(pid_s, 16)
        except ValueError:
            raise ValueError(f"printer URL {url!r}: expected usb://VID:PID in hex, e.g. usb://0416:5011") from None
        query = parse_qs(parts.query)
        in_ep = int(query.get("in_ep", ["0x82"])[0], 0)
        out_ep = int(query.get("out_ep", ["0x01"])[0], 0)
        return _UsbLink(vid, pid, in_ep, out_ep)
    if parts.scheme == "tcp":  # raw TCP (JetDirect port 9100) is what pyserial's socket:// speaks
        if not parts.hostname:
            raise ValueError(f"printer URL {url!r}: expected tcp://host:9100")
        url = f"socket://{parts.hostname}:{parts.port or 9100}"
    return _PortLink(url, baudrate, name, log_traffic)


# ---- the printer ---------------------------------------------------------------------------
class EscPosPrinter:
    """One ESC/POS printer. Thread-safe: a status poll and a print never interleave on the wire."""

    kind = KIND

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        timeout: float = 1.0,
        columns: int = 48,
        name: str | None = None,
        log_traffic: bool = False,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeout = timeout
        self.columns = columns
        self.name = name or url
        self.log_traffic = log_traffic
        self._link: _Link | None = None
        self._lock = threading.RLock()

    def open(self) -> "EscPosPrinter":
        with self._lock:
            if self._link is None:
                self._link = _open_link(self.url, self.baudrate, self.name, self.log_traffic)
                log.info("%s: opened %s", self.name, self.url)
        return self

    def close(self) -> None:
        with self._lock:
            if self._link is not None:
                link, self._link = self._link, None
                link.close()

    @property
    def is_open(self) -> bool:
        return self._link is not None

    def __enter__(self) -> "EscPosPrinter":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require(self) -> _Link:
        if self._link is None:
            raise PrinterOffline("打印机未连接")
        return self._link

    def write(self, data: bytes) -> None:
        """Send raw bytes; a broken port raises :class:`PortError` naming the URL."""
        with self._lock:
            try:
                self._require().write(data)
            except (serial.SerialException, OSError) as exc:
                if isinstance(exc, PortError):
                    raise
                raise PortError(f"{self.url}: write failed: {exc}") from exc

    def paper_status(self, timeout: float | None = None) -> PaperStatus:
        """Ask ``DLE EOT 4``; raise :class:`PrinterOffline` when no status byte comes in time."""
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            link = self._require()
            try:
                link.discard_input()  # a late answer to an earlier, timed-out request
                link.write(RT_STATUS_PAPER)
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    data = link.read_byte(left)
                    if not data:
                        break
                    status = decode_paper_status(data[0])
                    if status is not None:
                        return status
                    log.debug("%s: ignored non-status byte %02x", self.name, data[0])
            except (serial.SerialException, OSError) as exc:
                if isinstance(exc, PortError):
                    raise
                raise PortError(f"{self.url}: status request failed: {exc}") from exc
        raise PrinterOffline(f"打印机无响应（{timeout:.1f} 秒内未应答状态查询）")

    def print_ticket(self, slip: TicketSlip) -> PaperStatus:
        """Print one slip and return the paper state read back after it.

        The slip counts as issued only when this returns: the paper is checked before (out ->
        :class:`PaperOut`, nothing sent) and the printer must answer a status request after the job
        (silence -> :class:`PrinterOffline`; roll ran out meanwhile -> :class:`PaperOutDuringPrint`).

        ``DLE EOT`` is a real-time command: the answer proves the printer took the job and still has
        paper, not that the head has finished the slip.
        """
        data = render_ticket(slip, columns=self.columns)
        with self._lock:
            if self.paper_status() == PaperStatus.OUT:
                raise PaperOut("打印机缺纸")
            self.write(data)
            try:
                after = self.paper_status()
            except PrinterOffline:
                raise PrinterOffline("打印机无响应，无法确认出票") from None
            if after == PaperStatus.OUT:
                raise PaperOutDuringPrint("打印机缺纸，本张票可能未完整打印")
        log.info("%s: printed ticket %s (%d bytes), paper %s", self.name, slip.ticket_number, len(data),
                 after.value)
        return after


# ---- supervised service --------------------------------------------------------------------
_HEALTH = {
    PaperStatus.OK: (Health.ONLINE, ""),
    PaperStatus.NEAR_END: (Health.DEGRADED, "纸将用尽"),
    PaperStatus.OUT: (Health.OFFLINE, "打印机缺纸"),
}
REASON_NO_ANSWER = "打印机无响应"


class EscPosPrinterService:
    """Keeps one printer open (reconnecting with backoff when the port fails), polls the paper every
    ``poll_interval`` seconds and publishes health on change. The kiosk prints through it."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        poll_interval: float = 5.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        **printer_options: Any,
    ) -> None:
        self.name = name
        self.url = url
        self.poll_interval = poll_interval
        self._printer_options = printer_options
        self.reporter = HealthReporter(name, KIND)
        self._printer: EscPosPrinter | None = None
        self.supervisor: DeviceSupervisor[EscPosPrinter] = DeviceSupervisor(
            self.reporter, self._connect, self._serve, self._close,
            initial_backoff=initial_backoff, max_backoff=max_backoff,
        )

    @property
    def health(self) -> HealthEvent | None:
        return self.reporter.current

    def start(self) -> "EscPosPrinterService":
        self.supervisor.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.supervisor.stop(timeout)

    def _connect(self) -> EscPosPrinter:
        printer = EscPosPrinter(self.url, name=self.name, **self._printer_options).open()
        self._printer = printer
        return printer

    def _close(self, printer: EscPosPrinter) -> None:
        if self._printer is printer:
            self._printer = None
        printer.close()

    def _publish(self, status: PaperStatus) -> None:
        self.reporter.report(*_HEALTH[status])

    def _serve(self, printer: EscPosPrinter, stop: threading.Event) -> None:
        # A silent printer on a working port is reported, not reconnected: reopening the port does
        # not switch a printer on. Port errors propagate and the supervisor reconnects.
        while not stop.is_set():
            try:
                self._publish(printer.paper_status())
            except PrinterOffline:
                self.reporter.report(Health.OFFLINE, REASON_NO_ANSWER)
            stop.wait(self.poll_interval)

    def print_ticket(self, slip: TicketSlip) -> PaperStatus:
        """Print through the supervised printer; errors also update health at once."""
        printer = self._printer
        if printer is None:
            raise PrinterOffline("打印机未连接")
        try:
            status = printer.print_ticket(slip)
        except PaperOut:
            self.reporter.report(Health.OFFLINE, "打印机缺纸")
            raise
        except PrinterOffline:
            self.reporter.report(Health.OFFLINE, REASON_NO_ANSWER)
            raise
        self._publish(status)
        return status

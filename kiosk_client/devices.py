"""The kiosk's own devices: the ID card reader (SAM, or a PC/SC reader for the 社保卡) and the ticket
printer, each under its driver's supervised service from :mod:`device_drivers`.

The last card read is held in memory only (never written anywhere) until it is used for one ticket,
the citizen goes back to the start, or ``card_seconds`` pass.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from device_drivers.health import Health, HealthEvent
from hall_server.rules import identity

from .config import KioskConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Card:
    id_number: str
    name: str
    birth_date: dt.date | None
    read_at: float  # monotonic
    seq: int  # increases with every read, so the screen notices a second swipe

    def public(self, elderly_age: int | None, today: dt.date) -> dict[str, Any]:
        """What the screen may show: masked name and number, age band (on ``today``, the hall's date),
        never the full number."""
        try:
            masked = identity.mask_id(self.id_number)
            age = identity.age_on(self.id_number, today)
        except identity.InvalidIdNumber:
            masked, age = self.id_number[:4] + "*" * 10 + self.id_number[-4:], None
        return {"name": identity.mask_name(self.name), "id_masked": masked, "seq": self.seq,
                "elderly": bool(age is not None and elderly_age is not None and age >= elderly_age)}


class CardSlot:
    """The latest card or card error; consumed once per ticket."""

    def __init__(self, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()
        self._card: Card | None = None
        self._error: tuple[str, int] | None = None
        self._seq = 0

    def put(self, id_number: str, name: str, birth_date: dt.date | None) -> None:
        with self._lock:
            self._seq += 1
            self._card = Card(id_number, name, birth_date, time.monotonic(), self._seq)
            self._error = None
        log.info("ID card read (%s)", identity.mask_name(name))

    def fail(self, message: str) -> None:
        with self._lock:
            self._seq += 1
            self._card, self._error = None, (message, self._seq)
        log.info("ID card not read: %s", message)

    def current(self) -> Card | None:
        with self._lock:
            if self._card is not None and time.monotonic() - self._card.read_at > self.keep_seconds:
                self._card = None
            return self._card

    def error(self) -> tuple[str, int] | None:
        with self._lock:
            return self._error

    def clear(self) -> None:
        with self._lock:
            self._card, self._error = None, None


PRINTER_PARTS = {"ok": "正常", "near_end": "纸将用尽", "paper_out": "打印机缺纸", "offline": "打印机无响应"}


class KioskDevices:
    """Starts the configured reader and printer services and condenses their health for the kiosk."""

    def __init__(self, cfg: KioskConfig, on_change: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.card = CardSlot(cfg.card_seconds)
        self.on_change = on_change or (lambda: None)
        self.reader: Any = None
        self.printer: Any = None
        self._reader_health: HealthEvent | None = None

    # ---- start / stop ------------------------------------------------------------------------
    def start(self) -> "KioskDevices":
        r = self.cfg.reader
        if r.kind == "sam":
            from device_drivers.sam import CardError, CardRead, SamReaderService

            def on_card(event: object) -> None:
                if isinstance(event, CardRead):
                    d = event.data
                    self.card.put(d.id_number, d.name, d.birth_date)
                elif isinstance(event, CardError):
                    self.card.fail(event.message)
                self.on_change()

            assert r.url is not None
            self.reader = SamReaderService(r.url, on_card, name=f"{self.cfg.device}.reader", baudrate=r.baudrate,
                                           **r.options)
            self.reader.reporter.subscribe(self._reader_changed)
            self.reader.start()
        elif r.kind == "pcsc":
            from device_drivers.pcsc import CardError as PcscCardError
            from device_drivers.pcsc import PcscReaderService, SocialSecurityCardRead

            def on_pcsc(event: object) -> None:
                if isinstance(event, SocialSecurityCardRead):
                    d = event.data
                    if d.id_number and d.id_number_valid:
                        self.card.put(d.id_number, d.name or "", d.birth_date)
                    else:
                        self.card.fail("未能读取社保卡上的身份证号码，请改用身份证或到导服台取号")
                elif isinstance(event, PcscCardError):
                    self.card.fail(event.message)
                self.on_change()

            self.reader = PcscReaderService.from_options({"name": f"{self.cfg.device}.reader", **r.options})
            self.reader.subscribe(on_pcsc)
            self.reader.subscribe_health(self._reader_changed)
            self.reader.start()
        if self.cfg.printer is not None:
            from device_drivers.escpos_printer import EscPosPrinterService

            p = self.cfg.printer
            self.printer = EscPosPrinterService(f"{self.cfg.device}.printer", p.url, poll_interval=p.poll_seconds,
                                                baudrate=p.baudrate, columns=p.columns)
            self.printer.reporter.subscribe(lambda _e: self.on_change())
            self.printer.start()
        return self

    def stop(self) -> None:
        for dev in (self.reader, self.printer):
            if dev is not None:
                try:
                    dev.stop()
                except Exception:
                    log.exception("stopping %s failed", dev)

    def _reader_changed(self, event: HealthEvent) -> None:
        self._reader_health = event
        self.on_change()

    # ---- condensed state ---------------------------------------------------------------------
    def printer_state(self) -> str:
        """ok / near_end / paper_out / offline."""
        if self.printer is None:
            return "offline"
        ev = self.printer.health
        if ev is None:
            return "offline"
        if ev.health == Health.ONLINE:
            return "ok"
        if ev.health == Health.DEGRADED:
            return "near_end"
        return "paper_out" if "缺纸" in ev.reason else "offline"

    def printer_ready(self) -> bool:
        return self.printer_state() in ("ok", "near_end")

    def reader_state(self) -> str:
        """online / degraded / offline / none."""
        if self.cfg.reader.kind == "none":
            return "none"
        ev = self._reader_health
        return ev.health.value if ev is not None else "offline"

    def reader_ready(self) -> bool:
        return self.reader_state() in ("online", "degraded")

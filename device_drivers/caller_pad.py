"""Caller pads (呼叫器): a clerk's keypad with a small display, on the hall bus.

The pad never speaks on its own (half-duplex bus): the bus master polls it, and each key press the
pad queued comes back in an EVENTS reply, turned here into a typed :class:`CallerEvent`. The host
updates the pad's display with the current ticket and how many people wait.
"""
from __future__ import annotations

import enum
import logging
import queue
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from . import hallbus as hb
from .hallbus_master import acked

log = logging.getLogger(__name__)


class CallerKey(str, enum.Enum):
    CALL_NEXT = "call_next"  # 叫号
    RECALL = "recall"  # 重呼
    START = "start"  # 开始办理
    FINISH = "finish"  # 办结
    NO_SHOW = "no_show"  # 过号
    TRANSFER = "transfer"  # 转移 (with a target)
    PAUSE = "pause"  # 暂停
    RESUME = "resume"  # 恢复

    @property
    def code(self) -> hb.EventCode:
        return hb.EventCode[self.name]

    @classmethod
    def from_code(cls, code: int) -> "CallerKey":
        return cls[hb.EventCode(code).name]


CALLER_KEY_CODES = frozenset(k.code for k in CallerKey)


@dataclass(frozen=True)
class CallerEvent:
    """A key pressed on a caller pad. ``target`` is set for TRANSFER (a window or business code)."""

    pad: str  # configured device name, e.g. "hallbus.20"
    address: int
    key: CallerKey
    target: str | None = None
    at: float = field(default_factory=time.time)


CallerListener = Callable[[CallerEvent], None]


def decode_caller_event(pad: str, address: int, raw: hb.RawEvent) -> CallerEvent:
    """Typed event from a raw EVENTS entry; raises FrameError for codes a caller pad does not send."""
    if raw.code not in CALLER_KEY_CODES:
        raise hb.FrameError(f"caller pad {address}: unknown key code 0x{raw.code:02X}")
    key = CallerKey.from_code(raw.code)
    target = hb.decode_text(raw.data) if key is CallerKey.TRANSFER else None
    if key is CallerKey.TRANSFER and not target:
        raise hb.FrameError(f"caller pad {address}: TRANSFER without a target")
    return CallerEvent(pad, address, key, target)


def encode_caller_event(key: CallerKey, target: str | None = None) -> hb.RawEvent:
    """The raw entry a pad sends for ``key`` (used by the simulator and tests)."""
    data = hb.encode_text(target) if key is CallerKey.TRANSFER and target else b""
    return hb.RawEvent(int(key.code), data)


class CallerPad:
    """A caller pad at ``address`` on a :class:`~device_drivers.hallbus_master.HallBusMaster`."""

    def __init__(self, bus: Any, address: int, *, name: str | None = None) -> None:
        self.bus = bus
        self.address = address
        self.name = name or f"{bus.name}.{address}"
        self.reporter = bus.add_device(address, hb.DeviceType.CALLER_PAD)
        self._listeners: list[CallerListener] = []
        self._queue: queue.Queue[CallerEvent] = queue.Queue()
        bus.on_events(address, self._on_raw_events)

    def on_event(self, listener: CallerListener) -> None:
        """``listener(event)`` runs on the bus thread: hand the work to another thread quickly."""
        self._listeners.append(listener)

    def get_event(self, timeout: float | None = None) -> CallerEvent | None:
        """Next key press, or None after ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def show(self, ticket: str | None, waiting: int, message: str = "") -> "Future[None]":
        """Update the pad display: current ticket ("" or None for none) and the waiting count."""
        payload = hb.pack_pad_display(hb.PadDisplay(ticket or "", waiting, message))
        return acked(self.bus.submit(self.address, hb.Command.PAD_DISPLAY, payload))

    @property
    def online(self) -> bool:
        return self.bus.is_online(self.address)

    def _on_raw_events(self, address: int, events: list[hb.RawEvent]) -> None:
        for raw in events:
            try:
                event = decode_caller_event(self.name, address, raw)
            except (hb.FrameError, ValueError) as exc:
                log.warning("%s: ignored event: %s", self.name, exc)
                continue
            log.info("%s: key %s%s", self.name, event.key.value,
                     f" -> {event.target}" if event.target else "")
            self._queue.put(event)
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("%s: listener failed", self.name)

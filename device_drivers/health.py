"""Typed health events every device driver publishes when its state changes."""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Callable


class Health(str, enum.Enum):
    ONLINE = "online"
    DEGRADED = "degraded"  # working, but needs attention (paper near end, retries)
    OFFLINE = "offline"


@dataclass(frozen=True)
class HealthEvent:
    device: str  # the device's configured name, e.g. "kiosk1.printer"
    kind: str  # registry key of the driver: "sam", "escpos", "led", ...
    health: Health
    reason: str = ""  # human readable, Chinese where an operator reads it
    at: float = field(default_factory=time.time)


HealthListener = Callable[[HealthEvent], None]


class HealthReporter:
    """Remembers the last state and calls listeners only on a change."""

    def __init__(self, device: str, kind: str) -> None:
        self.device = device
        self.kind = kind
        self._listeners: list[HealthListener] = []
        self.current: HealthEvent | None = None

    def subscribe(self, listener: HealthListener) -> None:
        self._listeners.append(listener)

    def report(self, health: Health, reason: str = "") -> None:
        cur = self.current
        if cur is not None and cur.health == health and cur.reason == reason:
            return
        event = HealthEvent(self.device, self.kind, health, reason)
        self.current = event
        for listener in list(self._listeners):
            listener(event)

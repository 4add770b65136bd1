"""Explicit registry of driver kinds, keyed by the short string used in hall configs."""
from __future__ import annotations

import importlib
from typing import Any

# kind -> "module:attribute" of the driver class; imported lazily so that the package imports on a
# machine without pyscard, pcscd or a sound card.
DRIVERS: dict[str, str] = {
    "sam": "device_drivers.sam:SamReaderService",
    "escpos": "device_drivers.escpos_printer:EscPosPrinterService",
    "pcsc": "device_drivers.pcsc:PcscReaderService",
    "voice": "device_drivers.voice:Announcer",
    "hallbus": "device_drivers.hallbus_master:HallBusMaster",
    "led": "device_drivers.led_board:WindowLedBoard",
    "led_composite": "device_drivers.led_board:CompositeLedBoard",
    "caller": "device_drivers.caller_pad:CallerPad",
    "evalpad": "device_drivers.eval_pad:EvalPad",
}


def register(kind: str, target: str) -> None:
    if kind in DRIVERS and DRIVERS[kind] != target:
        raise ValueError(f"driver kind {kind!r} is already registered as {DRIVERS[kind]}")
    DRIVERS[kind] = target


def driver_class(kind: str) -> Any:
    try:
        target = DRIVERS[kind]
    except KeyError:
        known = ", ".join(sorted(DRIVERS)) or "none"
        raise KeyError(f"unknown device kind {kind!r}; known kinds: {known}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)

"""Explicit registry of driver kinds, keyed by the short string used in hall configs."""
from __future__ import annotations

import importlib
from typing import Any

# kind -> "module:attribute" of the driver class; imported lazily so that the package imports on a
# machine without pyscard, pcscd or a sound card.
DRIVERS: dict[str, str] = {}


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

"""`hall gateway GATEWAY.toml`: run the gateway until Ctrl-C or SIGTERM; and a helper that writes a
gateway file for a simulated hall bus (what `hall demo` does)."""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from .config import load_gateway_config

log = logging.getLogger(__name__)

_SIM_KINDS = {"led": "led", "window_led": "led", "composite": "composite", "composite_led": "composite",
              "caller": "caller", "evalpad": "evalpad"}


def run_gateway(path: str | Path, stop: threading.Event | None = None) -> int:
    from ..heap import freeze_startup_heap
    from .core import Gateway

    cfg = load_gateway_config(path)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    gw = Gateway(cfg).start()
    freeze_startup_heap()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        log.info("gateway stopping")
        gw.stop()
    return 0


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def gateway_toml(*, server: str, hall: str, device: str, buses: list[dict[str, Any]],
                 tokens_file: str | None = None, state_file: str | None = None,
                 voice: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> str:
    """A gateway file as text. ``buses``: ``{"name", "port", "devices": [{"id","kind","address","window"}]}``."""
    lines = ["# Written by hall demo; see docs/gateway.md", f"server = {_toml_value(server)}",
             f"hall = {_toml_value(hall)}", f"device = {_toml_value(device)}"]
    if tokens_file:
        lines.append(f"tokens_file = {_toml_value(tokens_file)}")
    if state_file:
        lines.append(f"state_file = {_toml_value(state_file)}")
    for k, v in (extra or {}).items():
        lines.append(f"{k} = {_toml_value(v)}")
    if voice is not None:
        lines += ["", "[voice]"] + [f"{k} = {_toml_value(v)}" for k, v in voice.items()]
    for bus in buses:
        lines += ["", "[[buses]]"] + [f"{k} = {_toml_value(v)}" for k, v in bus.items() if k != "devices"]
        for d in bus["devices"]:
            lines += ["", "[[buses.devices]]"] + [f"{k} = {_toml_value(v)}" for k, v in d.items() if v is not None]
    return "\n".join(lines) + "\n"


def buses_from_endpoints(doc: dict[str, Any], known_ids: set[str] | None = None) -> list[dict[str, Any]]:
    """Hall buses of a running ``hall-sim`` (its endpoints document) as gateway ``buses``: every
    simulated device with an ``id`` (and, if given, one the hall config knows)."""
    buses = []
    for name, sim in doc.get("sims", {}).items():
        if sim.get("kind") != "hallbus" or sim.get("status") != "running":
            continue
        devices = []
        for d in sim.get("devices", []):
            kind = _SIM_KINDS.get(d.get("type", ""))
            if kind is None or not d.get("id") or (known_ids is not None and d["id"] not in known_ids):
                continue
            devices.append({"id": d["id"], "kind": kind, "address": int(d["address"]),
                            "window": str(d["window"]) if d.get("window") is not None and kind != "composite" else None})
        if devices:
            buses.append({"name": name, "port": sim.get("tcp") or sim.get("pty"), "devices": devices})
    return buses

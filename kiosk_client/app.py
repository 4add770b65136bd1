"""Assemble and run one kiosk: devices, the line to the hall server, the touch UI.

    hall-kiosk --server http://127.0.0.1:5000 --hall jinhu --device kiosk-1 --token-file var/kiosk-1.token \
        --reader socket://127.0.0.1:7111 --printer socket://127.0.0.1:7112 --port 8700

or ``hall-kiosk -c kiosk.toml`` with a ``[kiosk]`` table of the same keys (see :mod:`kiosk_client.config`).
From Python (e.g. ``hall demo``): ``start_kiosk(make_config({...}))`` returns a running :class:`KioskProcess`
whose ``url`` is the touch UI; ``stop()`` ends it.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from .config import KioskConfig, KioskConfigError, load_config, make_config
from .devices import KioskDevices
from .kiosk import Kiosk
from .link import HallLink
from .web import KioskWebServer

log = logging.getLogger(__name__)


@dataclass
class KioskProcess:
    config: KioskConfig
    kiosk: Kiosk
    devices: KioskDevices
    web: KioskWebServer

    @property
    def url(self) -> str:
        return self.web.url

    def stop(self) -> None:
        self.web.stop()
        self.kiosk.stop()
        self.devices.stop()


def start_kiosk(cfg: KioskConfig) -> KioskProcess:
    link = HallLink(cfg.server, cfg.hall, cfg.device, cfg.device_token(), timeout=cfg.request_timeout)
    devices = KioskDevices(cfg).start()
    kiosk = Kiosk(cfg, link, devices).start()
    web = KioskWebServer(kiosk, cfg.host, cfg.port).start()
    return KioskProcess(cfg, kiosk, devices, web)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hall-kiosk", description="自助取号机 kiosk client: touch UI on localhost, "
                                                                "ID card reader and ticket printer, hall server link")
    ap.add_argument("-c", "--config", help="TOML file with a [kiosk] table")
    ap.add_argument("--server", help="hall server URL (or $HALL_KIOSK_SERVER)")
    ap.add_argument("--hall")
    ap.add_argument("--device", help="this kiosk's device id, e.g. kiosk-1")
    ap.add_argument("--token-file", help="file holding the device token (or $HALL_KIOSK_TOKEN)")
    ap.add_argument("--reader", help="SAM ID reader port URL (/dev/ttyUSB0, socket://host:port); 'pcsc' for PC/SC")
    ap.add_argument("--printer", help="ticket printer port URL (/dev/ttyUSB1, socket://host:port, tcp://host:9100)")
    ap.add_argument("--host", help="UI address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, help="UI port (default 8700)")
    ap.add_argument("--state-dir", help="directory for the unconfirmed-request journal")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def config_from_args(args: argparse.Namespace) -> KioskConfig:
    over: dict[str, Any] = {k: getattr(args, k) for k in ("server", "hall", "device", "token_file", "host", "port",
                                                           "state_dir")}
    if args.reader:
        over["reader"] = {"kind": "pcsc"} if args.reader == "pcsc" else {"kind": "sam", "url": args.reader}
    if args.printer:
        over["printer"] = {"url": args.printer}
    if args.config:
        return load_config(args.config, over)
    return make_config({k: v for k, v in over.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
        proc = start_kiosk(cfg)
    except (KioskConfigError, OSError) as exc:
        print(f"hall-kiosk: {exc}", file=sys.stderr)
        return 2
    print(f"取号机界面 kiosk UI: {proc.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    proc.stop()
    return 0

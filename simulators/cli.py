"""``hall-sim``: run the whole simulated device set from one file, and poke it while it runs.

    hall-sim run examples/simulators.toml [--endpoints var/sim-endpoints.json] [--control-port 7290]
    hall-sim check examples/simulators.toml
    hall-sim ctl place-card kiosk1.reader wang          # --port P, or --endpoints FILE to find the port
    hall-sim ctl press bus1 101 call_next
    hall-sim ctl show bus1
    hall-sim ctl help

``python -m simulators`` is the same command. Exit codes: 0 ok, 1 a control command failed, 2 a bad
config file or usage, 3 no simulator hall listening on the control port, 4 a simulator could not
start (e.g. its TCP port is taken).
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_CONTROL_PORT = 7290  # same as hall_sim.DEFAULT_CONTROL_PORT; ctl must not import the simulators

log = logging.getLogger("hall-sim")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="hall-sim",
        description="模拟设备 Simulated hall devices: every simulator on a pty and TCP, from one config file.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{run,check,ctl}")

    run = sub.add_parser("run", help="start every simulator in CONFIG and serve until Ctrl-C / SIGTERM")
    run.add_argument("config", help="TOML file with [[sim]] tables (see examples/simulators.toml)")
    run.add_argument("--endpoints", metavar="FILE",
                     help="write the pty paths, TCP URLs and control port here as JSON (removed on exit)")
    run.add_argument("--control-port", type=int, default=None, metavar="P",
                     help=f"control socket port on 127.0.0.1 (default: the file's control_port, else "
                          f"{DEFAULT_CONTROL_PORT}; 0: any free port)")
    run.add_argument("--no-control", action="store_true", help="no control socket")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    check = sub.add_parser("check", help="validate CONFIG and exit")
    check.add_argument("config")

    ctl = sub.add_parser("ctl", help="send a command to a running `hall-sim run` (try: ctl help)")
    ctl.add_argument("--host", default="127.0.0.1")
    ctl.add_argument("--port", type=int, default=None, help=f"control port (default {DEFAULT_CONTROL_PORT})")
    ctl.add_argument("--endpoints", metavar="FILE", help="read the control port from this endpoints file")
    ctl.add_argument("--json", action="store_true", help="print the JSON result instead of text")
    ctl.add_argument("--timeout", type=float, default=5.0)
    ctl.add_argument("cmd", help="list, show, place-card, remove-card, paper, printed, png, offline, delay, "
                                 "fault, drop, press, grade, help")
    ctl.add_argument("args", nargs="*")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "ctl":
        return _ctl(args)
    if args.command == "check":
        return _check(args)
    return _run(args)


def _load(path: str) -> Any:
    from .hall_sim import ConfigError, SimulatorHall

    try:
        return SimulatorHall.from_file(path)
    except ConfigError as exc:
        print(f"hall-sim: 配置错误 bad config {exc}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    hall = _load(args.config)
    if hall is None:
        return 2
    print(f"{args.config}: ok, {len(hall.specs)} simulators: "
          + ", ".join(f"{s.name} ({s.kind})" for s in hall.specs.values()))
    return 0


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    from .hall_sim import SimulatorStartError

    hall = _load(args.config)
    if hall is None:
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        hall.start(control=not args.no_control, control_port=args.control_port)
    except SimulatorStartError as exc:
        print(f"hall-sim: 启动失败 cannot start: {exc}", file=sys.stderr)
        return 4
    endpoints = Path(args.endpoints) if args.endpoints else None
    try:
        print(hall.table(), flush=True)
        if endpoints is not None:
            hall.write_endpoints(endpoints)
            log.info("endpoints written to %s", endpoints)
        print("按 Ctrl-C 停止 / Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        hall.stop()
        if endpoints is not None:
            try:
                endpoints.unlink()
            except FileNotFoundError:
                pass
        log.info("all simulators stopped")
    return 0


def _ctl(args: argparse.Namespace) -> int:
    port = args.port
    if port is None and args.endpoints:
        try:
            doc = json.loads(Path(args.endpoints).read_text(encoding="utf-8"))
            port = int(doc["control"]["port"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"hall-sim ctl: cannot read the control port from {args.endpoints}: {exc}", file=sys.stderr)
            return 3
    port = DEFAULT_CONTROL_PORT if port is None else port
    import socket

    try:
        with socket.create_connection((args.host, port), timeout=args.timeout) as sock:
            sock.sendall(json.dumps({"cmd": args.cmd, "args": args.args}, ensure_ascii=False).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
        reply = json.loads(buf)
    except (OSError, ValueError) as exc:
        print(f"hall-sim ctl: no simulator hall answering on {args.host}:{port} ({exc}); "
              f"is `hall-sim run` running?", file=sys.stderr)
        return 3
    if not reply.get("ok"):
        print(f"hall-sim ctl: {reply.get('error')}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reply.get("result"), ensure_ascii=False, indent=2))
    else:
        print(reply.get("text", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

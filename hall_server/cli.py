"""The ``hall`` command: serve, db upgrade, check-config, user and device tokens, demo."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from typing import Any

from flask import Flask
from werkzeug.serving import WSGIRequestHandler

from .config import ConfigError, HallConfig, load_config
from .heap import freeze_startup_heap

log = logging.getLogger("hall")


def _config(args: argparse.Namespace) -> HallConfig:
    return config_from(args.config or os.environ.get("HALL_CONFIG") or "hall.toml")


def config_from(path: str) -> HallConfig:
    """The config file with HALL_DATABASE_URL / HALL_REDIS_URL applied over it."""
    cfg = load_config(path)
    overrides = {}
    if os.environ.get("HALL_DATABASE_URL"):
        overrides["database_url"] = os.environ["HALL_DATABASE_URL"]
    if os.environ.get("HALL_REDIS_URL"):
        overrides["redis_url"] = os.environ["HALL_REDIS_URL"]
    if overrides:
        cfg = cfg.model_copy(update={"server": cfg.server.model_copy(update=overrides)})
    return cfg


def _app(cfg: HallConfig):  # type: ignore[no-untyped-def]
    from .app import create_app

    return create_app(cfg)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _config(args)
    for h in cfg.halls:
        print(f"{h.id}: {h.name} — {len(h.queues)} 个队列, {len(h.windows)} 个窗口, {len(h.matters)} 个事项, "
              f"{len(h.bundles)} 个一件事, {len(h.devices)} 台设备")
    print("配置有效 (configuration is valid)")
    return 0


def _prepare(app) -> None:  # type: ignore[no-untyped-def]
    from .app import prepare_database

    password = prepare_database(app)
    if password:
        print("=" * 60)
        print("首次运行：已创建管理员账号 admin，一次性密码（仅显示这一次，登录后须修改）:")
        print(f"    用户名 admin    密码 {password}")
        print("=" * 60, flush=True)


def cmd_db(args: argparse.Namespace) -> int:
    cfg = _config(args)
    app, _ = _app(cfg)
    _prepare(app)
    from .migrations import current

    print(f"数据库已是最新版本 {current(app.extensions['hall']['db'].url)} (database at head)")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    cfg = _config(args)
    app, _ = _app(cfg)
    _prepare(app)
    password = app.extensions["hall"]["auth"].set_password(args.username, args.password, one_time=not args.password)
    print(f"{args.username} 的{'一次性' if not args.password else ''}密码: {password}")
    return 0


def cmd_device_token(args: argparse.Namespace) -> int:
    cfg = _config(args)
    app, _ = _app(cfg)
    _prepare(app)
    print(app.extensions["hall"]["auth"].device_token(args.hall, args.device))
    return 0


def start_day_keeper(app, interval: float = 30.0) -> threading.Thread:  # type: ignore[no-untyped-def]
    """Closes or carries over the day at local midnight even when nobody is issuing."""
    service = app.extensions["hall"]["service"]

    def loop() -> None:
        while True:
            for hall in service.config.halls:
                try:
                    service.rollover(hall.id)
                except Exception:
                    log.exception("day rollover failed for %s", hall.id)
                try:
                    app.extensions["hall"]["evaluations"].sweep_overdue(hall.id)
                except Exception:
                    log.exception("follow-up overdue check failed for %s", hall.id)
            time.sleep(interval)

    t = threading.Thread(target=loop, name="day-keeper", daemon=True)
    t.start()
    return t


def start_serving(app) -> None:  # type: ignore[no-untyped-def]
    """What every server process does once its app is built, before the first request: the day
    keeper runs, and the start-up heap is frozen out of the garbage collector's view (heap.py)."""
    start_day_keeper(app)
    freeze_startup_heap()


def serve(cfg: HallConfig, host: str | None = None, port: int | None = None) -> None:
    app, socketio = _app(cfg)
    _prepare(app)
    start_serving(app)
    host = host or cfg.server.host
    port = port or cfg.server.port
    log.info("hall server on http://%s:%d (database %s, message queue %s)", host, port,
             app.extensions["hall"]["db"].engine.dialect.name, cfg.server.redis_url or "none")
    run_werkzeug(socketio, app, host, port)


def run_werkzeug(socketio: Any, app: Flask, host: str, port: int) -> None:
    """Serve with Werkzeug's threaded server (``hall serve`` and the demo; production runs gunicorn)."""
    socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, log_output=False, use_reloader=False,
                 request_handler=_RequestHandler)


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, except that a connection ends with its websocket. python-engineio ends a
    websocket under Werkzeug by raising ConnectionError; Werkzeug would then read the client's closing
    frame as the next HTTP request and log it as a "Bad request syntax" error."""

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        self.close_connection = True
        super().connection_dropped(error, environ)


def cmd_serve(args: argparse.Namespace) -> int:
    serve(_config(args), args.host, args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def cmd_gateway(args: argparse.Namespace) -> int:
    from .gateway.run import run_gateway

    return run_gateway(args.gateway_config)


def cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import run_cli

    return run_cli(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hall", description="政务服务大厅排队叫号系统")
    parser.add_argument("-c", "--config", help="hall config file (TOML or YAML); default $HALL_CONFIG or hall.toml")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check-config", help="validate the config file").set_defaults(fn=cmd_check)
    db = sub.add_parser("db", help="create or upgrade the database schema")
    db.add_argument("action", choices=["init", "upgrade"])
    db.set_defaults(fn=cmd_db)
    s = sub.add_parser("serve", help="run the hall server")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.set_defaults(fn=cmd_serve)
    u = sub.add_parser("user", help="set a user's password (one-time unless given)")
    u.add_argument("username")
    u.add_argument("--password")
    u.set_defaults(fn=cmd_user)
    d = sub.add_parser("device-token", help="issue a token for a configured device")
    d.add_argument("hall")
    d.add_argument("device")
    d.set_defaults(fn=cmd_device_token)
    demo = sub.add_parser("demo", help="start a complete simulated hall on SQLite")
    demo.add_argument("--port", type=int, default=5000)
    demo.add_argument("--dir", default="var/demo")
    demo.add_argument("--quiet-traffic", action="store_true", help="no simulated citizens and clerks")
    demo.add_argument("--simulators", help="the simulated devices (default: examples/simulators.toml, fixed ports "
                      "7101-7299)")
    demo.add_argument("--kiosk-port", type=int, default=8701,
                      help="the first kiosk's touch UI port, the next kiosk's the one after (0: any free ports)")
    demo.set_defaults(fn=cmd_demo)
    gw = sub.add_parser("gateway", help="run the hall device gateway (LED boards, pads, voice); see docs/gateway.md")
    gw.add_argument("gateway_config", help="the gateway's TOML file")
    gw.set_defaults(fn=cmd_gateway)
    from .simulate import add_arguments as simulate_arguments

    simulate_arguments(sub.add_parser("simulate", help="simulate a hall day through the real queue engine")).set_defaults(
        fn=cmd_simulate)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"配置错误 (configuration error): {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""The server under test, built exactly as ``hall serve`` builds it but from the benchmark hall.

Werkzeug (what ``hall serve`` runs today)::

    BENCH_DB_URL=sqlite:///var/bench/hall.db python -m bench.serve --port 5055

gunicorn, one process with a thread pool (Flask-SocketIO threading mode + simple-websocket)::

    BENCH_DB_URL=... gunicorn -w 1 --threads 32 -b 127.0.0.1:5055 'bench.serve:wsgi()'

gunicorn with gevent (needs ``pip install gevent``; BENCH_ASYNC_MODE=gevent for Flask-SocketIO)::

    BENCH_DB_URL=... BENCH_ASYNC_MODE=gevent gunicorn -w 1 -k gevent_pywsgi -b 127.0.0.1:5055 'bench.serve:wsgi()'

The database must already be prepared (the driver does it, see bench.server.prepare).
"""
from __future__ import annotations

import argparse
import logging
import os


def _experiment_sqlite_writer_lock() -> None:
    """EXPERIMENT (off by default, BENCH_EXPERIMENT=sqlite-writer-lock): serialise this process's SQLite write
    transactions on a threading.Lock before BEGIN IMMEDIATE, so waiting writers queue in FIFO-ish order
    instead of polling the database lock in SQLite's busy handler (which sleeps up to 100 ms between tries).
    Measures a suggested fix of hall_server.db.Database.write without changing hall_server."""
    import contextlib
    import threading

    from hall_server.db import Database

    original = Database.write
    lock = threading.Lock()

    @contextlib.contextmanager
    def write(self):  # type: ignore[no-untyped-def]
        if self.is_postgres:
            with original(self) as s:
                yield s
            return
        with lock, original(self) as s:
            yield s

    Database.write = write  # type: ignore[method-assign]


def build():  # type: ignore[no-untyped-def]
    if os.environ.get("BENCH_EXPERIMENT") == "sqlite-writer-lock":
        _experiment_sqlite_writer_lock()
    from hall_server.app import create_app
    from hall_server.cli import start_serving
    from hall_server.wsgi import lean_routes

    from .config import SECRET, bench_config
    from .lag import install_if_asked

    url = os.environ["BENCH_DB_URL"]
    app, socketio = create_app(bench_config(url), database_url=url,
                               redis_url=os.environ.get("BENCH_REDIS_URL", ""), secret=SECRET,
                               async_mode=os.environ.get("BENCH_ASYNC_MODE", "threading"),
                               lean_routes=lean_routes())
    start_serving(app)  # as `hall serve` and hall_server.wsgi do
    install_if_asked(app)
    return app, socketio


def wsgi():  # type: ignore[no-untyped-def]
    """gunicorn factory: ``'bench.serve:wsgi()'``."""
    logging.basicConfig(level=logging.WARNING)
    app, _ = build()
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    app, socketio = build()
    # the same call as hall_server.cli.serve
    socketio.run(app, host=args.host, port=args.port, allow_unsafe_werkzeug=True, log_output=False,
                 use_reloader=False)


if __name__ == "__main__":
    main()

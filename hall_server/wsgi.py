"""WSGI entry for production: gunicorn with one gevent worker per process, the stack measured best in
docs/benchmarks.md (``hall serve`` runs Werkzeug, for the demo and development)::

    hall -c hall.toml db upgrade            # once, before the first start and after each upgrade
    HALL_CONFIG=hall.toml gunicorn -w 1 -k gevent_pywsgi --worker-connections 1000 -b 0.0.0.0:5000 'hall_server.wsgi:app()'

Under ``-k gevent_pywsgi`` (gevent's own HTTP server: 0.1 ms less per request than ``-k gevent``,
gunicorn's parser on gevent; both work) every connection is a greenlet and Flask-SocketIO runs in gevent
mode (chosen here when gevent has patched the standard library). ``-k gthread --threads 100`` works too: every Socket.IO
connection then holds a thread, so ``--threads`` must exceed the hall's screens, consoles, gateways and
kiosks plus the concurrent requests. More processes (several gunicorn commands, or hosts) need
``[server] redis_url`` and a load balancer with sticky sessions. ``HALL_DATABASE_URL`` and
``HALL_REDIS_URL`` override the config file as for ``hall``. ``HALL_THROUGH_FLASK=1`` answers issuing and
the window actions through the Flask views instead of ``lean_routes`` (for comparisons).
"""
from __future__ import annotations

import logging
import os
from typing import Any


def app() -> Any:
    """The application factory gunicorn calls once per worker process."""
    from .app import create_app
    from .cli import _prepare, config_from, start_serving

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = config_from(os.environ.get("HALL_CONFIG") or "hall.toml")
    flask_app, _socketio = create_app(cfg, async_mode=async_mode(), lean_routes=lean_routes())
    _prepare(flask_app)  # the schema is current and users are synced; first run prints the admin's password
    start_serving(flask_app)
    return flask_app


def async_mode() -> str:
    """``gevent`` under gunicorn's gevent worker (it patches the standard library before loading the
    app), else ``threading``."""
    from .offload import under_gevent

    return "gevent" if under_gevent() else "threading"


def lean_routes() -> bool:
    """False when ``HALL_THROUGH_FLASK`` is set (1/true/yes): see the module's doc."""
    return os.environ.get("HALL_THROUGH_FLASK", "").lower() not in ("1", "true", "yes")

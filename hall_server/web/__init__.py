"""Web pages served by the hall server (clerk console, hall screen, manager dashboard, citizen pages).

Each page family is a Flask blueprint in its own module; `register_pages` mounts them all. Shared
browser libraries are vendored, with their licences, under `static/vendor/` and served at
`/static/vendor/...`: Socket.IO client 4.8 (`socket.io.min.js`), Apache ECharts 5.6
(`echarts.common.min.js`).
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path

from flask import Blueprint, Flask

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# (module, attribute) of each page blueprint.
PAGE_BLUEPRINTS: list[tuple[str, str]] = [
    ("hall_server.web.reports", "reports_bp"),
    ("hall_server.web.clerk", "clerk_bp"),
    ("hall_server.web.manager", "manager_bp"),
    ("display_board.screen", "screen_bp"),
    ("hall_server.web.public", "public_bp"),
]

shared = Blueprint("web_shared", __name__, static_folder=str(STATIC), static_url_path="/static")


def register_pages(app: Flask) -> None:
    app.register_blueprint(shared)
    for module, attr in PAGE_BLUEPRINTS:
        mod = importlib.import_module(module)
        app.register_blueprint(getattr(mod, attr))

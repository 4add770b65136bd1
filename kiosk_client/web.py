"""The touch UI, served on localhost to the kiosk's own browser (full-screen Chromium), and the small
JSON API it calls. Nothing here is reachable from the hall network unless ``host`` says so."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request, send_from_directory
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .kiosk import Kiosk, KioskError

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def create_app(kiosk: Kiosk) -> Flask:
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    @app.errorhandler(KioskError)
    def _kiosk_error(exc: KioskError) -> Any:
        return jsonify(exc.to_json()), exc.status

    @app.get("/")
    def index() -> Any:
        resp = send_from_directory(STATIC, "kiosk.html")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/api/state")
    def state() -> Any:
        return jsonify(kiosk.state())

    @app.get("/api/catalogue")
    def catalogue() -> Any:
        if kiosk.catalogue is None:
            return jsonify({"error": {"code": "not_loaded", "message": "正在连接服务器…", "retry": True}}), 503
        return jsonify(kiosk.catalogue)

    @app.post("/api/card/clear")
    def clear_card() -> Any:
        kiosk.devices.card.clear()
        return jsonify({"ok": True})

    @app.post("/api/ticket")
    def ticket() -> Any:
        body = request.get_json(silent=True) or {}
        optional = body.get("optional") or []
        result = kiosk.take_ticket(
            str(body.get("tap_id", "")), matter=body.get("matter"), bundle=body.get("bundle"),
            queue=body.get("queue"), optional=[str(x) for x in optional] if isinstance(optional, list) else [],
            use_card=bool(body.get("use_card", True)),
        )
        return jsonify(result)

    @app.post("/api/check-in")
    def check_in() -> Any:
        body = request.get_json(silent=True) or {}
        code = body.get("code")
        return jsonify(kiosk.check_in(str(body.get("tap_id", "")), code=str(code) if code else None))

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code).startswith(("4", "5")):
            super().log_request(code, size)


class KioskWebServer:
    """Werkzeug's threaded server in a background thread (one browser on localhost needs no more)."""

    def __init__(self, kiosk: Kiosk, host: str, port: int) -> None:
        self.app = create_app(kiosk)
        self.server: BaseWSGIServer = make_server(host, port, self.app, threaded=True, request_handler=_QuietHandler)
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, name="kiosk-web", daemon=True)

    def start(self) -> "KioskWebServer":
        self._thread.start()
        log.info("kiosk UI on %s", self.url)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self._thread.join(5)

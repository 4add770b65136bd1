"""The Flask application: REST API, live events and the web pages later issues add."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from flask import Response, jsonify, request
from flask_openapi3 import Info, OpenAPI
from flask_socketio import SocketIO
from pydantic import ValidationError
from sqlalchemy import text
from werkzeug.exceptions import BadRequest as BadRequestError
from werkzeug.exceptions import HTTPException

from .api import api
from .auth import Auth
from .config import HallConfig
from .db import Database
from .errors import HallError, error_answer, malformed_json_body, unexpected_answer
from .live import JsonPacket, Publisher, register_socket_handlers
from .rules.states import IllegalTransition
from .service import QueueService, utcnow

log = logging.getLogger(__name__)


def load_secret(path: str) -> bytes:
    """The key of the personal-data hashes. Every process of a deployment must share it:
    set HALL_SECRET or point every process at the same file."""
    env = os.environ.get("HALL_SECRET")
    if env:
        return env.encode()
    p = Path(path)
    if p.exists():
        return p.read_bytes().strip()
    p.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    log.warning("created a new secret key at %s; keep it, personal-data hashes depend on it", p)
    return key


def _validation_error(e: ValidationError) -> Response:
    status, body = error_answer(e)
    resp = jsonify(body)
    resp.status_code = status
    return resp


def create_app(
    config: HallConfig,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    secret: bytes | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
    async_mode: str = "threading",
    lean_routes: bool = True,
) -> tuple[OpenAPI, SocketIO]:
    """The hall server's Flask app and its Socket.IO server. ``lean_routes``: issuing a ticket and the
    clerk's call-next, start, finish, recall and no-show are answered by ``lean_routes.LeanRoutes``
    before Flask (off: by the Flask views, the same answers at more CPU; for comparisons)."""
    app = OpenAPI(
        __name__,
        static_folder=None,  # /static/... is served by hall_server.web (shared vendored libraries)
        info=Info(title="政务服务大厅排队叫号 API", version="1"),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        doc_prefix="/api/v1", doc_url="/openapi.json", doc_ui=True,
        validation_error_status=422, validation_error_callback=_validation_error,
        validate_response=True,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    db = Database(database_url or config.server.database_url, prepared=config.server.prepared_statements)
    secret = secret or load_secret(config.server.secret_file)
    socketio = SocketIO(
        app, async_mode=async_mode, message_queue=redis_url if redis_url is not None else config.server.redis_url,
        cors_allowed_origins="*", json=json, logger=False, engineio_logger=False, serializer=JsonPacket,
    )
    service = QueueService(config, db, secret, clock=clock)
    authn = Auth(config, db, clock=clock)
    service.publish = Publisher(socketio, service)
    app.extensions["hall"] = {"service": service, "auth": authn, "db": db, "config": config, "socketio": socketio}
    from .evaluation import EvaluationHook, EvaluationService  # 好差评: requests follow finished services

    service.publish = EvaluationHook(service.publish, None)
    # late-bound: evaluation and follow-up events pass the whole publish chain, like ticket events
    evaluations = EvaluationService(config, db, clock=clock, publish=lambda outbox: service.publish(outbox))
    service.publish.evaluations = evaluations
    app.extensions["hall"]["evaluations"] = evaluations
    from .api_manager import install as install_manager  # dashboard figures and alerts

    install_manager(app, socketio, background=clock is utcnow)  # on a fake clock tests run the checks
    register_socket_handlers(socketio, service, authn)

    @app.before_request
    def _reject_bad_json() -> Any:
        if request.method in ("POST", "PUT", "PATCH") and request.content_length and request.is_json:
            try:
                request.get_json(cache=True)  # parsed once: the validation layer reuses the cached result
            except BadRequestError as exc:
                return jsonify(malformed_json_body(exc.description)), 400
        return None

    @app.errorhandler(HallError)
    @app.errorhandler(IllegalTransition)
    def _hall_error(exc: Exception) -> Any:
        status, body = error_answer(exc)
        return jsonify(body), status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        messages = {404: "没有这个地址 (no such URL)", 405: "不支持该请求方法 (method not allowed)",
                    413: "请求体过大 (request too large)",
                    429: f"请求过于频繁，请稍后再试 (too many requests: {exc.description})"}
        code = exc.code or 500
        return jsonify({"error": {"code": exc.name.lower().replace(" ", "_"),
                                  "message": messages.get(code, exc.description or exc.name)}}), code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        status, body = unexpected_answer(exc, f"{request.method} {request.path}")
        return jsonify(body), status

    @app.get("/healthz")
    def healthz() -> Any:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            # async_mode: how this process serves (gevent under gunicorn's gevent workers, threading otherwise)
            return jsonify({"status": "ok", "database": db.engine.dialect.name, "async_mode": socketio.async_mode})
        except Exception as exc:  # report, do not crash
            return jsonify({"status": "error", "database": str(exc)[:200]}), 503

    app.register_api(api)
    from .device_status import devices_api

    app.register_api(devices_api)
    from .console_api import console_api
    from .notice import notice_api

    app.register_api(console_api)
    app.register_api(notice_api)
    from .evaluation_api import evaluation_api
    from .report_api import report_api

    app.register_api(evaluation_api)
    app.register_api(report_api)
    from .kiosk_api import kiosk_api

    app.register_api(kiosk_api)
    from .ratelimit import install as install_rate_limits

    install_rate_limits(app, config.server.public_rate_limit,
                        redis_url if redis_url is not None else config.server.redis_url)
    if config.server.trusted_proxies:
        # Behind nginx every request comes from the proxy's address: the public rate limits would
        # count all citizens booking online as one, and the first 30 a minute would lock out the rest.
        # Only the entries the trusted proxies appended are believed, so a forged header gains nothing.
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = config.server.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    from .web import register_pages

    register_pages(app)
    if lean_routes:
        from .lean_routes import LeanRoutes

        app.wsgi_app = LeanRoutes(app, app.wsgi_app)  # type: ignore[method-assign]
    return app, socketio


def prepare_database(app: OpenAPI) -> str | None:
    """Create or upgrade the schema, the window/queue state rows and the users; returns the admin's
    one-time password on first run."""
    from .migrations import upgrade

    ext = app.extensions["hall"]
    upgrade(ext["db"].url)
    ext["service"].sync_state()
    return ext["auth"].sync_users()

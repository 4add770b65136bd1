"""The busiest requests answered by a small WSGI handler in front of Flask: a kiosk issuing a ticket
(``POST /api/v1/halls/<hall>/tickets``) and the clerk's window actions (``POST
/api/v1/halls/<hall>/windows/<window>/call-next|start|finish|recall|no-show``).

A kiosk's citizen and a called citizen wait on these answers and events all day. Through Flask a
call-next spent a good part of its server CPU outside the queue service: Flask's request context and
hooks, flask-openapi3's request parsing and response re-validation, the Socket.IO middleware
(docs/benchmarks.md, twelfth round). Here the same steps run without that machinery:

1. a JSON body that does not parse is refused (400), as Flask's ``_reject_bad_json`` does;
2. the body is validated by the route's pydantic model (422 naming each field), before the token is
   looked at, as flask-openapi3 does;
3. the bearer token is checked (401) and the function shared with the Flask view runs
   (``api.issue_action``, ``api.window_action``): scopes (403), the queue rules, the events published
   after the commit.

Answers, errors and events are the same as Flask's (tests/hall_server/test_lean_routes.py compares
them); the routes stay declared in ``api.py`` for the OpenAPI document. A request this handler is not
sure about (another method or path, a body without Content-Length, a body over the size limit) goes
on to Flask unchanged.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pydantic import ValidationError
from werkzeug.exceptions import BadRequest as BadRequestError
from werkzeug.http import HTTP_STATUS_CODES

from .api import WINDOW_ACTIONS, FinishBody, IssueBody, issue_action, window_action
from .auth import Principal
from .errors import HallError, error_answer, malformed_json_body, unexpected_answer
from .rules.states import IllegalTransition
from .service import QueueService


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# (service, principal, the path's groups, the validated body) -> the answer: JSON text or a dict, and its status
Action = Callable[[QueueService, Principal, tuple[str, ...], Any], tuple["str | dict[str, Any]", int]]


@dataclass(frozen=True)
class Route:
    path: re.Pattern[str]
    body: Callable[[Any], Any]  # validates the parsed JSON (None when there is no JSON body)
    run: Action


def _no_body(_parsed: Any) -> None:
    return None


def _window(svc: QueueService, p: Principal, groups: tuple[str, ...], body: Any) -> tuple[dict[str, Any], int]:
    hall, window, action = groups
    return window_action(svc, p, hall, window, action, body), 200


ROUTES = (
    Route(re.compile(r"/api/v1/halls/([^/]+)/tickets\Z"), IssueBody.model_validate,
          lambda svc, p, groups, body: issue_action(svc, p, groups[0], body)),
    Route(re.compile(r"/api/v1/halls/([^/]+)/windows/([^/]+)/(finish)\Z"), FinishBody.model_validate, _window),
    Route(re.compile(r"/api/v1/halls/([^/]+)/windows/([^/]+)/("
                     + "|".join(a for a in WINDOW_ACTIONS if a != "finish") + r")\Z"), _no_body, _window),
)
_PREFIX = "/api/v1/halls/"


class LeanRoutes:
    """WSGI middleware: answers ROUTES itself and passes every other request to ``inner``."""

    def __init__(self, app: Any, inner: WSGIApp) -> None:
        ext = app.extensions["hall"]
        self.inner = inner
        self.service, self.auth = ext["service"], ext["auth"]
        self.on_request: Callable[[], None] | None = ext.get("on_request")  # the alert monitor's start
        self.dumps = app.json.dumps  # Flask's own settings (ensure_ascii off, keys sorted)
        self.max_body = app.config["MAX_CONTENT_LENGTH"]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(_PREFIX):
            return self.inner(environ, start_response)
        for route in ROUTES:
            match = route.path.match(path)
            if match is not None:
                break
        else:
            return self.inner(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self.inner(environ, start_response)
        if length > self.max_body or (not length and environ.get("HTTP_TRANSFER_ENCODING")):
            return self.inner(environ, start_response)
        # PATH_INFO is the URL's bytes as latin-1 (PEP 3333); the route's parts are UTF-8, as Flask reads them
        groups = tuple(g.encode("latin-1").decode("utf-8", "replace") for g in match.groups())
        answer, status = self._answer(environ, length, route, groups)
        if not isinstance(answer, str):
            answer = self.dumps(answer, separators=(",", ":")) + "\n"  # as Flask's jsonify
        data = answer.encode()
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def _answer(self, environ: dict[str, Any], length: int, route: Route,
                groups: tuple[str, ...]) -> tuple[str | dict[str, Any], int]:
        if self.on_request is not None:
            self.on_request()
        raw = environ["wsgi.input"].read(length) if length else b""
        parsed: Any = None
        if raw and _is_json(environ.get("CONTENT_TYPE", "")):
            try:
                parsed = json.loads(raw)
            except ValueError:  # also a body that is not UTF-8
                return malformed_json_body(BadRequestError.description), 400
        try:
            body = route.body(parsed)
            header = environ.get("HTTP_AUTHORIZATION", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else None
            return route.run(self.service, self.auth.principal(token), groups, body)
        except (HallError, IllegalTransition, ValidationError) as exc:
            status, error = error_answer(exc)
            return error, status
        except Exception as exc:  # noqa: BLE001 - answered as Flask's handler answers it, and logged
            status, error = unexpected_answer(exc, f"POST {environ.get('PATH_INFO')}")
            return error, status


def _is_json(content_type: str) -> bool:
    """As Werkzeug's ``Request.is_json``: application/json or application/*+json."""
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))

"""Errors the hall server answers with. Each has a stable code, an HTTP status and a message in
Chinese for the person at the screen, with the technical detail in English after it."""
from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
import sqlalchemy.exc
from pydantic import ValidationError

from .rules.states import IllegalTransition

log = logging.getLogger(__name__)


class HallError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class BadRequest(HallError):
    status = 400
    code = "bad_request"


class NotFound(HallError):
    status = 404
    code = "not_found"


class Conflict(HallError):
    """The request is well formed but the hall's state or rules refuse it."""

    status = 409
    code = "conflict"


class Unauthorized(HallError):
    status = 401
    code = "unauthorized"


class Forbidden(HallError):
    status = 403
    code = "forbidden"


class DatabaseUnavailable(HallError):
    """The database cannot be reached, or is too busy to answer in time: nothing was changed that the
    caller can rely on, and the same request may be tried again in a moment."""

    status = 503
    code = "database_unavailable"


def database_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """The refusal for ``exc`` if it says the database is gone or busy rather than that the request or
    our code is wrong: a lost or refused connection (a restart, a failover, ``pg_terminate_backend``),
    a pool with no free connection in time, SQLite's lock or disk failing. ``None`` otherwise. The
    message gives the first such error: a rollback that failed on the same lost connection raises
    "the connection is lost" over the server's own reason ("terminating connection due to
    administrator command")."""
    detail = _unavailable_detail(exc)
    if detail is None:
        return None
    seen = exc.__context__
    while seen is not None:  # the errors this one was raised while handling, newest first
        detail = _unavailable_detail(seen) or detail
        seen = seen.__context__
    first = (detail.strip().splitlines() or ["unknown"])[0][:200]
    return DatabaseUnavailable(f"数据库暂时不可用，请稍后重试 (database unavailable: {first})")


def _unavailable_detail(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # the pool: every connection busy
        return "no free database connection in time"
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return str(orig)
    if isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError)):
        return str(orig)
    return None


INTERNAL_ERROR = {"error": {"code": "internal_error", "message": "服务器内部错误，请联系管理员 (internal error)"}}


def unexpected_answer(exc: Exception, where: str) -> tuple[int, dict[str, Any]]:
    """The status and body for an exception no view handled, logged: 503 when the database is gone
    or busy (a warning with its reason), else 500 (with the traceback). ``where``: method and path."""
    lost = database_unavailable(exc)
    if lost is not None:
        log.warning("%s: %s", where, lost.message)
        return lost.status, lost.to_json()
    log.exception("unexpected error on %s", where)
    return 500, INTERNAL_ERROR


def error_answer(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for a refusal: a HallError, an illegal ticket transition or a
    request its model did not validate (each field named with what was wrong)."""
    if isinstance(exc, HallError):
        return exc.status, exc.to_json()
    if isinstance(exc, IllegalTransition):
        return 409, {"error": {"code": "illegal_transition", "message": str(exc)}}
    if isinstance(exc, ValidationError):
        fields = [{"field": ".".join(str(x) for x in err["loc"]), "message": err["msg"]} for err in exc.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return 422, {"error": {"code": "invalid_request", "message": f"请求参数有误 ({summary})", "fields": fields}}
    raise TypeError(f"not a refusal: {exc!r}")


def malformed_json_body(detail: str) -> dict[str, Any]:
    return {"error": {"code": "malformed_json", "message": f"请求体不是合法的 JSON (malformed JSON: {detail})"}}

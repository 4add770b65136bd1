"""Errors the hall server answers with. Each has a stable code, an HTTP status and a message in
Chinese for the person at the screen, with the technical detail in English after it."""
from __future__ import annotations

from typing import Any


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

"""The hall notice (滚动公告): one line of text a manager sets and the hall screen scrolls.

``GET /api/v1/halls/<hall>/notice`` is public (the screen needs no token); ``PUT`` needs
``hall:manage``. The text is persisted (table ``hall_notices``) so a restart keeps it, and every
change is pushed to the hall room as the Socket.IO event ``notice`` after the commit.
"""
from __future__ import annotations

import datetime as dt
import logging
import re

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field, field_validator

from .api import ERRORS, HallPath, bearer, principal, service
from .auth import MANAGE
from .notice_models import HallNotice

log = logging.getLogger(__name__)

MAX_NOTICE = 500  # characters; a TV line scrolls about 10 characters a second, so ~50 s per pass
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

notice_api = APIBlueprint("notice", __name__, url_prefix="/api/v1")
t_notice = Tag(name="halls", description="大厅与队列")


class NoticeBody(BaseModel):
    text: str = Field(max_length=MAX_NOTICE, description="公告内容，空字符串表示清除公告；换行会合并为空格")

    @field_validator("text")
    @classmethod
    def _clean(cls, v: str) -> str:
        if _CONTROL.search(v):
            raise ValueError("公告不能包含控制字符 (control characters are not allowed)")
        return " ".join(v.split())  # one scrolling line: newlines and runs of spaces become one space


class NoticePayload(BaseModel):
    """Also the payload of the Socket.IO event ``notice``."""

    hall: str
    text: str
    updated_at: dt.datetime | None = None


def get_notice(hall_id: str) -> NoticePayload:
    service().hall(hall_id)  # 404 for an unknown hall
    with service().db.read() as s:
        row = s.get(HallNotice, hall_id)
        if row is None:
            return NoticePayload(hall=hall_id, text="", updated_at=None)
        return NoticePayload(hall=hall_id, text=row.text, updated_at=row.updated_at)


def set_notice(hall_id: str, text: str, actor: str) -> NoticePayload:
    svc = service()
    svc.hall(hall_id)
    now = svc.clock()
    with svc.db.write() as s:
        row = s.get(HallNotice, hall_id, with_for_update=True)
        if row is None:
            row = HallNotice(hall_id=hall_id)
            s.add(row)
        row.text, row.updated_at, row.updated_by = text, now, actor
    payload = NoticePayload(hall=hall_id, text=text, updated_at=now)
    log.info("%s: notice set by %s (%d characters)", hall_id, actor, len(text))
    try:  # after the commit; a broken message queue must not fail the request that already committed
        socketio = current_app.extensions["hall"]["socketio"]
        socketio.emit("notice", payload.model_dump(mode="json"), to=f"hall:{hall_id}")
    except Exception:
        log.exception("could not publish the notice of %s", hall_id)
    return payload


@notice_api.get("/halls/<hall>/notice", tags=[t_notice], responses={200: NoticePayload, **ERRORS})
def read_notice(path: HallPath):  # type: ignore[no-untyped-def]
    """大厅滚动公告（公开）"""
    return get_notice(path.hall).model_dump(mode="json")


@notice_api.put("/halls/<hall>/notice", tags=[t_notice], security=bearer, responses={200: NoticePayload, **ERRORS})
def write_notice(path: HallPath, body: NoticeBody):  # type: ignore[no-untyped-def]
    """设置大厅滚动公告（需要大厅管理权限）"""
    p = principal()
    p.require(MANAGE, path.hall)
    return set_notice(path.hall, body.text, f"{p.kind}:{p.name}").model_dump(mode="json")

"""What the clerk console reads beyond the core API: the next few waiting tickets of a window's
queues (numbers only) and today's no-shows it may re-activate.

The order shown is the queue order (priority tickets first, then by place), which is what call-next
takes within one queue; across queues the window's routing rule decides (hall_server/rules/routing.py).
"""
from __future__ import annotations

import datetime as dt

from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from . import models as m
from .api import ERRORS, WindowPath, bearer, principal, service
from .auth import READ
from .events import TicketView
from .rules import numbering
from .rules.states import TicketStatus

console_api = APIBlueprint("console", __name__, url_prefix="/api/v1")
t_console = Tag(name="windows", description="窗口操作")


class WaitingQuery(BaseModel):
    limit: int = Field(default=5, ge=1, le=50, description="每个队列列出的号数")


class WaitingTicket(BaseModel):
    id: int
    number: str
    priority: bool
    priority_class: str | None = None
    sent_here: bool = False  # transferred to this window


class WaitingQueue(BaseModel):
    id: str
    prefix: str
    name: str
    waiting: int
    longest_wait_seconds: float
    estimated_wait_seconds: float
    next: list[WaitingTicket]


class WaitingResponse(BaseModel):
    hall: str
    window: str
    allow_call_specific: bool
    queues: list[WaitingQueue]
    sent_here: list[WaitingTicket]


class NoShowResponse(BaseModel):
    hall: str
    window: str
    tickets: list[TicketView]


def _wt(t: m.Ticket, sent_here: bool = False) -> WaitingTicket:
    return WaitingTicket(id=t.id, number=t.display, priority=t.priority, priority_class=t.priority_class,
                         sent_here=sent_here)


@console_api.get("/halls/<hall>/windows/<window>/waiting", tags=[t_console], security=bearer,
                 responses={200: WaitingResponse, **ERRORS})
def waiting(path: WindowPath, query: WaitingQuery):  # type: ignore[no-untyped-def]
    """本窗口所服务队列的等候人数、最长等候时间和接下来的几个号（只含号码）"""
    principal().require(READ, path.hall)
    svc = service()
    hall = svc.hall(path.hall)
    served = svc.window_view(path.hall, path.window).queues  # 404 for an unknown window
    views = {q.id: q for q in svc.queue_views(path.hall)}
    T = m.Ticket
    out: list[WaitingQueue] = []
    with svc.db.read() as s:
        for qid in served:
            rows = s.scalars(
                select(T).where(T.hall_id == hall.id, T.queue_id == qid, m.status_is(T.status, TicketStatus.WAITING.value),
                                T.target_window.is_(None))
                .order_by(T.priority.desc(), T.place, T.id).limit(query.limit)).all()
            v = views[qid]
            out.append(WaitingQueue(id=qid, prefix=v.prefix, name=v.name, waiting=v.waiting,
                                    longest_wait_seconds=v.longest_wait_seconds,
                                    estimated_wait_seconds=v.estimated_wait_seconds,
                                    next=[_wt(t) for t in rows]))
        sent = s.scalars(
            select(T).where(T.hall_id == hall.id, m.status_is(T.status, TicketStatus.WAITING.value),
                            T.target_window == path.window)
            .order_by(T.place, T.id).limit(query.limit)).all()
    return WaitingResponse(hall=hall.id, window=path.window, allow_call_specific=hall.allow_call_specific,
                           queues=out, sent_here=[_wt(t, True) for t in sent]).model_dump(mode="json")


@console_api.get("/halls/<hall>/windows/<window>/no-shows", tags=[t_console], security=bearer,
                 responses={200: NoShowResponse, **ERRORS})
def no_shows(path: WindowPath):  # type: ignore[no-untyped-def]
    """今天本窗口标记的、或本窗口所服务队列中的过号票（最近的在前），供过号重排"""
    principal().require(READ, path.hall)
    svc = service()
    hall = svc.hall(path.hall)
    served = svc.window_view(path.hall, path.window).queues
    day: dt.date = numbering.service_day(svc.clock(), hall.tz)
    T = m.Ticket
    with svc.db.read() as s:
        rows = s.scalars(
            select(T).where(T.hall_id == hall.id, T.service_day == day, m.status_is(T.status, TicketStatus.NO_SHOW.value),
                            or_(T.queue_id.in_(served), T.window == path.window))
            .order_by(T.called_at.desc(), T.id.desc()).limit(30)).all()
        tickets = [svc._view(hall, t) for t in rows]  # the same TicketView the live events carry
    return NoShowResponse(hall=hall.id, window=path.window, tickets=tickets).model_dump(mode="json")

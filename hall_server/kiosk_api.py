"""REST endpoints for kiosks and citizens: the kiosk catalogue (with pinyin initials for search),
online appointments (slots, booking, look-up, cancellation, kiosk check-in) and voiding a ticket the
kiosk could not print. Mounted under /api/v1 next to :mod:`hall_server.api`."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy import select

from . import models as m
from .api import ERRORS, HallPath, IssueResponse, principal, service
from .appointments import AppointmentService, AppointmentView
from .auth import ISSUE
from .config import Hall
from .errors import BadRequest, Forbidden, NotFound
from .events import TicketView
from .service import IssuedTicket

kiosk_api = APIBlueprint("kiosk_api", __name__, url_prefix="/api/v1")
bearer = [{"bearer": []}]
t_kiosk = Tag(name="kiosk", description="取号机目录、作废未出票的号")
t_appt = Tag(name="appointments", description="网上预约与签到")


def appointments() -> AppointmentService:
    ext = current_app.extensions["hall"]
    if "appointments" not in ext:
        ext["appointments"] = AppointmentService(ext["service"])
    return ext["appointments"]


# ---- catalogue ------------------------------------------------------------------------------------
def initials(text: str) -> str:
    """营业执照办理 -> yyzzbl: what a citizen types on the kiosk's letter keyboard."""
    from pypinyin import Style, lazy_pinyin

    return re.sub(r"[^a-z0-9]", "", "".join(lazy_pinyin(text, style=Style.FIRST_LETTER)).lower())


def full_pinyin(text: str) -> str:
    from pypinyin import lazy_pinyin

    return re.sub(r"[^a-z0-9]", "", "".join(lazy_pinyin(text)).lower())


_CATALOGUES: dict[int, tuple[Hall, dict[str, Any]]] = {}


def _static_catalogue(hall: Hall) -> dict[str, Any]:
    hit = _CATALOGUES.get(id(hall))
    if hit is None or hit[0] is not hall:
        hit = _CATALOGUES[id(hall)] = (hall, _build_catalogue(hall))
    return hit[1]


def _build_catalogue(hall: Hall) -> dict[str, Any]:
    queues = {q.id: q for q in hall.queues}
    zone_names = {z.id: z.name for z in hall.zones}

    def matter(mid: str) -> dict[str, Any]:
        mc = hall.matter(mid)
        return {"id": mc.id, "name": mc.name}

    return {
        "hall": {"id": hall.id, "name": hall.name, "elderly_age": hall.elderly_age, "timezone": hall.timezone},
        "zones": [{"id": z.id, "name": z.name} for z in hall.zones
                  if any(q.zone == z.id for q in hall.queues)],
        "departments": sorted({mc.department for mc in hall.matters if mc.department}),
        "matters": [{
            "id": mc.id, "name": mc.name, "department": mc.department, "queue": mc.queue,
            "queue_name": queues[mc.queue].name, "zone": queues[mc.queue].zone,
            "zone_name": zone_names.get(queues[mc.queue].zone or ""), "instant": mc.instant,
            "needs_identity": mc.needs_identity, "initials": initials(mc.name), "pinyin": full_pinyin(mc.name),
        } for mc in hall.matters],
        "bundles": [{
            "id": b.id, "name": b.name, "queue": b.queue, "queue_name": queues[b.queue].name,
            "mandatory": [matter(x) for x in b.mandatory], "optional": [matter(x) for x in b.optional],
            "promised_minutes": b.promised_minutes, "initials": initials(b.name), "pinyin": full_pinyin(b.name),
        } for b in hall.bundles],
        "priority_classes": [{"id": p.id, "name": p.name, "priority": p.priority} for p in hall.priority_classes],
        "appointments": {"early_minutes": hall.appointments.early_minutes,
                         "late_minutes": hall.appointments.late_minutes,
                         "late_policy": hall.appointments.late_policy,
                         "slot_minutes": hall.appointments.slot_minutes,
                         "days_ahead": hall.appointments.days_ahead},
    }


class Catalogue(BaseModel):
    hall: dict[str, Any]
    zones: list[dict[str, Any]]
    departments: list[str]
    queues: list[dict[str, Any]]
    matters: list[dict[str, Any]]
    bundles: list[dict[str, Any]]
    priority_classes: list[dict[str, Any]]
    appointments: dict[str, Any]


@kiosk_api.get("/halls/<hall>/catalogue", tags=[t_kiosk], responses={200: Catalogue, **ERRORS})
def catalogue(path: HallPath):  # type: ignore[no-untyped-def]
    """What a kiosk offers: zones, departments, matters and bundles with pinyin initials, and the live
    waiting count per queue. Public: it is what the hall's walls show anyway."""
    svc = service()
    hall = svc.hall(path.hall)
    out = dict(_static_catalogue(hall))
    zone_names = {z.id: z.name for z in hall.zones}
    out["queues"] = [{
        "id": q.id, "prefix": q.prefix, "name": q.name, "zone": hall.queue(q.id).zone,
        "zone_name": zone_names.get(hall.queue(q.id).zone or ""), "waiting": q.waiting,
        "estimated_wait_minutes": int(round(q.estimated_wait_seconds / 60)),
    } for q in svc.queue_views(hall.id)]
    return out


# ---- appointments ---------------------------------------------------------------------------------
class SlotQuery(BaseModel):
    matter: str | None = None
    queue: str | None = None
    date: dt.date | None = Field(default=None, description="hall-local day; today by default")


class SlotOut(BaseModel):
    start: dt.datetime
    end: dt.datetime
    label: str
    capacity: int
    booked: int
    left: int


class SlotList(BaseModel):
    queue: str
    date: dt.date
    slots: list[SlotOut]


class BookBody(BaseModel):
    matter: str | None = None
    queue: str | None = None
    slot_start: dt.datetime
    id_number: str = Field(min_length=15, max_length=18, description="only a keyed hash and a masked form are stored")
    name: str | None = Field(default=None, max_length=32, description="kept masked only (张*三)")
    request_id: str | None = Field(default=None, min_length=8, max_length=80,
                                   description="a resubmitted form with the same id returns the same booking")


class AppointmentOut(AppointmentView):
    slot_label: str


class CodeBody(BaseModel):
    code: str = Field(min_length=4, max_length=16)
    id_number: str = Field(min_length=15, max_length=18)


class CheckInBody(BaseModel):
    code: str | None = Field(default=None, min_length=4, max_length=16)
    id_number: str | None = Field(default=None, min_length=15, max_length=18)


class CheckInResponse(IssueResponse):
    appointment: AppointmentOut


def _label(hall: Hall, start: dt.datetime, end: dt.datetime) -> str:
    s, e = start.astimezone(hall.tz), end.astimezone(hall.tz)
    return f"{s:%m月%d日} {s:%H:%M}-{e:%H:%M}"


def _appt_out(v: AppointmentView) -> dict[str, Any]:
    hall = service().hall(v.hall)
    return AppointmentOut(slot_label=_label(hall, v.slot_start, v.slot_end), **v.model_dump()).model_dump(mode="json")


@kiosk_api.get("/halls/<hall>/appointment-slots", tags=[t_appt], responses={200: SlotList, **ERRORS})
def appointment_slots(path: HallPath, query: SlotQuery):  # type: ignore[no-untyped-def]
    svc = appointments()
    hall = service().hall(path.hall)
    day = query.date or dt.datetime.now(hall.tz).date()
    queue_id, slots = svc.slots(path.hall, queue=query.queue, matter=query.matter, day=query.date)
    return SlotList(queue=queue_id, date=query.date or day, slots=[
        SlotOut(start=s.start, end=s.end, label=_label(hall, s.start, s.end), capacity=s.capacity,
                booked=s.booked, left=s.left) for s in slots]).model_dump(mode="json")


@kiosk_api.post("/halls/<hall>/appointments", tags=[t_appt], responses={201: AppointmentOut, **ERRORS})
def book_appointment(path: HallPath, body: BookBody):  # type: ignore[no-untyped-def]
    """Book a slot online. Public like the hall's booking page; the code it returns is shown once."""
    v = appointments().book(path.hall, slot_start=body.slot_start, id_number=body.id_number, queue=body.queue,
                            matter=body.matter, name=body.name, request_id=body.request_id)
    return _appt_out(v), 201


@kiosk_api.post("/halls/<hall>/appointments/lookup", tags=[t_appt], responses={200: AppointmentOut, **ERRORS})
def lookup_appointment(path: HallPath, body: CodeBody):  # type: ignore[no-untyped-def]
    return _appt_out(appointments().lookup(path.hall, body.code, body.id_number))


@kiosk_api.post("/halls/<hall>/appointments/cancel", tags=[t_appt], responses={200: AppointmentOut, **ERRORS})
def cancel_appointment(path: HallPath, body: CodeBody):  # type: ignore[no-untyped-def]
    return _appt_out(appointments().cancel(path.hall, body.code, body.id_number))


def issue_response(hall_id: str, r: IssuedTicket) -> dict[str, Any]:
    return IssueResponse.of(service().hall(hall_id), r).model_dump(mode="json")


@kiosk_api.post("/halls/<hall>/appointments/check-in", tags=[t_appt], security=bearer,
                responses={200: CheckInResponse, 201: CheckInResponse, **ERRORS})
def check_in(path: HallPath, body: CheckInBody):  # type: ignore[no-untyped-def]
    """签到: an appointment ticket within the hall's check-in window. Checking in twice answers with
    the same ticket (``replayed``)."""
    p = principal()
    p.require(ISSUE, path.hall)
    r, v = appointments().check_in(path.hall, code=body.code, id_number=body.id_number,
                                   actor=f"{p.kind}:{p.name}")
    out = issue_response(path.hall, r)
    out["appointment"] = _appt_out(v)
    return out, (200 if r.replayed else 201)


# ---- voiding a ticket the kiosk could not print -----------------------------------------------------
class VoidBody(BaseModel):
    request_id: str | None = Field(default=None, min_length=8, max_length=80,
                                   description="the issuing request's id (works even if its answer was lost)")
    ticket_id: int | None = Field(default=None, description="or the ticket's id (appointment check-ins)")
    reason: str = Field(default="取号机未能出票", max_length=200)


class VoidResponse(BaseModel):
    voided: bool
    ticket: TicketView | None


@kiosk_api.post("/halls/<hall>/tickets/void", tags=[t_kiosk], security=bearer,
                responses={200: VoidResponse, **ERRORS})
def void_ticket(path: HallPath, body: VoidBody):  # type: ignore[no-untyped-def]
    """Cancel a still-waiting ticket by the request id that issued it, when its slip never printed.
    Only whoever issued it may (a kiosk voids its own tickets, not another's). ``voided`` is false
    when the request issued no ticket or it is already cancelled."""
    p = principal()
    p.require(ISSUE, path.hall)
    svc = service()
    hall = svc.hall(path.hall)
    actor = f"{p.kind}:{p.name}"
    if (body.request_id is None) == (body.ticket_id is None):
        raise BadRequest("请指定 request_id 或 ticket_id 之一 (give one of request_id, ticket_id)")
    with svc.db.read() as s:
        if body.request_id is not None:
            t = s.scalar(select(m.Ticket).where(m.Ticket.hall_id == hall.id, m.Ticket.request_id == body.request_id))
        else:
            t = s.get(m.Ticket, body.ticket_id)
            t = t if t is not None and t.hall_id == hall.id else None
        issuer = None if t is None else s.scalar(select(m.TicketEvent.actor).where(
            m.TicketEvent.ticket_id == t.id, m.TicketEvent.kind == "issued"))
    if t is None:
        return VoidResponse(voided=False, ticket=None).model_dump(mode="json")
    if issuer != actor:
        raise Forbidden("只能作废本机取的号 (only the issuer may void a ticket)")
    if t.status == "cancelled":
        view, _, _ = svc.ticket(hall.id, t.id)
        return VoidResponse(voided=False, ticket=view).model_dump(mode="json")
    view = svc.cancel(hall.id, t.id, body.reason, actor=actor)
    return VoidResponse(voided=True, ticket=view).model_dump(mode="json")


__all__ = ["kiosk_api", "appointments", "initials", "NotFound"]

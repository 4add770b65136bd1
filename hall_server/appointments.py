"""Online appointments (预约): time slots with a capacity per queue, booking with an ID card number,
cancellation, and check-in at a kiosk by appointment code or ID card.

- Capacity: one ``appointment_slots`` row per queue and slot, incremented by a conditional
  ``UPDATE ... SET booked = booked + 1 WHERE booked < capacity`` inside the booking transaction, so
  the last place goes to exactly one citizen on SQLite and PostgreSQL alike; a cancellation gives it back.
- Personal data: like tickets, only the keyed hash and the masked ID number are stored.
- Check-in issues an ``appointment`` ticket through :meth:`QueueService.issue`, which applies the
  hall's early/late window (``[halls.appointments]``). Its request id is derived from the appointment
  (``appt-<id>-<n>``), so a double tap, a retry or two kiosks at once never make two tickets; if the
  kiosk voids the ticket (printer failed), the next check-in issues a fresh one (n + 1).
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from . import models as m
from .appointment_models import Appointment, AppointmentSlot
from .config import Hall
from .errors import BadRequest, Conflict, NotFound
from .rules import identity, numbering
from .service import IssuedTicket, QueueService

log = logging.getLogger(__name__)

DEFAULT_HOURS = ((dt.time(8, 30), dt.time(12, 0)), (dt.time(13, 30), dt.time(17, 30)))
ACTIVE = ("booked", "checked_in")
STATUS_LABELS = {"booked": "已预约", "checked_in": "已签到", "cancelled": "已取消"}


@dataclass(frozen=True)
class Slot:
    start: dt.datetime  # aware UTC
    end: dt.datetime
    capacity: int
    booked: int

    @property
    def left(self) -> int:
        return max(0, self.capacity - self.booked)


class AppointmentView(BaseModel):
    """An appointment as its holder may see it (the ID number masked); the API adds the slot's label."""

    model_config = ConfigDict(frozen=True)

    code: str
    hall: str
    queue: str
    queue_name: str
    matter: str | None
    matter_name: str | None
    slot_start: dt.datetime
    slot_end: dt.datetime
    status: str
    status_label: str
    person_masked: str
    ticket_id: int | None


class AppointmentService:
    def __init__(self, queues: QueueService, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.queues = queues
        self.clock = clock or queues.clock

    # ---- slots -------------------------------------------------------------------------------
    def _target(self, hall: Hall, queue: str | None, matter: str | None) -> tuple[str, str | None]:
        if (queue is None) == (matter is None):
            raise BadRequest("请指定一个事项或队列 (give exactly one of matter, queue)")
        if matter is not None:
            try:
                return hall.matter(matter).queue, matter
            except KeyError:
                raise NotFound(f"未知的事项 {matter!r} (unknown matter)", code="unknown_matter") from None
        assert queue is not None
        try:
            hall.queue(queue)
        except KeyError:
            raise NotFound(f"未知的队列 {queue!r} (unknown queue)", code="unknown_queue") from None
        return queue, None

    def capacity(self, hall: Hall, queue_id: str) -> int:
        return hall.appointments.queue_capacity.get(queue_id, hall.appointments.slot_capacity)

    def _periods(self, hall: Hall, queue_id: str) -> list[tuple[dt.time, dt.time]]:
        if hall.appointments.hours:
            return [(p.start, p.end) for p in hall.appointments.hours]
        q = hall.queue(queue_id)
        if q.hours:
            return [(p.start, p.end) for p in q.hours]
        return list(DEFAULT_HOURS)

    def _slot_starts(self, hall: Hall, queue_id: str, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        step = dt.timedelta(minutes=hall.appointments.slot_minutes)
        out = []
        for start, end in self._periods(hall, queue_id):
            t = dt.datetime.combine(day, start, hall.tz)
            stop = dt.datetime.combine(day, end, hall.tz)
            while t + step <= stop:
                out.append((t.astimezone(dt.timezone.utc), (t + step).astimezone(dt.timezone.utc)))
                t += step
        return out

    def _check_day(self, hall: Hall, day: dt.date) -> None:
        today = numbering.service_day(self.clock(), hall.tz)
        if day < today:
            raise BadRequest("不能预约过去的日期 (date is in the past)", code="date_in_past")
        if day > today + dt.timedelta(days=hall.appointments.days_ahead):
            raise BadRequest(f"只能预约{hall.appointments.days_ahead}天内的时段 (too far ahead)", code="date_too_far")

    def slots(self, hall_id: str, *, queue: str | None = None, matter: str | None = None,
              day: dt.date | None = None) -> tuple[str, list[Slot]]:
        """Bookable slots of a day (today by default) that have not ended yet."""
        hall = self.queues.hall(hall_id)
        queue_id, _ = self._target(hall, queue, matter)
        now = self.clock()
        day = day or numbering.service_day(now, hall.tz)
        self._check_day(hall, day)
        cap = self.capacity(hall, queue_id)
        starts = [(s, e) for s, e in self._slot_starts(hall, queue_id, day) if e > now]
        if not starts:
            return queue_id, []
        with self.queues.db.read() as s:
            booked = dict(s.execute(
                select(AppointmentSlot.slot_start, AppointmentSlot.booked).where(
                    AppointmentSlot.hall_id == hall.id, AppointmentSlot.queue_id == queue_id,
                    AppointmentSlot.slot_start >= starts[0][0], AppointmentSlot.slot_start <= starts[-1][0])).all())
        return queue_id, [Slot(st, en, cap, booked.get(st, 0)) for st, en in starts]

    # ---- booking -----------------------------------------------------------------------------
    def _view(self, hall: Hall, a: Appointment) -> AppointmentView:
        matter_name = None
        if a.matter_id:
            try:
                matter_name = hall.matter(a.matter_id).name
            except KeyError:
                matter_name = a.matter_id
        return AppointmentView(
            code=a.code, hall=hall.id, queue=a.queue_id, queue_name=hall.queue(a.queue_id).name,
            matter=a.matter_id, matter_name=matter_name, slot_start=a.slot_start, slot_end=a.slot_end,
            status=a.status, status_label=STATUS_LABELS.get(a.status, a.status), person_masked=a.person_masked,
            ticket_id=a.ticket_id,
        )

    def book(self, hall_id: str, *, slot_start: dt.datetime, id_number: str, queue: str | None = None,
             matter: str | None = None, name: str | None = None, request_id: str | None = None) -> AppointmentView:
        hall = self.queues.hall(hall_id)
        queue_id, matter_id = self._target(hall, queue, matter)
        try:
            phash = identity.person_hash(id_number, self.queues.secret)
            masked = identity.mask_id(id_number)
        except identity.InvalidIdNumber as exc:
            raise BadRequest(str(exc), code="invalid_id_number") from None
        if slot_start.tzinfo is None:
            slot_start = slot_start.replace(tzinfo=hall.tz)
        slot_start = slot_start.astimezone(dt.timezone.utc)
        day = numbering.service_day(slot_start, hall.tz)
        self._check_day(hall, day)
        now = self.clock()
        match = [(s, e) for s, e in self._slot_starts(hall, queue_id, day) if s == slot_start]
        if not match:
            raise BadRequest(f"{slot_start.astimezone(hall.tz):%m月%d日 %H:%M} 不是可预约的时段 (not a slot)",
                             code="not_a_slot")
        start, end = match[0]
        if end <= now:
            raise Conflict("该时段已结束，请选择其他时段 (slot is over)", code="slot_over")
        cap = self.capacity(hall, queue_id)
        if cap <= 0:
            raise Conflict(f"{hall.queue(queue_id).name}不接受预约 (queue takes no appointments)", code="no_booking")
        qname = hall.queue(queue_id).name

        def work() -> Appointment:
            with self.queues.db.write() as s:
                if request_id:
                    prior = s.scalar(select(Appointment).where(Appointment.hall_id == hall.id,
                                                               Appointment.request_id == request_id))
                    if prior is not None:
                        return prior
                held = s.scalar(select(func.count()).where(
                    Appointment.hall_id == hall.id, Appointment.person_hash == phash, Appointment.service_day == day,
                    Appointment.queue_id == queue_id, Appointment.status.in_(ACTIVE))) or 0
                if held >= hall.appointments.per_person_per_day:
                    raise Conflict(f"您在{day:%m月%d日}已有“{qname}”的预约，每人每天限约"
                                   f"{hall.appointments.per_person_per_day}次；如需改约请先取消原预约",
                                   code="person_limit_appointment")
                ins = self.queues._upsert()(AppointmentSlot).values(  # noqa: SLF001 - same dialect helper
                    hall_id=hall.id, queue_id=queue_id, slot_start=start, booked=0)
                s.execute(ins.on_conflict_do_nothing(index_elements=["hall_id", "queue_id", "slot_start"]))
                got = s.execute(update(AppointmentSlot).where(
                    AppointmentSlot.hall_id == hall.id, AppointmentSlot.queue_id == queue_id,
                    AppointmentSlot.slot_start == start, AppointmentSlot.booked < cap,
                ).values(booked=AppointmentSlot.booked + 1)).rowcount
                if not got:
                    raise Conflict(f"{start.astimezone(hall.tz):%H:%M}的{qname}预约已满，请选择其他时段",
                                   code="slot_full")
                code = f"{secrets.randbelow(10 ** 8):08d}"
                a = Appointment(
                    hall_id=hall.id, queue_id=queue_id, matter_id=matter_id, service_day=day, slot_start=start,
                    slot_end=end, code=code, status="booked", person_hash=phash, person_masked=masked,
                    name_masked=identity.mask_name(name) if name else None, request_id=request_id,
                    check_ins=0, created_at=now,
                )
                s.add(a)
                s.flush()
                return a

        for attempt in range(3):
            try:
                a = work()
                break
            except IntegrityError:  # an appointment code drawn twice: draw again
                if attempt == 2:
                    raise
        log.info("%s: appointment %s booked for %s %s", hall.id, a.code[:2] + "******", queue_id, start)
        return self._view(hall, a)

    def _find_by_code(self, hall: Hall, code: str) -> Appointment:
        with self.queues.db.read() as s:
            a = s.scalar(select(Appointment).where(Appointment.hall_id == hall.id, Appointment.code == code.strip()))
        if a is None:
            raise NotFound("预约码不存在，请核对后重新输入 (unknown appointment code)", code="appointment_not_found")
        return a

    def lookup(self, hall_id: str, code: str, id_number: str) -> AppointmentView:
        """A booking, shown only to whoever knows both its code and the ID number it was made with."""
        hall = self.queues.hall(hall_id)
        a = self._find_by_code(hall, code)
        self._require_owner(a, id_number)
        return self._view(hall, a)

    def _require_owner(self, a: Appointment, id_number: str) -> None:
        try:
            phash = identity.person_hash(id_number, self.queues.secret)
        except identity.InvalidIdNumber as exc:
            raise BadRequest(str(exc), code="invalid_id_number") from None
        if phash != a.person_hash:
            raise NotFound("预约码与身份证号不匹配 (no such appointment for this ID)", code="appointment_not_found")

    def cancel(self, hall_id: str, code: str, id_number: str) -> AppointmentView:
        hall = self.queues.hall(hall_id)
        a = self._find_by_code(hall, code)
        self._require_owner(a, id_number)
        with self.queues.db.write() as s:
            a = s.get(Appointment, a.id, with_for_update=True)
            assert a is not None
            if a.status != "booked":
                raise Conflict(f"该预约{STATUS_LABELS.get(a.status, a.status)}，不能取消", code="cannot_cancel")
            a.status, a.cancelled_at = "cancelled", self.clock()
            s.execute(update(AppointmentSlot).where(
                AppointmentSlot.hall_id == hall.id, AppointmentSlot.queue_id == a.queue_id,
                AppointmentSlot.slot_start == a.slot_start, AppointmentSlot.booked > 0,
            ).values(booked=AppointmentSlot.booked - 1))
            return self._view(hall, a)

    # ---- check-in ----------------------------------------------------------------------------
    def check_in(self, hall_id: str, *, code: str | None = None, id_number: str | None = None,
                 actor: str | None = None) -> tuple[IssuedTicket, AppointmentView]:
        hall = self.queues.hall(hall_id)
        if not code and not id_number:
            raise BadRequest("请输入预约码或刷身份证 (give code or id_number)")
        now = self.clock()
        today = numbering.service_day(now, hall.tz)
        if code:
            a = self._find_by_code(hall, code)
        else:
            assert id_number is not None
            try:
                phash = identity.person_hash(id_number, self.queues.secret)
            except identity.InvalidIdNumber as exc:
                raise BadRequest(str(exc), code="invalid_id_number") from None
            with self.queues.db.read() as s:
                found = list(s.scalars(select(Appointment).where(
                    Appointment.hall_id == hall.id, Appointment.person_hash == phash,
                    Appointment.service_day == today, Appointment.status.in_(ACTIVE))))
            if not found:
                raise NotFound("未查询到您今天的预约；如已预约，请输入预约码签到", code="appointment_not_found")
            # the booked one whose slot is nearest to now (a citizen may hold several queues' bookings)
            found.sort(key=lambda x: (x.status != "booked", abs((x.slot_start - now).total_seconds())))
            a = found[0]
        if a.status == "cancelled":
            raise Conflict("该预约已取消，请重新预约或现场取号", code="appointment_cancelled")
        if a.service_day != today:
            raise Conflict(f"该预约是{a.service_day:%m月%d日}的，请在预约当天签到", code="appointment_other_day")

        n = a.check_ins
        if a.ticket_id is not None:
            with self.queues.db.read() as s:
                t = s.get(m.Ticket, a.ticket_id)
            if t is None or t.status == "cancelled":  # voided (e.g. the kiosk could not print): issue anew
                n += 1
        else:
            n += 1
        issued = self.queues.issue(
            hall.id, request_id=f"appt-{a.id}-{n}", channel="appointment",
            matter=a.matter_id, queue=None if a.matter_id else a.queue_id,
            id_number=id_number, appointment_at=a.slot_start, actor=actor,
            note=f"预约码 {a.code}",
        )
        with self.queues.db.write() as s:
            row = s.get(Appointment, a.id, with_for_update=True)
            assert row is not None
            if row.check_ins <= n:
                row.status, row.ticket_id, row.check_ins = "checked_in", issued.ticket.id, n
                row.checked_in_at = row.checked_in_at or now
            a = row
            view = self._view(hall, a)
        return issued, view

"""Live figures of the manager dashboard, computed from tickets, ticket events and window state.

Definitions (the page says them in Chinese too):

- *wait* of a ticket: from issue to its first call, counted once, in the queue it was called from;
  an appointment checked in before its slot waits from the slot (``estimate.waiting_since``).
  *Average wait over the last hour*: mean wait of tickets first called in the last 60 minutes.
- *service level*: share (%) of the tickets first called today whose wait was within the queue's
  ``target_wait_minutes``.
- *longest current wait* and the *estimate for a newcomer*: as the hall screen shows them
  (:meth:`QueueService.queue_views`).
- a window's *served today*: services it ended today, by finishing the ticket or handing it on
  (transfer, next stage); *handling time*: from the call at that window to that end.
- *satisfaction rate*: (非常满意 + 满意) / rated evaluations today; *差评*: grade 1 or 2.

The hall refreshes this often (every manager's page, every few seconds) and a day holds thousands
of tickets, so today's events are folded once and then incrementally: each refresh reads only the
events committed since, and refolds the day only if an event turned up out of id order.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from . import models as m
from .config import Hall
from .rules import estimate, numbering
from .rules.states import WINDOW_LABELS, TicketStatus, window_status
from .service import QueueService

log = logging.getLogger(__name__)

FOLDED_KINDS = ("issued", "called", "finished", "transferred", "no_show")
SATISFIED_GRADES = (4, 5)
BAD_GRADES = (1, 2)


# ---- payload ------------------------------------------------------------------------------------
class QueueStats(BaseModel):
    id: str
    prefix: str
    name: str
    waiting: int
    longest_wait_seconds: float
    avg_wait_last_hour_seconds: float | None  # None: nobody called in the last hour
    called_last_hour: int
    estimated_wait_seconds: float  # for a ticket taken now
    target_wait_minutes: float
    over_target: bool
    service_level: float | None  # percent; None: nobody called today
    called_today: int
    max_waiting: int  # the alert threshold
    issued_today: int
    windows: list[str]  # open, unpaused windows serving the queue


class WindowStats(BaseModel):
    number: str
    name: str
    status: Literal["closed", "idle", "calling", "serving", "paused"]
    status_label: str
    pause_reason: str | None = None
    paused_seconds: float | None = None
    clerk: str | None = None
    clerk_name: str | None = None
    ticket: str | None = None  # number of the ticket called or being served
    elapsed_seconds: float | None = None  # since that ticket was called
    served_today: int
    avg_handle_seconds: float | None
    queues: list[str]
    devices_faulty: list[str] = []  # ids of this window's devices that are offline or degraded


class HallTotals(BaseModel):
    issued: int
    waiting: int
    served: int
    no_shows: int
    cancelled: int
    windows_total: int
    windows_open: int
    windows_paused: int


class SatisfactionStats(BaseModel):
    available: bool  # false when the evaluation tables are not installed
    rated: int = 0
    satisfied: int = 0
    bad: int = 0
    rate: float | None = None  # percent
    open_cases: int = 0
    overdue_cases: int = 0


class DeviceFault(BaseModel):
    device: str
    kind: str
    window: str | None
    state: str
    state_label: str
    detail: str | None = None


class DeviceHealth(BaseModel):
    available: bool
    total: int = 0
    online: int = 0
    degraded: int = 0
    offline: int = 0
    unknown: int = 0
    faults: list[DeviceFault] = []


class HourPoint(BaseModel):
    hour: int  # local hour of the day, 0..23
    arrivals: int
    called: int
    served: int
    avg_wait_seconds: float | None


class WindowSatisfaction(BaseModel):
    window: str
    name: str
    rated: int
    satisfied: int
    bad: int
    rate: float | None


class DashboardPayload(BaseModel):
    hall: str
    hall_name: str
    at: dt.datetime
    service_day: dt.date
    totals: HallTotals
    queues: list[QueueStats]
    windows: list[WindowStats]
    satisfaction: SatisfactionStats
    devices: DeviceHealth
    hourly: list[HourPoint]
    satisfaction_by_window: list[WindowSatisfaction]
    open_alerts: int


# ---- today's events, folded -----------------------------------------------------------------------
@dataclass
class DayFold:
    """What the dashboard needs from today's ticket events; fed events in id order."""

    day: dt.date
    tz: dt.tzinfo
    last_id: int = 0
    count: int = 0
    waiting_since: dict[int, dt.datetime] = field(default_factory=dict)  # issued today: since when it waits
    first_called: set[int] = field(default_factory=set)
    current_call: dict[int, tuple[str | None, dt.datetime]] = field(default_factory=dict)
    waits: dict[str, list[tuple[dt.datetime, float]]] = field(default_factory=dict)  # queue -> (call time, wait)
    served: dict[str, int] = field(default_factory=dict)
    handle_total: dict[str, float] = field(default_factory=dict)
    arrivals_by_hour: dict[int, int] = field(default_factory=dict)
    called_by_hour: dict[int, int] = field(default_factory=dict)
    wait_total_by_hour: dict[int, float] = field(default_factory=dict)
    served_by_hour: dict[int, int] = field(default_factory=dict)

    def hour(self, at: dt.datetime) -> int:
        return at.astimezone(self.tz).hour

    def add(self, ev_id: int, ticket_id: int, kind: str, at: dt.datetime, queue: str, window: str | None,
            data: dict[str, object] | None = None) -> None:
        self.last_id = max(self.last_id, ev_id)
        self.count += 1
        if kind == "issued":
            self.waiting_since[ticket_id] = estimate.waiting_since(at, data)
            h = self.hour(at)
            self.arrivals_by_hour[h] = self.arrivals_by_hour.get(h, 0) + 1
        elif kind == "called":
            self.current_call[ticket_id] = (window, at)
            if ticket_id not in self.first_called:
                self.first_called.add(ticket_id)
                issued = self.waiting_since.get(ticket_id)
                if issued is not None:  # tickets carried over from an earlier day are not counted
                    wait = max(0.0, (at - issued).total_seconds())
                    self.waits.setdefault(queue, []).append((at, wait))
                    h = self.hour(at)
                    self.called_by_hour[h] = self.called_by_hour.get(h, 0) + 1
                    self.wait_total_by_hour[h] = self.wait_total_by_hour.get(h, 0.0) + wait
        elif kind in ("finished", "transferred"):
            call = self.current_call.pop(ticket_id, None)
            if call is not None and window is not None and call[0] == window:
                self.served[window] = self.served.get(window, 0) + 1
                self.handle_total[window] = self.handle_total.get(window, 0.0) + (at - call[1]).total_seconds()
            if kind == "finished":
                h = self.hour(at)
                self.served_by_hour[h] = self.served_by_hour.get(h, 0) + 1
        elif kind == "no_show":
            self.current_call.pop(ticket_id, None)


def day_bounds(day: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(0), tz).astimezone(dt.timezone.utc)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz).astimezone(dt.timezone.utc)
    return start, end


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def served_queues(hall: Hall, ws: m.WindowState) -> list[str]:
    return list(ws.queues_override) if ws.queues_override else hall.window_queues(ws.number)


def waiting_by_queue(s: Session, hall: Hall, now: dt.datetime) -> dict[str, tuple[int, float]]:
    """Waiting tickets and the longest current wait (seconds) per queue: one grouped query."""
    T = m.Ticket
    out = {}
    for r in s.execute(select(T.queue_id, func.count().label("n"), func.min(T.place).label("oldest"))
                       .where(T.hall_id == hall.id, m.status_is(T.status, TicketStatus.WAITING.value)).group_by(T.queue_id)):
        out[r.queue_id] = (int(r.n), max(0.0, now.timestamp() - r.oldest) if r.oldest is not None else 0.0)
    return out


class Stats:
    """Dashboard figures for every hall of a server process."""

    def __init__(self, service: QueueService) -> None:
        self.service = service
        self._folds: dict[str, DayFold] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, hall_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(hall_id, threading.Lock())

    def fold(self, s: Session, hall: Hall, day: dt.date) -> DayFold:
        """Today's fold, brought up to date with the events committed since the last call."""
        E = m.TicketEvent
        start, end = day_bounds(day, hall.tz)
        in_day = and_(E.hall_id == hall.id, E.at >= start, E.at < end, E.kind.in_(FOLDED_KINDS))
        with self._lock(hall.id):
            fold = self._folds.get(hall.id)
            if fold is None or fold.day != day:
                fold = DayFold(day=day, tz=hall.tz)
            # data only of issued events (an early appointment's slot): the rest need no JSON parsed
            cols = (E.id, E.ticket_id, E.kind, E.at, E.queue_id, E.window,
                    case((E.kind == "issued", E.data)).label("data"))
            new = s.execute(select(*cols).where(in_day, E.id > fold.last_id).order_by(E.id)).all()
            total = s.scalar(select(func.count()).select_from(E).where(in_day)) or 0
            if fold.count + len(new) != total:
                # an event with a lower id committed after a higher one was folded: refold the day
                log.debug("%s: refolding today's events (%d folded, %d new, %d in the day)",
                          hall.id, fold.count, len(new), total)
                fold = DayFold(day=day, tz=hall.tz)
                new = s.execute(select(*cols).where(in_day).order_by(E.id)).all()
            for r in new:
                fold.add(r.id, r.ticket_id, r.kind, r.at, r.queue_id, r.window, r.data)
            self._folds[hall.id] = fold
            return fold

    # ---- the payload -----------------------------------------------------------------------------
    def dashboard(self, hall_id: str) -> DashboardPayload:
        svc = self.service
        hall = svc.hall(hall_id)
        now = svc.clock()
        day = numbering.service_day(now, hall.tz)
        with svc.db.read() as s:
            fold = self.fold(s, hall, day)
            queue_views = {q.id: q for q in svc.queue_views(hall.id, s)}
            states = {w.number: w for w in s.scalars(select(m.WindowState).where(m.WindowState.hall_id == hall.id))}
            totals_by_status = dict(s.execute(
                select(m.Ticket.status, func.count()).where(m.Ticket.hall_id == hall.id, m.Ticket.service_day == day)
                .group_by(m.Ticket.status)).all())
            ticket_ids = [w.ticket_id for w in states.values() if w.ticket_id]
            current = {t.id: t for t in s.execute(
                select(m.Ticket.id, m.Ticket.display, m.Ticket.status, m.Ticket.called_at)
                .where(m.Ticket.id.in_(ticket_ids)))} if ticket_ids else {}
            clerks = [w.clerk for w in states.values() if w.clerk]
            names = dict(s.execute(select(m.User.username, m.User.name).where(m.User.username.in_(clerks))).all()) \
                if clerks else {}
            satisfaction, by_window = self._satisfaction(s, hall, day)
            devices = self._devices(s, hall, now)
            open_alerts = self._open_alerts(s, hall)

        faulty_by_window: dict[str, list[str]] = {}
        for f in devices.faults:
            if f.window:
                faulty_by_window.setdefault(f.window, []).append(f.device)

        windows: list[WindowStats] = []
        open_by_queue: dict[str, list[str]] = {}
        n_open = n_paused = 0
        for wcfg in hall.windows:
            ws = states.get(wcfg.number) or m.WindowState(hall_id=hall.id, number=wcfg.number, paused=False)
            t = current.get(ws.ticket_id) if ws.ticket_id else None
            tstatus = TicketStatus(t.status) if t is not None else None
            if tstatus not in (TicketStatus.CALLED, TicketStatus.SERVING):
                t, tstatus = None, None
            status = window_status(ws.clerk is not None, bool(ws.paused), tstatus)
            queues = served_queues(hall, ws)
            if ws.clerk is not None:
                n_open += 1
                if ws.paused:
                    n_paused += 1
                else:
                    for q in queues:
                        open_by_queue.setdefault(q, []).append(wcfg.number)
            served = fold.served.get(wcfg.number, 0)
            windows.append(WindowStats(
                number=wcfg.number, name=wcfg.name or f"{wcfg.number}号窗口", status=status.value,
                status_label=WINDOW_LABELS[status],
                pause_reason=ws.pause_reason if ws.paused else None,
                paused_seconds=(now - ws.paused_at).total_seconds() if ws.paused and ws.paused_at else None,
                clerk=ws.clerk, clerk_name=names.get(ws.clerk, ws.clerk) if ws.clerk else None,
                ticket=t.display if t is not None else None,
                elapsed_seconds=(now - t.called_at).total_seconds() if t is not None and t.called_at else None,
                served_today=served,
                avg_handle_seconds=round(fold.handle_total[wcfg.number] / served, 1) if served else None,
                queues=queues, devices_faulty=faulty_by_window.get(wcfg.number, []),
            ))

        hour_ago = now - dt.timedelta(hours=1)
        queues: list[QueueStats] = []
        for q in hall.queues:
            v = queue_views[q.id]
            waits = fold.waits.get(q.id, [])
            recent = [w for at, w in waits if at >= hour_ago]
            within = sum(1 for _, w in waits if w <= q.target_wait_minutes * 60)
            queues.append(QueueStats(
                id=q.id, prefix=q.prefix, name=q.name, waiting=v.waiting,
                longest_wait_seconds=round(v.longest_wait_seconds, 1),
                avg_wait_last_hour_seconds=round(sum(recent) / len(recent), 1) if recent else None,
                called_last_hour=len(recent), estimated_wait_seconds=round(v.estimated_wait_seconds, 1),
                target_wait_minutes=q.target_wait_minutes,
                over_target=v.waiting > 0 and v.longest_wait_seconds > q.target_wait_minutes * 60,
                service_level=_pct(within, len(waits)), called_today=len(waits),
                max_waiting=q.max_waiting or hall.alerts.max_queue_length, issued_today=v.issued_today,
                windows=open_by_queue.get(q.id, []),
            ))

        totals = HallTotals(
            issued=sum(totals_by_status.values()), waiting=totals_by_status.get("waiting", 0),
            served=totals_by_status.get("finished", 0), no_shows=totals_by_status.get("no_show", 0),
            cancelled=totals_by_status.get("cancelled", 0), windows_total=len(hall.windows),
            windows_open=n_open, windows_paused=n_paused,
        )
        return DashboardPayload(
            hall=hall.id, hall_name=hall.name, at=now, service_day=day, totals=totals, queues=queues,
            windows=windows, satisfaction=satisfaction, devices=devices, hourly=self._hourly(fold, now),
            satisfaction_by_window=by_window, open_alerts=open_alerts,
        )

    @staticmethod
    def _hourly(fold: DayFold, now: dt.datetime) -> list[HourPoint]:
        """Hours from opening (08:00 or the first ticket) to closing (18:00, now, or the last event)."""
        hours = set(fold.arrivals_by_hour) | set(fold.called_by_hour) | set(fold.served_by_hour)
        now_hour = now.astimezone(fold.tz).hour if now.astimezone(fold.tz).date() == fold.day else 23
        first, last = min([8, *hours]), max([17, now_hour, *hours])
        out = []
        for h in range(first, last + 1):
            called = fold.called_by_hour.get(h, 0)
            out.append(HourPoint(
                hour=h, arrivals=fold.arrivals_by_hour.get(h, 0), called=called,
                served=fold.served_by_hour.get(h, 0),
                avg_wait_seconds=round(fold.wait_total_by_hour[h] / called, 1) if called else None,
            ))
        return out

    @staticmethod
    def _satisfaction(s: Session, hall: Hall, day: dt.date) -> tuple[SatisfactionStats, list[WindowSatisfaction]]:
        try:
            from .evaluation_models import Evaluation, FollowUpCase
        except ImportError:  # evaluations not installed in this build
            return SatisfactionStats(available=False), []
        start, end = day_bounds(day, hall.tz)
        E = Evaluation
        rows = s.execute(
            select(E.window, E.grade, func.count()).where(
                E.hall_id == hall.id, E.evaluated_at >= start, E.evaluated_at < end, E.grade.is_not(None))
            .group_by(E.window, E.grade)).all()
        per: dict[str, list[int]] = {}  # window -> [rated, satisfied, bad]
        for window, grade, n in rows:
            c = per.setdefault(window, [0, 0, 0])
            c[0] += n
            c[1] += n if grade in SATISFIED_GRADES else 0
            c[2] += n if grade in BAD_GRADES else 0
        rated, satisfied, bad = (sum(c[i] for c in per.values()) for i in range(3))
        F = FollowUpCase
        open_cases = s.scalar(select(func.count()).select_from(F).where(F.hall_id == hall.id, F.status == "open")) or 0
        overdue = s.scalar(select(func.count()).select_from(F).where(
            F.hall_id == hall.id, F.status == "open", F.deadline < day)) or 0
        names = {w.number: w.name or f"{w.number}号窗口" for w in hall.windows}
        by_window = [
            WindowSatisfaction(window=w, name=names.get(w, f"{w}号窗口"), rated=c[0], satisfied=c[1], bad=c[2],
                               rate=_pct(c[1], c[0]))
            for w, c in sorted(per.items(), key=lambda kv: (len(kv[0]), kv[0]))
        ]
        return SatisfactionStats(available=True, rated=rated, satisfied=satisfied, bad=bad,
                                 rate=_pct(satisfied, rated), open_cases=open_cases, overdue_cases=overdue), by_window

    @staticmethod
    def _devices(s: Session, hall: Hall, now: dt.datetime) -> DeviceHealth:
        try:
            from .device_status import STALE_AFTER, STATE_LABELS
            from .device_status_models import DeviceStatus
        except ImportError:
            return DeviceHealth(available=False)
        rows = {r.device_id: r for r in s.scalars(select(DeviceStatus).where(DeviceStatus.hall_id == hall.id))}
        health = DeviceHealth(available=True, total=len(hall.devices))
        counts = {"online": 0, "degraded": 0, "offline": 0, "unknown": 0}
        for d in hall.devices:
            row = rows.get(d.id)
            state = row.state if row is not None else "unknown"
            detail = row.detail if row is not None else None
            if row is not None and state != "offline" and now - row.reported_at > STALE_AFTER:
                state, detail = "offline", f"超过{int(STALE_AFTER.total_seconds() // 60)}分钟未上报状态"
            counts[state] = counts.get(state, 0) + 1
            if state in ("offline", "degraded"):
                health.faults.append(DeviceFault(device=d.id, kind=d.kind, window=d.window, state=state,
                                                 state_label=STATE_LABELS.get(state, state), detail=detail))
        health.online, health.degraded, health.offline, health.unknown = (
            counts["online"], counts["degraded"], counts["offline"], counts["unknown"])
        return health

    @staticmethod
    def _open_alerts(s: Session, hall: Hall) -> int:
        from .alert_models import Alert

        return s.scalar(select(func.count()).select_from(Alert).where(
            Alert.hall_id == hall.id, Alert.closed_at.is_(None))) or 0

"""Alerts for hall managers: rules, storage, live push.

Rules (thresholds from the hall config):

- ``wait_over_target`` per queue: the longest current wait exceeds the queue's ``target_wait_minutes``
  (critical beyond twice the target).
- ``queue_too_long`` per queue: more tickets waiting than ``max_waiting`` (or the hall's
  ``alerts.max_queue_length``).
- ``pause_too_long`` per window: paused longer than ``alerts.max_pause_minutes``.
- ``device_fault`` per device: reported offline or degraded, or silent for too long.
- ``bad_review`` per evaluation: a 差评 (grade 1 or 2) today; stays open until its follow-up case closes.
- ``followup_overdue`` per follow-up case: still open after its deadline.

Every rule is a *condition*: while it holds there is exactly one open alert for it, and the alert
closes when it clears. Several server processes check the same hall; a unique ``(hall, dedupe_key)``
makes opening idempotent and ``UPDATE ... WHERE closed_at IS NULL`` makes closing so, and only the
process whose write took effect emits the Socket.IO event ``alert`` to the managers' room.

The rules are checked every ``alerts.check_seconds`` by one background thread per process, and soon
after any queue event committed in this process.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import models as m
from .alert_models import Alert
from .config import Hall
from .errors import NotFound
from .events import Outbox
from .offload import pause
from .rules import numbering
from .service import QueueService
from .stats import BAD_GRADES, day_bounds, waiting_by_queue

log = logging.getLogger(__name__)
COALESCE_SECONDS = 1.0  # at most one check per hall per second: alerts are about minutes of waiting

AlertKind = Literal["wait_over_target", "queue_too_long", "pause_too_long", "device_fault", "bad_review",
                    "followup_overdue"]
KIND_LABELS: dict[str, str] = {
    "wait_over_target": "等候超时", "queue_too_long": "排队过长", "pause_too_long": "暂停过久",
    "device_fault": "设备故障", "bad_review": "差评", "followup_overdue": "整改逾期",
}
ONE_OFF = frozenset({"bad_review"})  # keep their dedupe key when closed: never raised twice


class AlertView(BaseModel):
    id: int
    hall: str
    kind: AlertKind
    kind_label: str
    subject: str
    level: Literal["warning", "critical"]
    message: str
    value: float | None = None
    threshold: float | None = None
    data: dict[str, Any] = {}
    status: Literal["open", "closed"]
    opened_at: dt.datetime
    closed_at: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None  # username
    acknowledged_by_name: str | None = None


class AlertEvent(BaseModel):
    """Payload of the Socket.IO event ``alert``."""

    hall: str
    action: Literal["opened", "closed", "acknowledged"]
    alert: AlertView


@dataclass(frozen=True)
class Condition:
    kind: str
    subject: str
    level: str
    message: str
    value: float | None = None
    threshold: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


def view(a: Alert, names: dict[str, str] | None = None) -> AlertView:
    return AlertView(
        id=a.id, hall=a.hall_id, kind=a.kind, kind_label=KIND_LABELS.get(a.kind, a.kind), subject=a.subject,  # type: ignore[arg-type]
        level=a.level, message=a.message, value=a.value, threshold=a.threshold, data=a.data or {},  # type: ignore[arg-type]
        status="closed" if a.closed_at else "open", opened_at=a.opened_at, closed_at=a.closed_at,
        acknowledged_at=a.acknowledged_at, acknowledged_by=a.acknowledged_by,
        acknowledged_by_name=(names or {}).get(a.acknowledged_by, a.acknowledged_by) if a.acknowledged_by else None,
    )


def views(s: Any, rows: list[Alert]) -> list[AlertView]:
    """Views of alerts with the names of the managers who acknowledged them (one query)."""
    who = {a.acknowledged_by for a in rows if a.acknowledged_by}
    names = dict(s.execute(select(m.User.username, m.User.name).where(m.User.username.in_(who))).all()) if who else {}
    return [view(a, names) for a in rows]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f}" if seconds >= 60 else f"{seconds / 60:.1f}"


class AlertMonitor:
    def __init__(self, service: QueueService, emit: Callable[[str, dict[str, Any], str], None]) -> None:
        self.service = service
        self.emit = emit  # (event, data, room)
        self._wake = threading.Event()
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = False

    # ---- rules -----------------------------------------------------------------------------------
    def conditions(self, hall: Hall, now: dt.datetime) -> tuple[list[Condition], set[str]]:
        """The conditions that hold now, and the one-off alert keys whose cause is resolved."""
        out: list[Condition] = []
        resolved: set[str] = set()
        with self.service.db.read() as s:
            waiting = waiting_by_queue(s, hall, now)
            for q in hall.queues:
                n, longest = waiting.get(q.id, (0, 0.0))
                target = q.target_wait_minutes * 60
                if n and longest > target:
                    out.append(Condition(
                        "wait_over_target", q.id, "critical" if longest > 2 * target else "warning",
                        f"{q.name}（{q.prefix}）最长等候已达{_minutes(longest)}分钟，超过目标{q.target_wait_minutes:g}分钟",
                        round(longest / 60, 2), q.target_wait_minutes, {"queue": q.id, "waiting": n}))
                limit = q.max_waiting or hall.alerts.max_queue_length
                if n > limit:
                    out.append(Condition(
                        "queue_too_long", q.id, "critical" if n > 2 * limit else "warning",
                        f"{q.name}（{q.prefix}）等候{n}人，超过{limit}人", n, limit, {"queue": q.id}))
            pause()  # several short reads: other requests run between them (see offload.pause)
            max_pause = hall.alerts.max_pause_minutes * 60
            for ws in s.scalars(select(m.WindowState).where(
                    m.WindowState.hall_id == hall.id, m.WindowState.paused.is_(True), m.WindowState.clerk.is_not(None))):
                if ws.paused_at is None:
                    continue
                paused = (now - ws.paused_at).total_seconds()
                if paused > max_pause:
                    try:
                        name = hall.window(ws.number).name or f"{ws.number}号窗口"
                    except KeyError:
                        continue
                    out.append(Condition(
                        "pause_too_long", ws.number, "warning",
                        f"{name}暂停已{_minutes(paused)}分钟（原因：{ws.pause_reason or '未填写'}），超过{hall.alerts.max_pause_minutes:g}分钟",
                        round(paused / 60, 2), hall.alerts.max_pause_minutes, {"window": ws.number, "reason": ws.pause_reason}))
            pause()
            out += self._device_conditions(s, hall, now)
            pause()
            more, resolved = self._evaluation_conditions(s, hall, now)
            out += more
        return out, resolved

    @staticmethod
    def _device_conditions(s: Any, hall: Hall, now: dt.datetime) -> list[Condition]:
        try:
            from .device_status import STALE_AFTER
            from .device_status_models import DeviceStatus
        except ImportError:
            return []
        kinds = {"kiosk": "取号机", "caller": "呼叫器", "evalpad": "评价器", "screen": "综合屏", "gateway": "网关",
                 "led": "窗口屏", "printer": "打印机", "reader": "读卡器"}
        configured = {d.id: d for d in hall.devices}
        out = []
        for r in s.scalars(select(DeviceStatus).where(DeviceStatus.hall_id == hall.id)):
            d = configured.get(r.device_id)
            if d is None:
                continue
            where = f"{d.window}号窗口" if d.window else ""
            label = f"{where}{kinds.get(d.kind, d.kind)} {d.id}"
            if r.state == "offline":
                out.append(Condition("device_fault", d.id, "critical", f"{label}离线{('：' + r.detail) if r.detail else ''}",
                                     data={"device": d.id, "kind": d.kind, "window": d.window, "state": r.state}))
            elif r.state == "degraded":
                out.append(Condition("device_fault", d.id, "warning", f"{label}故障{('：' + r.detail) if r.detail else ''}",
                                     data={"device": d.id, "kind": d.kind, "window": d.window, "state": r.state}))
            elif now - r.reported_at > STALE_AFTER:
                out.append(Condition("device_fault", d.id, "warning",
                                     f"{label}超过{int(STALE_AFTER.total_seconds() // 60)}分钟未上报状态",
                                     data={"device": d.id, "kind": d.kind, "window": d.window, "state": "stale"}))
        return out

    @staticmethod
    def _evaluation_conditions(s: Any, hall: Hall, now: dt.datetime) -> tuple[list[Condition], set[str]]:
        try:
            from .evaluation_models import Evaluation, FollowUpCase
        except ImportError:
            return [], set()
        day = numbering.service_day(now, hall.tz)
        start, _ = day_bounds(day, hall.tz)
        grades = {1: "非常不满意", 2: "不满意"}
        out = []
        rows = s.execute(
            select(Evaluation, m.Ticket.display, FollowUpCase.status)
            .join(m.Ticket, m.Ticket.id == Evaluation.ticket_id)
            .outerjoin(FollowUpCase, FollowUpCase.evaluation_id == Evaluation.id)
            .where(Evaluation.hall_id == hall.id, Evaluation.evaluated_at >= start,
                   Evaluation.grade.in_(BAD_GRADES))).all()
        for ev, number, case_status in rows:
            if case_status == "closed":
                continue
            comment = f"：“{ev.comment[:40]}”" if ev.comment else ""
            out.append(Condition(
                "bad_review", str(ev.id), "critical",
                f"{ev.window}号窗口收到差评（{grades.get(ev.grade, ev.grade)}），票号{number}{comment}",
                ev.grade, None, {"evaluation": ev.id, "window": ev.window, "ticket": number, "grade": ev.grade}))
        # open 差评 alerts whose follow-up case has closed since
        open_subjects = list(s.scalars(select(Alert.subject).where(
            Alert.hall_id == hall.id, Alert.kind == "bad_review", Alert.closed_at.is_(None))))
        resolved: set[str] = set()
        if open_subjects:
            ids = [int(x) for x in open_subjects if x.isdigit()]
            closed = s.scalars(select(FollowUpCase.evaluation_id).where(
                FollowUpCase.evaluation_id.in_(ids), FollowUpCase.status == "closed"))
            resolved = {f"bad_review:{i}" for i in closed}
        for case in s.scalars(select(FollowUpCase).where(
                FollowUpCase.hall_id == hall.id, FollowUpCase.status == "open", FollowUpCase.deadline < day)):
            late = (day - case.deadline).days
            out.append(Condition(
                "followup_overdue", str(case.id), "warning",
                f"{case.window}号窗口差评整改已逾期{late}天（期限{case.deadline:%m月%d日}）",
                late, None, {"case": case.id, "window": case.window, "deadline": case.deadline.isoformat()}))
        return out, resolved

    # ---- applying ------------------------------------------------------------------------------
    def check(self, hall_id: str) -> list[AlertEvent]:
        """Evaluate the hall's rules, open and close alerts, emit what changed. Returns the events."""
        hall = self.service.hall(hall_id)
        now = self.service.clock()
        conds, resolved = self.conditions(hall, now)
        current = {c.key: c for c in conds}
        with self.service.db.read() as s:
            open_rows = {a.dedupe_key or f"#{a.id}": a for a in s.scalars(
                select(Alert).where(Alert.hall_id == hall.id, Alert.closed_at.is_(None)))}
            known_one_off = set()
            one_off_keys = [c.key for c in conds if c.kind in ONE_OFF]
            if one_off_keys:
                known_one_off = set(s.scalars(select(Alert.dedupe_key).where(
                    Alert.hall_id == hall.id, Alert.dedupe_key.in_(one_off_keys))))
        to_open = [c for k, c in current.items() if k not in open_rows and k not in known_one_off]
        to_close = [a for k, a in open_rows.items()
                    if (a.kind not in ONE_OFF and k not in current) or (a.kind in ONE_OFF and k in resolved)]
        if not to_open and not to_close:
            return []
        events: list[AlertEvent] = []
        insert = postgresql.insert if self.service.db.is_postgres else sqlite.insert
        with self.service.db.write() as s:
            for c in to_open:
                stmt = insert(Alert).values(
                    hall_id=hall.id, kind=c.kind, subject=c.subject, dedupe_key=c.key, level=c.level,
                    message=c.message, value=c.value, threshold=c.threshold, data=c.data, opened_at=now,
                ).on_conflict_do_nothing(index_elements=["hall_id", "dedupe_key"]).returning(Alert.id)
                new_id = s.execute(stmt).scalar()
                if new_id is not None:  # another process may have opened it first
                    a = s.get(Alert, new_id)
                    assert a is not None
                    events.append(AlertEvent(hall=hall.id, action="opened", alert=view(a)))
                    log.info("%s: alert %s opened: %s", hall.id, c.key, c.message)
            for a in to_close:
                values: dict[str, Any] = {"closed_at": now}
                if a.kind not in ONE_OFF:
                    values["dedupe_key"] = None
                done = s.execute(update(Alert).where(Alert.id == a.id, Alert.closed_at.is_(None)).values(**values)
                                 .execution_options(synchronize_session=False)).rowcount
                if done:
                    row = s.get(Alert, a.id, populate_existing=True)
                    assert row is not None
                    events.append(AlertEvent(hall=hall.id, action="closed", alert=views(s, [row])[0]))
                    log.info("%s: alert %s closed", hall.id, a.dedupe_key or a.id)
        for ev in events:  # after the commit
            self._emit(ev)
        return events

    def _emit(self, ev: AlertEvent) -> None:
        try:
            self.emit("alert", ev.model_dump(mode="json"), f"hall:{ev.hall}:role:manager")
        except Exception:
            log.exception("could not publish alert %s", ev.alert.id)

    # ---- reading and acknowledging ---------------------------------------------------------------
    def list(self, hall_id: str, *, include_closed: bool = True, limit: int = 200) -> list[AlertView]:
        """Open alerts, then today's closed ones, newest first."""
        hall = self.service.hall(hall_id)
        now = self.service.clock()
        start, _ = day_bounds(numbering.service_day(now, hall.tz), hall.tz)
        with self.service.db.read() as s:
            rows = list(s.scalars(select(Alert).where(Alert.hall_id == hall.id, Alert.closed_at.is_(None))
                                  .order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(limit)))
            if include_closed and len(rows) < limit:
                rows += s.scalars(select(Alert).where(Alert.hall_id == hall.id, Alert.closed_at.is_not(None),
                                                      Alert.opened_at >= start)
                                  .order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(limit - len(rows)))
            return views(s, rows)

    def acknowledge(self, hall_id: str, alert_id: int, by: str) -> AlertView:
        hall = self.service.hall(hall_id)
        now = self.service.clock()
        with self.service.db.write() as s:
            a = s.get(Alert, alert_id, with_for_update=True)
            if a is None or a.hall_id != hall.id:
                raise NotFound(f"没有这条告警 (no alert {alert_id} in this hall)", code="unknown_alert")
            changed = a.acknowledged_at is None
            if changed:
                a.acknowledged_at, a.acknowledged_by = now, by
            s.flush()
            result = views(s, [a])[0]
        if changed:
            self._emit(AlertEvent(hall=hall.id, action="acknowledged", alert=result))
        return result

    # ---- running in the server -----------------------------------------------------------------
    def poke(self, outbox: Outbox) -> None:
        """A queue event committed: check its halls soon (debounced by the loop)."""
        if outbox.touched_halls:
            with self._dirty_lock:
                self._dirty |= outbox.touched_halls
            self._wake.set()

    def start(self) -> None:
        """Start the background checks (once; cheap to call again)."""
        if self._thread is not None:
            return
        with self._dirty_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="alert-monitor", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()

    def _loop(self) -> None:
        halls = self.service.config.halls
        due = {h.id: 0.0 for h in halls}
        while not self._stop and not self.service.db.closed:
            now = time.monotonic()
            with self._dirty_lock:
                dirty, self._dirty = self._dirty, set()
            for h in halls:
                if h.id in dirty or due[h.id] <= now:
                    try:
                        self.check(h.id)
                    except Exception:  # a database hiccup must not stop the monitor
                        log.exception("alert check failed for %s", h.id)
                    due[h.id] = time.monotonic() + h.alerts.check_seconds
            wait = max(0.2, min(due.values()) - time.monotonic())
            self._wake.wait(wait)
            self._wake.clear()
            time.sleep(COALESCE_SECONDS)  # a burst of events, or a busy hall's stream of them: one check

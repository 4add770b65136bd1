"""Daily and monthly figures per hall, queue, window and clerk, computed from the raw rows only:
``ticket_events`` (append-only history), ``window_log`` (sign-in/out, pauses), ``evaluations`` and
``followup_cases``. :func:`compute` is pure; :func:`load` reads the rows of one period.

Definitions (each figure is counted in the period in which its event happened):

- issued: ``issued`` events (hall and queue rows only: a window does not issue).
- served: services completed at a window: ``finished`` events plus ``transferred`` events that
  sent a ticket on from a window (a 受理 service handed to 出件 is a service of the 受理 window).
- finished / instant: ``finished`` events / those with outcome ``instant``; 即办件 share = instant / finished.
- no-shows: ``no_show`` events; cancelled: ``cancelled`` and ``expired`` events.
- wait: from the moment a ticket started waiting for this call (issued, transferred on, or
  reactivated) to its ``called`` event; counted at the call, for the calling window and its clerk.
  An appointment checked in before its slot waits from the slot (``estimate.waiting_since``).
- handling: from the ``called`` event to the end of that service (finished or transferred on).
- service level: share of calls whose wait was within the queue's ``target_wait_minutes``.
- p90: nearest rank (the ceil(0.9 n)-th smallest value).
- clerk: whoever was signed in at the window at that moment (from ``window_log``).
- satisfaction: evaluations requested in the period; rate = (非常满意 + 满意) / rated; unrated =
  requests past their answer time without a grade (still-open requests are neither).
- bad reviews: 差评 (grades 1-2); followed up = a call-back is recorded; closed = case closed.
- pause time: ``pause`` to ``resume`` (or sign-out), clipped to the period and to "now".
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

from .config import Hall
from .offload import pause
from .rules import estimate
from .rules import evaluation as erules

Level = Literal["hall", "day", "queue", "window", "clerk"]
YIELD_EVERY = 2000  # rows between yields to other requests while a report is read and computed
LEVEL_LABELS = {"hall": "全厅", "day": "日", "queue": "队列", "window": "窗口", "clerk": "工作人员"}


@dataclass(frozen=True)
class EventRow:
    id: int
    ticket_id: int
    kind: str
    at: dt.datetime
    queue_id: str
    window: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class WindowLogRow:
    number: str
    kind: str  # sign_in | sign_out | pause | resume
    at: dt.datetime
    clerk: str | None


@dataclass(frozen=True)
class EvaluationRow:
    queue_id: str
    window: str
    clerk: str | None
    grade: int | None
    requested_at: dt.datetime
    channel: str
    callback_at: dt.datetime | None = None
    case_closed: bool = False


@dataclass
class Figures:
    issued: int | None = 0
    served: int = 0
    finished: int = 0
    instant: int = 0
    no_shows: int = 0
    cancelled: int | None = 0
    calls: int = 0
    within_target: int = 0
    waits: list[float] = field(default_factory=list, repr=False)
    handlings: list[float] = field(default_factory=list, repr=False)
    rated: int = 0
    good: int = 0
    mid: int = 0
    bad: int = 0
    unrated: int = 0
    followed_up: int = 0
    closed_cases: int = 0
    pause_seconds: float | None = 0.0


COLUMNS: list[tuple[str, str]] = [
    ("level_label", "维度"), ("key", "编号"), ("name", "名称"),
    ("issued", "取号数"), ("served", "服务人次"), ("finished", "办结数"), ("no_shows", "过号数"),
    ("instant_share", "即办件占比"), ("wait_mean_min", "平均等候(分)"), ("wait_p90_min", "P90等候(分)"),
    ("handle_mean_min", "平均办理(分)"), ("handle_p90_min", "P90办理(分)"), ("service_level", "服务达标率"),
    ("rated", "评价数"), ("good", "好评"), ("mid", "中评"), ("bad", "差评"), ("unrated", "未评价"),
    ("satisfaction_rate", "满意率"), ("followup_rate", "差评回访率"), ("closed_cases", "整改办结"),
    ("pause_min", "暂停时长(分)"),
]


@dataclass(frozen=True)
class ReportRow:
    level: Level
    key: str
    name: str
    issued: int | None
    served: int
    finished: int
    instant: int
    no_shows: int
    cancelled: int | None
    instant_share: float | None
    wait_mean_min: float | None
    wait_p90_min: float | None
    handle_mean_min: float | None
    handle_p90_min: float | None
    service_level: float | None
    rated: int
    good: int
    mid: int
    bad: int
    unrated: int
    satisfaction_rate: float | None
    followed_up: int
    followup_rate: float | None
    closed_cases: int
    pause_min: float | None

    @property
    def level_label(self) -> str:
        return LEVEL_LABELS[self.level]

    def as_dict(self) -> dict[str, Any]:
        return {"level_label": self.level_label, **asdict(self)}


@dataclass(frozen=True)
class Report:
    hall: str
    hall_name: str
    timezone: str
    kind: Literal["daily", "monthly"]
    period: str  # "2026-11-20" or "2026-11"
    start: dt.datetime
    end: dt.datetime
    generated_at: dt.datetime
    rows: list[ReportRow]

    def row(self, level: Level, key: str) -> ReportRow | None:
        for r in self.rows:
            if r.level == level and r.key == key:
                return r
        return None


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def period_bounds(hall: Hall, kind: Literal["daily", "monthly"], period: str) -> tuple[dt.datetime, dt.datetime]:
    """UTC [start, end) of a local day ``YYYY-MM-DD`` or month ``YYYY-MM`` in the hall's time zone."""
    if kind == "daily":
        day = dt.date.fromisoformat(period)
        first, nxt = day, day + dt.timedelta(days=1)
    else:
        y, mth = (int(x) for x in period.split("-"))
        first = dt.date(y, mth, 1)
        nxt = dt.date(y + (mth == 12), mth % 12 + 1, 1)
    tz = hall.tz
    return (dt.datetime.combine(first, dt.time(0), tz).astimezone(dt.timezone.utc),
            dt.datetime.combine(nxt, dt.time(0), tz).astimezone(dt.timezone.utc))


class _ClerkIndex:
    """Who was signed in at a window at a moment, from window_log."""

    def __init__(self, log: Iterable[WindowLogRow]) -> None:
        self._at: dict[str, list[dt.datetime]] = defaultdict(list)
        self._who: dict[str, list[str | None]] = defaultdict(list)
        for r in sorted(log, key=lambda r: r.at):
            self._at[r.number].append(r.at)
            self._who[r.number].append(None if r.kind == "sign_out" else r.clerk)

    def at(self, window: str | None, when: dt.datetime) -> str | None:
        if window is None or window not in self._at:
            return None
        i = bisect.bisect_right(self._at[window], when) - 1
        return self._who[window][i] if i >= 0 else None


def compute(
    hall: Hall, kind: Literal["daily", "monthly"], period: str, *,
    events: Iterable[EventRow], window_log: Iterable[WindowLogRow], evaluations: Iterable[EvaluationRow],
    now: dt.datetime, names: dict[str, str] | None = None,
) -> Report:
    start, end = period_bounds(hall, kind, period)
    names = names or {}
    tz = hall.tz
    log_rows = list(window_log)
    clerks = _ClerkIndex(log_rows)
    figs: dict[tuple[Level, str], Figures] = defaultdict(Figures)
    targets = {q.id: q.target_wait_minutes * 60 for q in hall.queues}

    def keys(queue: str | None, window: str | None, clerk: str | None, at: dt.datetime) -> list[tuple[Level, str]]:
        out: list[tuple[Level, str]] = [("hall", hall.id)]
        if kind == "monthly":
            out.append(("day", at.astimezone(tz).date().isoformat()))
        if queue:
            out.append(("queue", queue))
        if window:
            out.append(("window", window))
        if clerk:
            out.append(("clerk", clerk))
        return out

    def inside(at: dt.datetime) -> bool:
        return start <= at < end

    wait_start: dict[int, dt.datetime] = {}
    call: dict[int, tuple[dt.datetime, str | None, str, str | None]] = {}  # at, window, queue, clerk
    for i, ev in enumerate(sorted(events, key=lambda e: (e.at, e.id))):
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            pause()  # let calls through (see load)
        t = ev.ticket_id
        if ev.kind == "issued":
            wait_start[t] = estimate.waiting_since(ev.at, ev.data)
            if inside(ev.at):
                for k in keys(ev.queue_id, None, None, ev.at):
                    figs[k].issued = (figs[k].issued or 0) + 1
        elif ev.kind == "called":
            clerk = clerks.at(ev.window, ev.at)
            call[t] = (ev.at, ev.window, ev.queue_id, clerk)
            if inside(ev.at) and t in wait_start:
                wait = (ev.at - wait_start[t]).total_seconds()
                for k in keys(ev.queue_id, ev.window, clerk, ev.at):
                    f = figs[k]
                    f.calls += 1
                    f.waits.append(wait)
                    f.within_target += wait <= targets.get(ev.queue_id, math.inf)
        elif ev.kind in ("finished", "transferred"):
            c = call.pop(t, None)
            if ev.kind == "transferred":
                wait_start[t] = ev.at
            if c is None or not inside(ev.at):
                continue
            c_at, c_window, c_queue, c_clerk = c
            for k in keys(c_queue, c_window, c_clerk, ev.at):
                f = figs[k]
                f.served += 1
                f.handlings.append((ev.at - c_at).total_seconds())
                if ev.kind == "finished":
                    f.finished += 1
                    f.instant += ev.data.get("outcome") == "instant"
        elif ev.kind == "no_show":
            c = call.pop(t, None)
            if inside(ev.at):
                clerk = c[3] if c else clerks.at(ev.window, ev.at)
                for k in keys(ev.queue_id, ev.window, clerk, ev.at):
                    figs[k].no_shows += 1
        elif ev.kind == "reactivated":
            wait_start[t] = ev.at
        elif ev.kind in ("cancelled", "expired"):
            call.pop(t, None)
            if inside(ev.at):
                for k in keys(ev.queue_id, None, None, ev.at):
                    figs[k].cancelled = (figs[k].cancelled or 0) + 1

    # pauses, clipped to the period and to now
    horizon = min(end, now)
    open_pause: dict[str, tuple[dt.datetime, str | None]] = {}

    def add_pause(window: str, p_start: dt.datetime, p_end: dt.datetime, clerk: str | None) -> None:
        a, b = max(p_start, start), min(p_end, horizon)
        if b <= a:
            return
        for k in keys(None, window, clerk, a):
            figs[k].pause_seconds = (figs[k].pause_seconds or 0.0) + (b - a).total_seconds()

    for r in sorted(log_rows, key=lambda r: r.at):
        if r.kind == "pause":
            open_pause[r.number] = (r.at, r.clerk)
        elif r.kind in ("resume", "sign_out") and r.number in open_pause:
            p_at, p_clerk = open_pause.pop(r.number)
            add_pause(r.number, p_at, r.at, p_clerk)
    for number, (p_at, p_clerk) in open_pause.items():
        add_pause(number, p_at, horizon, p_clerk)

    answer_window = dt.timedelta(seconds=hall.evaluation.timeout_seconds + erules.LATE_GRACE_SECONDS)
    for e in evaluations:
        if not inside(e.requested_at):
            continue
        if e.grade is None and now <= e.requested_at + answer_window:
            continue  # still open: neither rated nor unrated yet
        for k in keys(e.queue_id, e.window, e.clerk, e.requested_at):
            f = figs[k]
            cls = erules.grade_class(e.grade)
            if cls == "unrated":
                f.unrated += 1
                continue
            f.rated += 1
            if cls == "good":
                f.good += 1
            elif cls == "mid":
                f.mid += 1
            else:
                f.bad += 1
                f.followed_up += e.callback_at is not None
                f.closed_cases += e.case_closed

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    def minutes(values: list[float], how: str) -> float | None:
        if not values:
            return None
        v = sum(values) / len(values) if how == "mean" else p90(values)
        return None if v is None else v / 60

    def row(level: Level, key: str, name: str, f: Figures) -> ReportRow:
        return ReportRow(
            level=level, key=key, name=name,
            issued=f.issued if level in ("hall", "day", "queue") else None,
            served=f.served, finished=f.finished, instant=f.instant, no_shows=f.no_shows,
            cancelled=f.cancelled if level in ("hall", "day", "queue") else None,
            instant_share=ratio(f.instant, f.finished),
            wait_mean_min=minutes(f.waits, "mean"), wait_p90_min=minutes(f.waits, "p90"),
            handle_mean_min=minutes(f.handlings, "mean"), handle_p90_min=minutes(f.handlings, "p90"),
            service_level=ratio(f.within_target, f.calls),
            rated=f.rated, good=f.good, mid=f.mid, bad=f.bad, unrated=f.unrated,
            satisfaction_rate=ratio(f.good, f.rated), followed_up=f.followed_up,
            followup_rate=ratio(f.followed_up, f.bad), closed_cases=f.closed_cases,
            pause_min=(f.pause_seconds or 0.0) / 60 if level in ("hall", "day", "window", "clerk") else None,
        )

    rows = [row("hall", hall.id, hall.name, figs[("hall", hall.id)])]
    if kind == "monthly":
        for (level, key) in sorted(k for k in figs if k[0] == "day"):
            rows.append(row("day", key, key, figs[(level, key)]))
    for q in hall.queues:
        rows.append(row("queue", q.id, q.name, figs[("queue", q.id)]))
    for w in hall.windows:
        if ("window", w.number) in figs:
            rows.append(row("window", w.number, w.name or f"{w.number}号窗口", figs[("window", w.number)]))
    for key in sorted(k[1] for k in figs if k[0] == "clerk"):
        rows.append(row("clerk", key, names.get(key, key), figs[("clerk", key)]))
    return Report(hall=hall.id, hall_name=hall.name, timezone=hall.timezone, kind=kind, period=period, start=start, end=end,
                  generated_at=now, rows=rows)


# ---- reading the rows of a period -------------------------------------------------------------------
def load(db: Any, hall: Hall, kind: Literal["daily", "monthly"], period: str, now: dt.datetime) -> Report:
    """Read the raw rows of the period from the database and :func:`compute` the report."""
    from sqlalchemy import func, select

    from . import models as m
    from .evaluation_models import Evaluation, FollowUpCase

    start, end = period_bounds(hall, kind, period)
    E, L = m.TicketEvent, m.WindowLog
    with db.read() as s:
        touched = select(E.ticket_id).where(E.hall_id == hall.id, E.at >= start, E.at < end).distinct()
        # a month of a county centre is ~10^5 events: plain rows (no ORM objects), read in parts with a
        # yield between them, so a report never holds up calls (under gevent nothing else runs until it does)
        events = []
        for part in s.execute(select(E.id, E.ticket_id, E.kind, E.at, E.queue_id, E.window, E.data)
                              .where(E.hall_id == hall.id, E.ticket_id.in_(touched), E.at < end)
                              .execution_options(yield_per=YIELD_EVERY)).partitions():
            events.extend(EventRow(r.id, r.ticket_id, r.kind, r.at, r.queue_id, r.window, r.data or {}) for r in part)
            pause()
        before = select(func.max(L.id)).where(L.hall_id == hall.id, L.at < start).group_by(L.number)
        log_rows = [WindowLogRow(r.number, r.kind, r.at, r.clerk) for r in s.scalars(
            select(L).where(L.hall_id == hall.id, ((L.at >= start) & (L.at < end)) | L.id.in_(before)))]
        evals = [EvaluationRow(e.queue_id, e.window, e.clerk, e.grade, e.requested_at, e.channel,
                               c.callback_at if c else None, bool(c and c.status == "closed"))
                 for e, c in s.execute(
                     select(Evaluation, FollowUpCase).outerjoin(FollowUpCase, FollowUpCase.evaluation_id == Evaluation.id)
                     .where(Evaluation.hall_id == hall.id, Evaluation.requested_at >= start,
                            Evaluation.requested_at < end)).all()]
        names = {u.username: u.name for u in s.scalars(select(m.User))}
    return compute(hall, kind, period, events=events, window_log=log_rows, evaluations=evals, now=now, names=names)


# ---- export -----------------------------------------------------------------------------------------
def _cell(value: Any, key: str) -> Any:
    if value is None:
        return ""
    if key in ("instant_share", "service_level", "satisfaction_rate", "followup_rate"):
        return round(value * 100, 1)
    if isinstance(value, float):
        return round(value, 1)
    return value


def table(report: Report) -> tuple[list[str], list[list[Any]]]:
    """Header (Chinese) and rows as shown in every export; rates in percent, times in minutes."""
    header = [label + (" %" if key in ("instant_share", "service_level", "satisfaction_rate", "followup_rate") else "")
              for key, label in COLUMNS]
    rows = []
    for r in report.rows:
        d = r.as_dict()
        rows.append([_cell(d[key], key) for key, _ in COLUMNS])
    return header, rows


def title(report: Report) -> str:
    what = "日报" if report.kind == "daily" else "月报"
    return f"{report.hall_name} 服务{what} {report.period}"


def to_csv(report: Report) -> bytes:
    """UTF-8 with a byte-order mark, so Excel on a Chinese Windows opens it correctly."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    header, rows = table(report)
    w.writerow(header)
    w.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(report: Report) -> bytes:
    import io

    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from zoneinfo import ZoneInfo

    wb = Workbook()
    ws = wb.active
    ws.title = "报表"
    header, rows = table(report)
    ws.append([title(report)])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([f"统计区间 {report.start.astimezone(ZoneInfo(report.timezone)):%Y-%m-%d %H:%M} 至 "
               f"{report.end.astimezone(ZoneInfo(report.timezone)):%Y-%m-%d %H:%M}；生成于 "
               f"{report.generated_at.astimezone(ZoneInfo(report.timezone)):%Y-%m-%d %H:%M}"])
    ws.append(header)
    for c in ws[3]:
        c.font = Font(bold=True)
        c.alignment = Alignment(wrap_text=True, horizontal="center")
    for r in rows:
        ws.append(r)
    for i, _ in enumerate(header, start=1):
        ws.column_dimensions[get_column_letter(i)].width = 14 if i > 3 else 12
    ws.freeze_panes = "D4"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


"""The queue engine: every change to tickets and windows goes through :class:`QueueService`.

Each public method runs in one database transaction and publishes its events only after the commit.
Concurrency rules (the same code on SQLite and PostgreSQL):

- Numbers: the per-queue-per-day counter row is incremented with an upsert in the issuing
  transaction; the row lock (PostgreSQL) or the database write lock (SQLite, ``BEGIN IMMEDIATE``)
  serialises issuers of one queue, a unique constraint backs it, and a rollback leaves no gap.
- Calls: the window's state row is locked first (one action per window at a time); a ticket is
  claimed with a conditional ``UPDATE ... WHERE status = 'waiting'`` on a row selected ``FOR UPDATE
  SKIP LOCKED``, so two windows never get the same ticket and never wait for each other.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence, TypeVar

from psycopg import ClientCursor
from psycopg.types.json import Json
from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    BigInteger,
    Date,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from . import models as m
from .batching import GroupCommit
from .config import Hall, HallConfig
from .config import Queue as QueueConfig
from .db import Database
from .errors import BadRequest, Conflict, NotFound
from .events import (
    Outbox,
    QueuesPayload,
    QueueView,
    SnapshotPayload,
    TicketEventPayload,
    TicketEventType,
    TicketView,
    WindowPayload,
)
from .offload import pause
from .pg_raw import RawStatement, driver_connection
from .pg_rows import UnnestInsert
from .publish_order import PublishOrder
from .rules import estimate, identity, numbering, routing
from .rules.states import (
    STATUS_LABELS,
    WINDOW_LABELS,
    Action,
    IllegalTransition,
    TicketStatus,
    next_status,
    window_status,
)

log = logging.getLogger(__name__)

Channel = Literal["kiosk", "guide", "appointment", "online"]
OUTCOMES = {"instant": "即办", "promised": "承诺", "returned": "退回"}
CANDIDATES_PER_CLASS = 4
_Model = TypeVar("_Model", bound=m.Base)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class _IssueStatements:
    tickets: object
    events: object


@dataclass(frozen=True)
class _IssueRequest:
    """An issue request checked against the configuration, waiting for its batch."""
    hall: Hall
    queue: QueueConfig
    row: dict[str, object]  # the ticket row but its number
    actor: str | None


@dataclass(frozen=True)
class IssuedTicket:
    ticket: TicketView
    hall: str
    people_ahead: int
    estimated_wait_seconds: float
    public_token: str
    person_masked: str | None
    service_day: dt.date
    replayed: bool  # true when the request id had already issued this ticket


class QueueService:
    def __init__(
        self,
        config: HallConfig,
        db: Database,
        secret: bytes,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        publish: Callable[[Outbox], None] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.secret = secret
        self.clock = clock
        self.publish = publish or (lambda outbox: None)
        self._order: PublishOrder[Outbox] = PublishOrder(lambda outbox: self.publish(outbox))
        self._rolled: dict[str, dt.date] = {}
        # estimate inputs change slowly; recomputing them on every ticket was a third of an issue's cost
        self._estimate_cache: dict[tuple[str, ...], tuple[float, object]] = {}
        self._statements: dict[object, object] = {}  # hot-path statements, built once (see _statement)
        self._issuer: GroupCommit[_IssueRequest, IssuedTicket] = GroupCommit(self._issue_batch)

    ESTIMATE_CACHE_SECONDS = 2.0

    CLERK_NAME_SECONDS = 30.0

    def _cached(self, key: tuple[str, ...], compute: Callable[[], object], seconds: float | None = None) -> object:
        hit = self._estimate_cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        value = compute()
        self._estimate_cache[key] = (now + (self.ESTIMATE_CACHE_SECONDS if seconds is None else seconds), value)
        return value

    # ---- helpers -----------------------------------------------------------------------------
    def _statement(self, key: object, build: Callable[[], object]):  # type: ignore[no-untyped-def]
        """A hot-path statement, built once: building (and SQLAlchemy's hashing of) a statement can cost
        more than running it."""
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = build()
        return stmt

    def _raw(self, key: object, build: Callable[[], object]) -> RawStatement:
        """PostgreSQL: the hot-path statement ``_statement(key, build)``, run through psycopg directly
        (``pg_raw``), compiled once."""
        return self._statement(("raw", key), lambda: RawStatement(  # type: ignore[no-any-return]
            self._statement(key, build), self.db.engine.dialect))

    def _rows(self, s: Session, key: object, build: Callable[[], object],
              params: Mapping[str, object]) -> list[tuple[object, ...]]:
        """The rows of the hot-path statement ``_statement(key, build)`` as tuples in its columns'
        order: through psycopg directly on PostgreSQL, through SQLAlchemy on SQLite."""
        if self.db.is_postgres:
            return self._raw(key, build).rows(driver_connection(s), params)
        return [tuple(r) for r in s.connection().execute(self._statement(key, build), params)]  # type: ignore[call-overload]

    def hall(self, hall_id: str) -> Hall:
        try:
            return self.config.hall(hall_id)
        except KeyError:
            raise NotFound(f"未知的大厅 {hall_id!r} (unknown hall)", code="unknown_hall") from None

    def _window_cfg(self, hall: Hall, number: str):  # type: ignore[no-untyped-def]
        try:
            return hall.window(number)
        except KeyError:
            raise NotFound(f"未知的窗口 {number!r} (unknown window)", code="unknown_window") from None

    def _queue_cfg(self, hall: Hall, queue_id: str):  # type: ignore[no-untyped-def]
        try:
            return hall.queue(queue_id)
        except KeyError:
            known = ", ".join(q.id for q in hall.queues)
            raise NotFound(f"未知的队列 {queue_id!r} (unknown queue; known: {known})", code="unknown_queue") from None

    def _upsert(self):  # type: ignore[no-untyped-def]
        return postgresql.insert if self.db.is_postgres else sqlite.insert

    def _view(self, hall: Hall, t: m.Ticket) -> TicketView:
        return TicketView(
            id=t.id, number=t.display, queue=t.queue_id, queue_name=hall.queue(t.queue_id).name,
            status=t.status, status_label=STATUS_LABELS[TicketStatus(t.status)], stage=t.stage,
            priority=t.priority, priority_class=t.priority_class, window=t.window, recalls=t.recalls,
            issued_at=t.issued_at, called_at=t.called_at, started_at=t.started_at, finished_at=t.finished_at,
        )

    def _event(
        self, s: Session, out: Outbox, hall: Hall, t: m.Ticket, kind: TicketEventType, now: dt.datetime,
        actor: str | None, **data: object,
    ) -> None:
        rooms = [f"hall:{hall.id}"]
        if t.window:
            rooms.append(f"hall:{hall.id}:window:{t.window}")
        if t.target_window and t.target_window != t.window:
            rooms.append(f"hall:{hall.id}:window:{t.target_window}")
        payload = TicketEventPayload(type=kind, hall=hall.id, seq=0, at=now, window=t.window,
                                     ticket=self._view(hall, t))
        self._pending_event(s, {"ticket_id": t.id, "hall_id": hall.id, "kind": kind, "at": now,
                                "queue_id": t.queue_id, "window": t.window, "actor": actor, "data": data}, payload)
        out.add("ticket", hall.id, payload, rooms)

    @staticmethod
    def _pending_event(s: Session, row: dict[str, object], payload: TicketEventPayload) -> None:
        """Events are written at the end of their transaction (see ``_write_events``); the payload's
        ``seq`` is filled in then."""
        s.info.setdefault("events", []).append((row, payload))

    def _write_events(self, s: Session) -> object | None:
        """Insert the transaction's ticket events just before it commits, so that ``seq`` (the
        ticket_events id) follows commit order within a hall. On PostgreSQL ids come from a sequence at
        insert time, so two transactions could commit in the other order, and a client that keeps the
        highest seq it applied (or a snapshot's ``last_seq``) would skip the lower one: a call missing
        from a board. A per-hall transaction lock, held only for these inserts and the commit, rules
        that out (see ``_commit_events``). SQLite already has one writer at a time."""
        pending = s.info.pop("events", None)
        streaks = sorted(s.info.pop("streaks", ()))  # PostgreSQL: calls' priority streaks, see _after_call
        if not pending:
            for call in streaks:  # not expected: every call has its event
                s.connection().execute(self._BUMP_STREAK, self._streak_params(*call))
            return None
        s.flush()  # the tickets the events point at
        if self.db.is_postgres:
            return self._commit_events(s, pending, streaks)
        place = self._order.begin()  # under the database's one write lock, as the seq it orders
        try:
            ids = self._insert_many(s.connection(), self._issue_statements().events, [row for row, _ in pending])
        except BaseException:
            self._order.done(place, None)
            raise
        for (_, payload), seq in zip(pending, ids):
            payload.seq = seq
        place.seq = min(ids)
        return place

    _SEQ_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"

    def _event_sql(self, n: int) -> str:
        """One INSERT of n events. Its rows take their ids from the sequence in the order of the VALUES
        list (one statement, one scan of the list), so the sorted ids are the rows' ids. (A call's one
        or two events cost less this way than as arrays (``pg_rows``), which the server plans anew on
        every message and psycopg quotes element by element.)"""
        return self._statement(("events-sql", n), lambda: (  # type: ignore[no-any-return]
            'INSERT INTO ticket_events (ticket_id, hall_id, kind, at, queue_id, "window", actor, data) VALUES '
            + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * n) + " RETURNING id"))

    def _commit_events(self, s: Session, pending: list[tuple[dict[str, object], TicketEventPayload]],
                       streaks: list[tuple[str, str, bool]]) -> object:
        """PostgreSQL: the halls' sequence locks, the calls' priority streaks, the events' inserts and
        the COMMIT go to the server in one message, so a lock is held only while the server runs them
        and flushes the commit, never while this process waits for its turn to read an answer: before,
        it was held across three round trips, and every call and ticket of the hall queued behind it.
        A queue's streak row is locked only after its hall's sequence lock, which every call of the hall
        takes first: no wait on it beyond that lock's, and no deadlock. Commits of this process go out
        concurrently; ``PublishOrder`` puts their outboxes back in seq order. The session's own commit
        afterwards finds nothing left to do. An error in any statement rolls the whole message back."""
        raw = driver_connection(s)
        rows = [row for row, _ in pending]
        params = [v for r in rows for v in (r["ticket_id"], r["hall_id"], r["kind"], r["at"], r["queue_id"],
                                            r["window"], r["actor"], Json(r["data"] or {}))]
        keys = sorted({zlib.crc32(f"hall-seq:{r['hall_id']}".encode()) for r in rows})
        bumps = [v for hall_id, queue_id, priority in streaks
                 for v in (hall_id, queue_id, routing.apply_call(0, priority), priority)]
        updates = s.info.pop("deferred", [])  # the window's and tickets' rows, locked since they were read
        template = self._statement(("commit-message", len(keys), len(streaks), len(rows)), lambda: (
            "".join(f"{self._SEQ_LOCK_SQL}; " for _ in keys) + "".join(f"{self._STREAK_SQL}; " for _ in streaks)
            + self._event_sql(len(rows)) + "; COMMIT"))
        cur = ClientCursor(raw)
        # the template's text is the same for every call, so psycopg parses it once (its cache); the
        # updates, literal already, are put in front of it bound, and the message is sent as it is
        sql = "".join(f"{u}; " for u in updates) + cur.mogrify(template, [*keys, *bumps, *params])
        place = self._order.begin()
        try:
            # one simple-query message: the server runs the locks, the upserts, the insert and the
            # COMMIT back to back, without waiting for this process between them
            cur.execute(sql)
            for _ in range(len(updates) + len(keys) + len(streaks)):
                cur.nextset()
            ids = sorted(row[0] for row in cur.fetchall())
        except BaseException:
            self._order.done(place, None)
            raise
        for (_, payload), seq in zip(pending, ids, strict=True):
            payload.seq = seq
        place.seq = ids[0]
        return place

    def _run(self, fn: Callable[[Session, Outbox], object]) -> object:
        out = Outbox()
        place = None
        try:
            with self.db.write() as s:
                result = fn(s, out)
                self._save(s)
                place = self._write_events(s)
        except BaseException:
            if place is not None:
                self._order.done(place, None)
            raise
        if place is None:  # after the commit, never before
            self.publish(out)  # no ticket events: nothing to keep in order
        else:
            self._order.done(place, out)  # type: ignore[arg-type]
        return result

    # ---- service day -------------------------------------------------------------------------
    def _ensure_day(self, s: Session, out: Outbox, hall: Hall, now: dt.datetime) -> dt.date:
        day = numbering.service_day(now, hall.tz)
        if self._rolled.get(hall.id) == day:
            return day
        changed = s.execute(
            update(m.HallState).where(m.HallState.hall_id == hall.id, m.HallState.service_day < day)
            .values(service_day=day)
        ).rowcount
        if changed:
            self._close_old_day(s, out, hall, day, now)
        elif s.get(m.HallState, hall.id) is None:
            s.add(m.HallState(hall_id=hall.id, service_day=day))
            s.flush()
        self._rolled[hall.id] = day
        return day

    def _close_old_day(self, s: Session, out: Outbox, hall: Hall, day: dt.date, now: dt.datetime) -> None:
        if hall.midnight != "close":
            log.info("%s: new service day %s; waiting tickets carried over", hall.id, day)
            return
        stale = s.scalars(
            select(m.Ticket).where(m.Ticket.hall_id == hall.id, m.status_is(m.Ticket.status, TicketStatus.WAITING.value),
                                   m.Ticket.service_day < day).with_for_update()
        ).all()
        for t in stale:
            t.status = TicketStatus.EXPIRED.value
            t.closed_at = now
            self._event(s, out, hall, t, "expired", now, "system", reason="service day ended")
        s.flush()  # the caller may go on in Core statements, which see only flushed rows
        log.info("%s: new service day %s; %d waiting tickets closed", hall.id, day, len(stale))

    def rollover(self, hall_id: str) -> None:
        """Called periodically so midnight closes the day even when the hall is quiet."""
        hall = self.hall(hall_id)
        self._run(lambda s, out: self._ensure_day(s, out, hall, self.clock()))

    # ---- set-up ------------------------------------------------------------------------------
    def sync_state(self) -> None:
        """Create the rows that hold each configured window's and queue's state."""
        with self.db.write() as s:
            for hall in self.config.halls:
                have_w = set(s.scalars(select(m.WindowState.number).where(m.WindowState.hall_id == hall.id)))
                for w in hall.windows:
                    if w.number not in have_w:
                        s.add(m.WindowState(hall_id=hall.id, number=w.number))
                have_q = set(s.scalars(select(m.QueueState.queue_id).where(m.QueueState.hall_id == hall.id)))
                for q in hall.queues:
                    if q.id not in have_q:
                        s.add(m.QueueState(hall_id=hall.id, queue_id=q.id))
                if s.get(m.HallState, hall.id) is None:
                    s.add(m.HallState(hall_id=hall.id,
                                      service_day=numbering.service_day(self.clock(), hall.tz)))

    # ---- issuing -----------------------------------------------------------------------------
    def issue(
        self,
        hall_id: str,
        *,
        request_id: str,
        channel: Channel,
        queue: str | None = None,
        matter: str | None = None,
        bundle: str | None = None,
        id_number: str | None = None,
        priority_class: str | None = None,
        appointment_at: dt.datetime | None = None,
        note: str | None = None,
        actor: str | None = None,
    ) -> IssuedTicket:
        """Check the request here, in the caller's thread; numbering, limits and the insert happen in
        a group commit with whatever other issue requests arrive meanwhile (see ``_issue_batch``)."""
        hall = self.hall(hall_id)
        if sum(x is not None for x in (queue, matter, bundle)) != 1:
            raise BadRequest("请指定一个队列、事项或一件事 (give exactly one of queue, matter, bundle)")
        needs_identity = False
        if matter is not None:
            try:
                mcfg = hall.matter(matter)
            except KeyError:
                raise NotFound(f"未知的事项 {matter!r} (unknown matter)", code="unknown_matter") from None
            queue, needs_identity = mcfg.queue, mcfg.needs_identity
        elif bundle is not None:
            try:
                queue = hall.bundle(bundle).queue
            except KeyError:
                raise NotFound(f"未知的一件事 {bundle!r} (unknown bundle)", code="unknown_bundle") from None
        assert queue is not None
        qcfg = self._queue_cfg(hall, queue)
        now = self.clock()
        day = numbering.service_day(now, hall.tz)

        person_hash = person_masked = None
        if id_number:
            try:
                person_hash = identity.person_hash(id_number, self.secret)
                person_masked = identity.mask_id(id_number)
            except identity.InvalidIdNumber as exc:
                raise BadRequest(str(exc), code="invalid_id_number") from None
        elif needs_identity and channel not in ("appointment", "guide"):  # booked with it / staff checked it
            raise Conflict("该事项需要刷身份证取号 (this matter needs an ID card)", code="identity_required")

        prio = False
        if priority_class is not None:
            try:
                prio = hall.priority_class(priority_class).priority
            except KeyError:
                known = ", ".join(p.id for p in hall.priority_classes)
                raise BadRequest(f"未知的优先类别 {priority_class!r} (known: {known})",
                                 code="unknown_priority_class") from None
        elif id_number and identity.age_on(id_number, day) >= hall.elderly_age:
            if any(p.id == "elderly" for p in hall.priority_classes):
                priority_class, prio = "elderly", True

        place = now.timestamp()
        eligible_at = 0.0
        if channel == "appointment":
            if appointment_at is None:
                raise BadRequest("预约取号需要预约时段 (appointment_at is required)")
            slot = appointment_at.timestamp()
            early = hall.appointments.early_minutes * 60
            late = hall.appointments.late_minutes * 60
            if place < slot - early:
                raise Conflict(f"预约时段未到，请于{appointment_at.astimezone(hall.tz):%H:%M}前{hall.appointments.early_minutes}分钟内签到"
                               " (too early to check in)", code="appointment_too_early")
            if place > slot + late:
                if hall.appointments.late_policy == "refuse":
                    raise Conflict("已超过预约签到时间，请重新取号 (appointment missed)", code="appointment_missed")
            else:
                priority_class = priority_class or "appointment"
                prio = True
                place = slot
                eligible_at = slot
        elif hall.enforce_hours and qcfg.hours:
            periods = [(p.start, p.end) for p in qcfg.hours]
            if not numbering.within_hours(now, hall.tz, periods):
                hours = "、".join(f"{p.start:%H:%M}-{p.end:%H:%M}" for p in qcfg.hours)
                raise Conflict(f"{qcfg.name}不在取号时间，取号时间为{hours}", code="outside_hours")

        row = dict(
            hall_id=hall.id, queue_id=qcfg.id, origin_queue_id=qcfg.id, service_day=day,
            status=TicketStatus.WAITING.value, channel=channel, priority_class=priority_class, priority=prio,
            matter_id=matter, bundle_id=bundle, stage=qcfg.stage, place=place, eligible_at=eligible_at, recalls=0,
            person_hash=person_hash, person_masked=person_masked, request_id=request_id,
            public_token=secrets.token_urlsafe(18), note=note, issued_at=now, target_window=None, window=None,
        )
        return self._issuer.submit(_IssueRequest(hall, qcfg, row, actor))

    def _issue_batch(self, reqs: Sequence[_IssueRequest]) -> list[object]:
        """Issue a batch in one transaction: one counter upsert per queue, one insert of all tickets,
        one of all events, one people-ahead query, one commit. Each request still gets its own answer:
        a refusal (daily cap, per-person limit) is that request's alone, and a request id seen before,
        in the database or earlier in the batch, is answered with the ticket it issued."""
        try:
            return self._run(lambda s, out: self._issue_in(s, out, reqs))  # type: ignore[return-value]
        except IntegrityError as exc:
            # another process issued one of these request ids just now: one at a time, each retry
            # answered with the ticket the other process issued
            if len(reqs) > 1:
                return [o for r in reqs for o in self._issue_batch([r])]
            with self.db.read() as s:
                replayed = self._replays(s, reqs)
            return [replayed.get((reqs[0].hall.id, reqs[0].row["request_id"]), exc)]

    def _issue_in(self, s: Session, out: Outbox, reqs: Sequence[_IssueRequest]) -> list[object]:
        conn = s.connection()  # Core on the connection: no ORM bookkeeping on this path
        for r in reqs:
            self._ensure_day(s, out, r.hall, r.row["issued_at"])  # type: ignore[arg-type]
        outcomes: list[object] = [None] * len(reqs)
        replayed = self._replays(s, reqs)
        first: dict[tuple[str, object], int] = {}  # request id -> its first request in this batch
        fresh: list[int] = []
        for i, r in enumerate(reqs):
            key = (r.hall.id, r.row["request_id"])
            if key in replayed:
                outcomes[i] = replayed[key]
            elif key not in first:
                first[key] = i
                fresh.append(i)

        # refusals, in arrival order: the daily cap and per-person limits count the requests before
        T = m.Ticket
        groups = sorted({(r.hall.id, r.queue.id, r.row["service_day"]) for r in (reqs[i] for i in fresh)})
        last = self._count_up(conn, {g: 0 for g in groups if self.config.hall(g[0]).queue(g[1]).daily_cap is not None})
        people: dict[tuple[object, ...], dict[str, int]] = {}
        hashes = {reqs[i].row["person_hash"] for i in fresh} - {None}
        if hashes and self.db.is_postgres:
            # Another server process may be issuing to the same person right now: its batch and this one
            # take the person's lock (in one order: no deadlock) so each counts the other's tickets.
            # SQLite needs none: its writers are serialised by BEGIN IMMEDIATE across processes.
            for key in sorted({f"{reqs[i].hall.id}:{reqs[i].row['person_hash']}" for i in fresh
                               if reqs[i].row["person_hash"] is not None}):
                s.execute(self._PERSON_LOCK, {"k": zlib.crc32(key.encode()) - 2**31})
        if hashes:
            for h, p, d, q, n in s.execute(
                select(T.hall_id, T.person_hash, T.service_day, T.origin_queue_id, func.count())
                .where(T.hall_id.in_({r.hall.id for r in reqs}), T.person_hash.in_(hashes),
                       T.service_day.in_({r.row["service_day"] for r in reqs}),
                       T.status != TicketStatus.CANCELLED.value)
                .group_by(T.hall_id, T.person_hash, T.service_day, T.origin_queue_id)):
                people.setdefault((h, p, d), {})[q] = n
        accepted: dict[tuple[str, str, object], list[int]] = {g: [] for g in groups}
        for i in fresh:
            r = reqs[i]
            g = (r.hall.id, r.queue.id, r.row["service_day"])
            cap = r.queue.daily_cap
            if cap is not None and last[g] + len(accepted[g]) >= cap:
                outcomes[i] = Conflict(f"{r.queue.name}今日号源已取完（每日{cap}个），请改日再来",
                                       code="daily_cap_reached")
                continue
            if r.row["person_hash"] is not None:
                per_queue = people.setdefault((r.hall.id, r.row["person_hash"], r.row["service_day"]), {})
                refusal = self._person_refusal(r.hall, r.queue.id, per_queue)
                if refusal is not None:
                    outcomes[i] = refusal
                    continue
                per_queue[r.queue.id] = per_queue.get(r.queue.id, 0) + 1
            accepted[g].append(i)

        # numbers: gap-free because every number counted here is inserted in this same transaction
        rows: list[dict[str, object]] = []
        tops = self._count_up(conn, {g: len(accepted[g]) for g in groups if accepted[g]})
        for g, top in sorted(tops.items()):
            for number, i in enumerate(accepted[g], start=top - len(accepted[g]) + 1):
                r = reqs[i]
                rows.append({**r.row, "number": number, "display": numbering.format_number(r.queue.prefix, number)})
        if not rows:
            return self._copy_duplicates(reqs, first, outcomes)
        ids = self._insert_tickets(conn, rows)
        ahead = dict(conn.execute(self._ahead_many(), {"ids": ids}).all())
        for tid, row in zip(ids, rows):
            i = first[(row["hall_id"], row["request_id"])]
            r, now = reqs[i], row["issued_at"]
            view = TicketView(
                id=tid, number=row["display"], queue=r.queue.id, queue_name=r.queue.name,
                status=TicketStatus.WAITING.value, status_label=STATUS_LABELS[TicketStatus.WAITING],
                stage=r.queue.stage, priority=row["priority"], priority_class=row["priority_class"], window=None,
                recalls=0, issued_at=now,
            )
            payload = TicketEventPayload(type="issued", hall=r.hall.id, seq=0, at=now, window=None, ticket=view)
            self._pending_event(s, {"ticket_id": tid, "hall_id": r.hall.id, "kind": "issued", "at": now,
                                    "queue_id": r.queue.id, "window": None, "actor": r.actor,
                                    "data": self._issued_data(row)}, payload)
            out.add("ticket", r.hall.id, payload, [f"hall:{r.hall.id}"])
            n = ahead.get(tid, 0)
            outcomes[i] = IssuedTicket(
                ticket=view, hall=r.hall.id, people_ahead=n,
                estimated_wait_seconds=self._wait(s, r.hall, r.queue.id, row["service_day"], n),  # type: ignore[arg-type]
                public_token=row["public_token"], person_masked=row["person_masked"],  # type: ignore[arg-type]
                service_day=row["service_day"], replayed=False,  # type: ignore[arg-type]
            )
        return self._copy_duplicates(reqs, first, outcomes)

    @staticmethod
    def _issued_data(row: Mapping[str, object]) -> dict[str, object]:
        """The ``issued`` event's data: the channel, and for an appointment checked in before its slot
        the slot, from which its wait is measured (``estimate.waiting_since``)."""
        data: dict[str, object] = {"channel": row["channel"]}
        slot = float(row["eligible_at"] or 0.0)  # type: ignore[arg-type]
        if slot > row["issued_at"].timestamp():  # type: ignore[union-attr]
            data["wait_from"] = dt.datetime.fromtimestamp(slot, dt.timezone.utc).isoformat()
        return data

    @staticmethod
    def _copy_duplicates(reqs: Sequence[_IssueRequest], first: dict[tuple[str, object], int],
                         outcomes: list[object]) -> list[object]:
        """A request id sent twice in one batch (a double tap): the second gets the first's answer."""
        for i, r in enumerate(reqs):
            if outcomes[i] is None:
                o = outcomes[first[(r.hall.id, r.row["request_id"])]]
                outcomes[i] = dataclasses.replace(o, replayed=True) if isinstance(o, IssuedTicket) else o
        return outcomes

    # the two-key form: a key space of its own, apart from the one-key hall-seq locks of _write_events
    _PERSON_LOCK = text("SELECT pg_advisory_xact_lock(1, :k)")

    def _in_list(self, column, name: str, item_type: type):  # type: ignore[no-untyped-def]
        """``column IN (:name...)``. On PostgreSQL ``= ANY(:name)`` with one array parameter: an expanded
        list is a statement text per list length, rendered on every execution and prepared (and planned)
        once per length and connection; SQLite has no arrays."""
        if self.db.is_postgres:
            return column == any_(bindparam(name, type_=postgresql.ARRAY(item_type())))
        return column.in_(bindparam(name, expanding=True))

    def _known_requests(self):  # type: ignore[no-untyped-def]
        T = m.Ticket
        return self._statement("known-requests", lambda: select(T.id).where(
            self._in_list(T.hall_id, "halls", String), self._in_list(T.request_id, "requests", String)))

    def _replays(self, s: Session, reqs: Sequence[_IssueRequest]) -> dict[tuple[str, object], IssuedTicket]:
        """The tickets already issued for these request ids: a retry gets its ticket again, even if a
        limit is reached by now."""
        T = m.Ticket
        ids = s.connection().execute(self._known_requests(), {"halls": list({r.hall.id for r in reqs}),
                                                            "requests": list({r.row["request_id"] for r in reqs})})
        found = [s.get(T, tid) for tid in ids.scalars()]  # usually none: only retries are found
        out = {}
        for t in found:
            assert t is not None
            hall = self.hall(t.hall_id)
            ahead, wait = self._estimate_for(s, hall, t, self.clock())
            out[(t.hall_id, t.request_id)] = IssuedTicket(
                ticket=self._view(hall, t), hall=hall.id, people_ahead=ahead, estimated_wait_seconds=wait,
                public_token=t.public_token, person_masked=t.person_masked, service_day=t.service_day,
                replayed=True)
        return out

    def _count_up(self, conn: Connection, add: dict[tuple[str, str, object], int]) -> dict[tuple[str, str, object], int]:
        """Add to queues' day counters in one statement; their new values. Adding 0 creates and locks
        a counter row and reads it."""
        if not add:
            return {}
        params: dict[str, object] = {}
        for i, ((h, q, d), n) in enumerate(sorted(add.items())):
            params.update({f"h{i}": h, f"q{i}": q, f"d{i}": d, f"n{i}": n})
        rows = conn.execute(self._counter_upsert(len(add)), params)
        return {(r.hall_id, r.queue_id, r.service_day): r.last_number for r in rows}

    def _counter_upsert(self, n: int):  # type: ignore[no-untyped-def]
        """``INSERT .. ON CONFLICT DO UPDATE .. RETURNING`` for n counters, written out because SQLAlchemy
        cannot cache its own ON CONFLICT constructs (compiling one cost ~0.15 ms per batch, a tenth of a
        ticket's time); PostgreSQL and SQLite (>= 3.35) take the same text. Rows are locked in key order."""
        values = ", ".join(f"(:h{i}, :q{i}, :d{i}, :n{i})" for i in range(n))
        return self._statement(("counter", n), lambda: text(
            f"INSERT INTO counters (hall_id, queue_id, service_day, last_number) VALUES {values} "
            "ON CONFLICT (hall_id, queue_id, service_day) "
            "DO UPDATE SET last_number = counters.last_number + excluded.last_number "
            "RETURNING hall_id, queue_id, service_day, last_number"
        ).bindparams(*(bindparam(f"d{i}", type_=Date) for i in range(n))).columns(
            hall_id=String, queue_id=String, service_day=Date, last_number=Integer))

    def _issue_statements(self) -> "_IssueStatements":
        return self._statement("issue", self._build_issue_statements)  # type: ignore[no-any-return]

    def _build_issue_statements(self) -> "_IssueStatements":
        """SQLite's inserts of many rows (PostgreSQL's are ``pg_rows.UnnestInsert``)."""
        tickets, events = m.Ticket.__table__, m.TicketEvent.__table__
        return _IssueStatements(tickets=insert(tickets).returning(tickets.c.id),
                                events=insert(events).returning(events.c.id))

    def _insert_tickets(self, conn: Connection, rows: list[dict[str, object]]) -> list[int]:
        """The rows' ids, in the rows' order. PostgreSQL: one array per column (``pg_rows``); each id is
        matched to its row by the hall's request id, which is unique."""
        if not self.db.is_postgres:
            return self._insert_many(conn, self._issue_statements().tickets, rows)
        columns = tuple(rows[0])
        stmt = self._statement(("tickets-unnest", columns), lambda: UnnestInsert(
            m.Ticket.__table__, columns, returning=("id", "hall_id", "request_id")))
        got = {(h, r): tid for tid, h, r in conn.exec_driver_sql(stmt.sql, tuple(stmt.params(rows)))}
        return [got[(row["hall_id"], row["request_id"])] for row in rows]

    @staticmethod
    def _insert_many(conn: Connection, stmt: object, rows: list[dict[str, object]]) -> list[int]:
        """SQLite: insert rows in one statement and return their ids in the rows' order. SQLAlchemy
        would fall back to one statement per row to order them, but one INSERT ... VALUES assigns
        rowids in the order of its rows (the writer holds the database lock), so the sorted ids are the
        rows' ids."""
        return sorted(conn.execute(stmt, rows).scalars().all())  # type: ignore[call-overload]

    def _person_refusal(self, hall: Hall, queue_id: str, per_queue: dict[str, int]) -> Conflict | None:
        """Why one more ticket for this person would break the hall's per-person limits, if it would;
        ``per_queue`` counts the person's tickets of the day by queue."""
        lim = hall.person_limits
        if lim.per_queue_per_day is not None and per_queue.get(queue_id, 0) >= lim.per_queue_per_day:
            return Conflict(
                f"您今天在“{hall.queue(queue_id).name}”已取号{per_queue[queue_id]}次，已达每日上限{lim.per_queue_per_day}次；"
                "如有需要请到导服台咨询", code="person_limit_queue")
        total = sum(per_queue.values())
        if lim.per_hall_per_day is not None and total >= lim.per_hall_per_day:
            return Conflict(f"您今天在本大厅已取号{total}次，已达每日上限{lim.per_hall_per_day}次；如有需要请到导服台咨询",
                            code="person_limit_hall")
        return None

    # ---- estimates ---------------------------------------------------------------------------
    def _handling_seconds(self, s: Session, hall: Hall, queue_id: str, day: dt.date) -> float:
        """The mean handling time of the queue's last 20 finished tickets today (the queue's default
        before any), for the estimates; one statement built once (the live queue snapshot asks for
        every queue with waiting tickets)."""
        T = m.Ticket
        last_finished = self._statement("handling", lambda: select(T.called_at, T.finished_at).where(
            T.hall_id == bindparam("hall_id"), T.queue_id == bindparam("queue_id"), T.service_day == bindparam("day"),
            m.status_is(T.status, TicketStatus.FINISHED.value)).order_by(T.finished_at.desc()).limit(20))
        rows = s.connection().execute(last_finished, {"hall_id": hall.id, "queue_id": queue_id, "day": day}).all()
        samples = [(f - c).total_seconds() for c, f in rows if c and f]
        return estimate.mean_handling(samples, hall.queue(queue_id).default_handle_minutes * 60)

    def _window_shares(self, s: Session, hall: Hall) -> dict[str, float]:
        open_ws = s.scalars(
            select(m.WindowState).where(m.WindowState.hall_id == hall.id, m.WindowState.clerk.is_not(None),
                                        m.WindowState.paused.is_(False))
        ).all()
        counts: dict[str, list[int]] = {}
        for ws in open_ws:
            qs = self._served_queues(hall, ws)
            for q in qs:
                counts.setdefault(q, []).append(len(qs))
        return {q: estimate.window_share(c) for q, c in counts.items()}

    def _served_queues(self, hall: Hall, ws: m.WindowState) -> list[str]:
        return list(ws.queues_override) if ws.queues_override else hall.window_queues(ws.number)

    def _estimate_for(self, s: Session, hall: Hall, t: m.Ticket, now: dt.datetime) -> tuple[int, float]:
        if t.status != TicketStatus.WAITING.value:
            return 0, 0.0
        ahead = s.connection().execute(self._ahead_many(), {"ids": [t.id]}).one()[1]
        return ahead, self._wait(s, hall, t.queue_id, t.service_day, ahead)

    def _ahead_many(self):  # type: ignore[no-untyped-def]
        return self._statement("ahead-many", self._build_ahead_many)

    def _build_ahead_many(self):  # type: ignore[no-untyped-def]
        """(id, people ahead) of the tickets ``ids``: the waiting tickets of the same queue that will be
        called first. A priority ticket waits only behind earlier priority tickets, a normal one behind
        every priority ticket and the earlier normal ones. Each count is a range of ``ix_ticket_waiting_class``."""
        T, o = m.Ticket, aliased(m.Ticket)

        def waiting(*where: object):  # type: ignore[no-untyped-def]
            return (select(func.count()).where(o.hall_id == T.hall_id, o.queue_id == T.queue_id,
                                               m.status_is(o.status, TicketStatus.WAITING.value), *where)  # type: ignore[arg-type]
                    .correlate(T).scalar_subquery())

        before = and_(o.place <= T.place, or_(o.place < T.place, o.id < T.id))
        ahead = case((T.priority.is_(True), waiting(o.priority == true(), before)),
                     else_=waiting(o.priority == true()) + waiting(o.priority == false(), before))
        return select(T.id, ahead).where(self._in_list(T.id, "ids", BigInteger))

    def _wait(self, s: Session, hall: Hall, queue_id: str, day: dt.date, ahead: int) -> float:
        handling = self._cached(("handling", hall.id, queue_id, day.isoformat()),
                                lambda: self._handling_seconds(s, hall, queue_id, day))
        shares = self._cached(("shares", hall.id), lambda: self._window_shares(s, hall))
        return estimate.estimate_wait(ahead, handling, shares.get(queue_id, 0.0))  # type: ignore[arg-type,attr-defined]

    # ---- rows of the call cycle --------------------------------------------------------------
    # A window's state and its current ticket are read with Core statements (built once) into model
    # objects that never join the session: loading through the session, its identity map and the flush
    # cost several times what the statements do, on every call, start and finish. ``_run`` writes back
    # whatever the action changed in them (``_save``).
    @staticmethod
    def _model(cls: type[_Model], values: Mapping[str, object]) -> _Model:
        """A model object of a row read by Core, made without the declarative constructor, which fires
        an event per attribute (~100 µs a ticket, against ~4)."""
        obj = cls.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
        obj.__dict__.update(values)
        return obj  # type: ignore[no-any-return]

    @classmethod
    def _record(cls, s: Session, model: type[_Model], values: Mapping[str, object]) -> _Model:
        """A model object of a row read by Core: ``_save`` writes back the columns changed in it."""
        obj = cls._model(model, values)
        s.info.setdefault("tracked", []).append((obj, dict(values)))
        return obj

    @staticmethod
    def _saved(s: Session, obj: object, **values: object) -> None:
        """Columns of a tracked object that a statement has already written: set, and not written again."""
        for tracked, loaded in s.info.get("tracked", ()):
            if tracked is obj:
                loaded.update(values)
        for k, v in values.items():
            setattr(obj, k, v)

    def _save(self, s: Session) -> None:
        """Write back the changed columns of tracked objects. On PostgreSQL, when the transaction ends in
        the one message of ``_commit_events``, the updates go out in that message (``s.info["deferred"]``)."""
        tracked = s.info.pop("tracked", None)
        if not tracked:
            return
        if self.db.is_postgres and s.info.get("events"):
            # the updates go as literal SQL in the commit's own message
            raw = driver_connection(s)
            s.info["deferred"] = [
                self._raw(("save", table.name, tuple(changed)), lambda: update(table).where(
                    *(c == bindparam(f"pk_{c.name}") for c in table.primary_key)).values(
                    {k: bindparam(k, type_=table.c[k].type) for k in changed})).render(raw, {**changed, **keys})
                for table, changed, keys in self._changes(tracked)]
            return
        conn = s.connection()
        for table, changed, keys in self._changes(tracked):
            conn.execute(self._statement(f"save:{table.name}", lambda: update(table).where(
                *(c == bindparam(f"pk_{c.name}") for c in table.primary_key))), {**changed, **keys})

    @staticmethod
    def _changes(tracked: list[tuple[object, dict[str, object]]],
                 ) -> Iterator[tuple[Any, dict[str, object], dict[str, object]]]:
        """Each tracked object with changed columns: its table, the changed values, its primary key
        as ``pk_<column>`` parameters."""
        for obj, loaded in tracked:
            changed = {k: v for k, v in ((k, getattr(obj, k)) for k in loaded) if v != loaded[k]}
            if changed:
                table = obj.__table__  # type: ignore[attr-defined]
                yield table, changed, {f"pk_{c.name}": loaded[c.name] for c in table.primary_key}

    def _load_ticket(self, s: Session, ticket_id: int) -> m.Ticket | None:
        T = m.Ticket.__table__
        row = s.connection().execute(self._statement("lock_ticket", lambda: select(T).where(
            T.c.id == bindparam("id")).with_for_update()), {"id": ticket_id}).one_or_none()
        return None if row is None else self._record(s, m.Ticket, row._mapping)

    # ---- windows -----------------------------------------------------------------------------
    def _lock_window(self, s: Session, hall: Hall, number: str) -> m.WindowState:
        self._window_cfg(hall, number)
        W = m.WindowState.__table__
        key = {"hall_id": hall.id, "number": number}

        def lock():  # type: ignore[no-untyped-def]
            return self._rows(s, "lock_window", lambda: select(W).where(
                W.c.hall_id == bindparam("hall_id"), W.c.number == bindparam("number")).with_for_update(), key)

        rows = lock()
        if not rows:  # a window added to the configuration since sync_state
            s.connection().execute(insert(W), key)
            rows = lock()
        return self._record(s, m.WindowState, dict(zip(W.c.keys(), rows[0])))

    def _lock_window_and_ticket(self, s: Session, hall: Hall, number: str) -> tuple[m.WindowState, m.Ticket | None]:
        """The window and the ticket it points at, both locked, in one statement when it points at one
        (the window's lock is taken first, as by _lock_window and then _load_ticket)."""
        self._window_cfg(hall, number)
        W, T = m.WindowState.__table__, m.Ticket.__table__
        rows = self._rows(s, "lock_window_ticket", lambda: select(W, T).join_from(W, T, T.c.id == W.c.ticket_id)
                          .where(W.c.hall_id == bindparam("hall_id"), W.c.number == bindparam("number"))
                          .with_for_update().set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL),
                          {"hall_id": hall.id, "number": number})
        if not rows:  # no ticket to lock
            return self._lock_window(s, hall, number), None
        nw = len(W.c)
        return (self._record(s, m.WindowState, dict(zip(W.c.keys(), rows[0][:nw]))),
                self._record(s, m.Ticket, dict(zip(T.c.keys(), rows[0][nw:]))))

    def _current(self, s: Session, ws: m.WindowState, *, required: bool = True,
                 locked: m.Ticket | None = None) -> m.Ticket | None:
        """The window's ticket being called or served; ``locked``: that ticket, locked already."""
        t = locked if locked is not None else self._load_ticket(s, ws.ticket_id) if ws.ticket_id else None
        if t is not None and t.status not in (TicketStatus.CALLED.value, TicketStatus.SERVING.value):
            t = None
        if t is None and required:
            raise Conflict(f"{ws.number}号窗口当前没有正在呼叫或办理的号 (no current ticket)", code="no_current_ticket")
        return t

    def _require_open(self, ws: m.WindowState, clerk: str | None) -> None:
        if ws.clerk is None:
            raise Conflict(f"{ws.number}号窗口未登录，请先签到 (window is not signed in)", code="window_closed")
        if clerk is not None and ws.clerk != clerk:
            raise Conflict(f"{ws.number}号窗口由{ws.clerk}登录，不能代为操作 (signed in by another clerk)",
                           code="window_other_clerk")

    def _window_event(self, s: Session, out: Outbox, hall: Hall, ws: m.WindowState,
                      ticket: m.Ticket | None = None) -> None:
        out.add("window", hall.id, self._window_view(s, hall, ws, ticket),
                [f"hall:{hall.id}", f"hall:{hall.id}:window:{ws.number}"])

    def _window_view(self, s: Session, hall: Hall, ws: m.WindowState, ticket: m.Ticket | None = None) -> WindowPayload:
        """``ticket``: a ticket the caller holds already, used if it is the window's current one."""
        cfg = hall.window(ws.number)
        if ticket is not None and ticket.id == ws.ticket_id:
            t: m.Ticket | None = ticket
        else:
            t = s.get(m.Ticket, ws.ticket_id) if ws.ticket_id else None
        tstatus = TicketStatus(t.status) if t is not None else None
        if tstatus not in (TicketStatus.CALLED, TicketStatus.SERVING):
            t, tstatus = None, None
        status = window_status(ws.clerk is not None, ws.paused, tstatus)
        clerk_name = self._clerk_name(s, ws.clerk) if ws.clerk else None
        since = ws.paused_at if ws.paused else (t.called_at if t is not None else ws.signed_in_at)
        return WindowPayload(
            hall=hall.id, number=ws.number, name=cfg.name or f"{ws.number}号窗口", status=status.value,
            status_label=WINDOW_LABELS[status], clerk=ws.clerk, clerk_name=clerk_name,
            pause_reason=ws.pause_reason if ws.paused else None,
            ticket=self._view(hall, t) if t is not None else None,
            queues=self._served_queues(hall, ws), since=since,
        )

    def _clerk_name(self, s: Session, username: str) -> str:
        """Names change rarely and are only shown: read once every ``CLERK_NAME_SECONDS``, not on every
        window event (at 2 s, 20 busy windows read them ten times a second: 2 % of the server's CPU in
        py-spy's paced profile). A renamed clerk shows under the old name until then."""
        def load() -> str:
            name = s.connection().execute(self._statement("clerk_name", lambda: select(m.User.name).where(
                m.User.username == bindparam("username"))), {"username": username}).scalar()
            return name if name is not None else username
        return self._cached(("clerk", username), load, self.CLERK_NAME_SECONDS)  # type: ignore[return-value]

    def _log_window(self, s: Session, hall: Hall, ws: m.WindowState, kind: str, now: dt.datetime,
                    reason: str | None = None) -> None:
        s.add(m.WindowLog(hall_id=hall.id, number=ws.number, kind=kind, at=now, clerk=ws.clerk, reason=reason))

    def sign_in(self, hall_id: str, window: str, clerk: str) -> WindowPayload:
        hall = self.hall(hall_id)

        def work(s: Session, out: Outbox) -> WindowPayload:
            now = self.clock()
            ws = self._lock_window(s, hall, window)
            if ws.clerk is not None and ws.clerk != clerk:
                raise Conflict(f"{window}号窗口已由{ws.clerk}登录 (window already signed in)", code="window_taken")
            other = s.scalar(select(m.WindowState).where(m.WindowState.hall_id == hall.id, m.WindowState.clerk == clerk,
                                                         m.WindowState.number != window))
            if other is not None:
                raise Conflict(f"您已在{other.number}号窗口登录，请先签退 (already signed in elsewhere)",
                               code="clerk_elsewhere")
            if ws.clerk is None:
                ws.clerk, ws.signed_in_at, ws.paused, ws.pause_reason = clerk, now, False, None
                ws.updated_at = now
                self._log_window(s, hall, ws, "sign_in", now)
            s.flush()
            self._window_event(s, out, hall, ws)
            return self._window_view(s, hall, ws)

        return self._run(work)  # type: ignore[return-value]

    def _window_change(
        self, hall_id: str, window: str, clerk: str | None, change: Callable[[Session, Hall, m.WindowState, dt.datetime], None],
        *, require_open: bool = True,
    ) -> WindowPayload:
        """Lock the window, apply ``change``, publish the window's new state: the shape of every
        window-state action that is not about a ticket."""
        hall = self.hall(hall_id)

        def work(s: Session, out: Outbox) -> WindowPayload:
            now = self.clock()
            ws = self._lock_window(s, hall, window)
            if require_open:
                self._require_open(ws, clerk)
            change(s, hall, ws, now)
            ws.updated_at = now
            s.flush()
            self._window_event(s, out, hall, ws)
            return self._window_view(s, hall, ws)

        return self._run(work)  # type: ignore[return-value]

    def _require_no_ticket(self, s: Session, ws: m.WindowState, doing: str) -> None:
        if self._current(s, ws, required=False) is not None:
            raise Conflict(f"请先办结或处理当前号再{doing} (finish the current ticket first)", code="ticket_in_progress")

    def sign_out(self, hall_id: str, window: str, clerk: str | None = None) -> WindowPayload:
        def change(s: Session, hall: Hall, ws: m.WindowState, now: dt.datetime) -> None:
            self._require_no_ticket(s, ws, "签退")
            self._log_window(s, hall, ws, "sign_out", now)
            ws.clerk, ws.signed_in_at, ws.paused, ws.pause_reason, ws.paused_at = None, None, False, None, None
            ws.ticket_id = None

        return self._window_change(hall_id, window, clerk, change)

    def pause(self, hall_id: str, window: str, reason: str, clerk: str | None = None) -> WindowPayload:
        reason = reason.strip()
        if not reason:
            raise BadRequest("暂停需要填写原因 (a pause needs a reason)", code="reason_required")

        def change(s: Session, hall: Hall, ws: m.WindowState, now: dt.datetime) -> None:
            if ws.paused:
                raise Conflict(f"{window}号窗口已暂停 (already paused)", code="already_paused")
            self._require_no_ticket(s, ws, "暂停")
            ws.paused, ws.pause_reason, ws.paused_at = True, reason, now
            self._log_window(s, hall, ws, "pause", now, reason)

        return self._window_change(hall_id, window, clerk, change)

    def resume(self, hall_id: str, window: str, clerk: str | None = None) -> WindowPayload:
        def change(s: Session, hall: Hall, ws: m.WindowState, now: dt.datetime) -> None:
            if not ws.paused:
                raise Conflict(f"{window}号窗口未暂停 (not paused)", code="not_paused")
            ws.paused, ws.pause_reason, ws.paused_at = False, None, None
            self._log_window(s, hall, ws, "resume", now)

        return self._window_change(hall_id, window, clerk, change)

    def set_window_queues(self, hall_id: str, window: str, queues: list[str] | None) -> WindowPayload:
        """A manager moves a window to other queues (None restores the configured ones)."""
        hall = self.hall(hall_id)
        for q in queues or []:
            self._queue_cfg(hall, q)
        if queues is not None and not queues:
            raise BadRequest("窗口至少要服务一个队列 (a window serves at least one queue)")

        def change(s: Session, hall: Hall, ws: m.WindowState, now: dt.datetime) -> None:
            ws.queues_override = list(queues) if queues else None

        return self._window_change(hall_id, window, None, change, require_open=False)

    # ---- calling -----------------------------------------------------------------------------
    def _candidates(self, s: Session, hall: Hall, window: str, queues: list[str], now: float,
                    exclude: set[int] | None = None, limit: int = CANDIDATES_PER_CLASS,
                    ) -> tuple[list[routing.Candidate], routing.RoutingState]:
        """The first few waiting tickets of each served queue and class, and those sent to this window:
        one small indexed query per branch, so the cost does not grow with the waiting pool. ``exclude``
        holds tickets this call failed to claim because another window is claiming them right now.
        Each row carries its queue's priority streak: ranking needs the streaks of these queues only."""
        # the union is built once per list of queues: building and hashing it costs more than running it
        qs, ex = tuple(queues), bool(exclude)
        rows: list[Any] = self._rows(s, ("candidates", qs, ex), lambda: self._build_candidates_query(qs, ex), {
            "hall_id": hall.id, "window": window, "now": now, "limit": limit, "exclude": sorted(exclude or ())})
        cands, streaks = [], {}
        for ticket_id, queue_id, place, priority, eligible_at, target_window, streak in rows:
            cands.append(routing.Candidate(ticket_id=ticket_id, queue=queue_id, place=place, priority=priority,
                                           eligible_at=eligible_at, target_window=target_window))
            if streak is not None:  # no queue_state row: no streak yet
                streaks[queue_id] = streak
        return cands, routing.RoutingState(streaks)

    def _build_candidates_query(self, queues: tuple[str, ...], exclude: bool):  # type: ignore[no-untyped-def]
        T, Q = m.Ticket, m.QueueState
        cols = (T.id, T.queue_id, T.place, T.priority, T.eligible_at, T.target_window)
        skip = (~self._in_list(T.id, "exclude", BigInteger),) if exclude else ()
        hall_id, limit = bindparam("hall_id"), bindparam("limit")

        def first(*where: object):  # type: ignore[no-untyped-def]
            sub = select(*cols).where(*where, *skip).order_by(T.place, T.id).limit(limit).subquery()
            streak = select(Q.priority_streak).where(Q.hall_id == hall_id, Q.queue_id == sub.c.queue_id)
            return select(sub, streak.scalar_subquery().label("streak"))

        branches = [
            first(T.hall_id == hall_id, T.queue_id == q, m.status_is(T.status, TicketStatus.WAITING.value),
                  T.priority == (true() if prio else false()), T.target_window.is_(None), T.eligible_at <= bindparam("now"))
            for q in queues for prio in (False, True)
        ]
        branches.append(first(T.hall_id == hall_id, m.status_is(T.status, TicketStatus.WAITING.value),
                              T.target_window == bindparam("window")))
        return union_all(*branches)

    def _claim(self, s: Session, ticket_id: int, window: str, clerk: str | None, now: dt.datetime) -> m.Ticket | None:
        """The ticket as claimed for ``window``, or None if another window has it or is claiming it."""
        row = s.connection().execute(self._claim_statement(), {
            "b_id": ticket_id, "b_window": window, "b_clerk": clerk, "b_now": now}).one_or_none()
        return None if row is None else self._model(m.Ticket, row._mapping)

    def _claim_statement(self):  # type: ignore[no-untyped-def]
        return self._statement("claim", self._build_claim_statement)

    def _build_claim_statement(self):  # type: ignore[no-untyped-def]
        T = m.Ticket
        waiting = m.row_status_is(T.status, TicketStatus.WAITING.value)
        lockable = select(T.id).where(T.id == bindparam("b_id"), waiting)
        if self.db.is_postgres:
            lockable = lockable.with_for_update(skip_locked=True)
        return (update(T).where(T.id == lockable.scalar_subquery(), waiting)
                .values(status=TicketStatus.CALLED.value, window=bindparam("b_window"), clerk=bindparam("b_clerk"),
                        called_at=bindparam("b_now", type_=m.Ticket.called_at.type), recalls=0, target_window=None)
                .returning(*m.Ticket.__table__.c))

    def _claim_first(self, s: Session, hall: Hall, ranked: list[int], ws: m.WindowState,
                     now: dt.datetime) -> m.Ticket | None:
        """PostgreSQL: the first ticket of ``ranked`` that is still waiting and not being claimed by
        another window, claimed for ``ws`` and seated at it in one statement; None if every one is taken.
        A window losing a race moves on to the next ticket on the server, not in another round trip
        per ticket tried (many windows calling at once on a few waiting tickets)."""
        rows = self._raw("claim_first", self._build_claim_first_statement).rows(driver_connection(s), {
            "b_ids": ranked, "b_hall": hall.id, "b_window": ws.number, "b_clerk": ws.clerk, "b_now": now})
        if not rows:
            return None
        t = self._model(m.Ticket, dict(zip(m.Ticket.__table__.c.keys(), rows[0])))
        self._saved(s, ws, ticket_id=t.id, updated_at=now)  # the statement seated it
        return t

    def _build_claim_first_statement(self):  # type: ignore[no-untyped-def]
        T, W = m.Ticket.__table__, m.WindowState.__table__
        ids, now = bindparam("b_ids", type_=postgresql.ARRAY(BigInteger)), bindparam("b_now", type_=T.c.called_at.type)
        waiting = m.row_status_is(T.c.status, TicketStatus.WAITING.value)
        first = (select(T.c.id).where(T.c.id == any_(ids), waiting)
                 .order_by(func.array_position(ids, T.c.id)).limit(1).with_for_update(skip_locked=True))
        claimed = (update(T).where(T.c.id == first.scalar_subquery(), waiting)
                   .values(status=TicketStatus.CALLED.value, window=bindparam("b_window"), clerk=bindparam("b_clerk"),
                           called_at=now, recalls=0, target_window=None)
                   .returning(*T.c).cte("claimed"))
        seat = (update(W).where(W.c.hall_id == claimed.c.hall_id, W.c.hall_id == bindparam("b_hall"),
                                W.c.number == bindparam("b_window"))
                .values(ticket_id=claimed.c.id, updated_at=now).cte("seat"))
        return select(claimed).add_cte(seat)

    def _after_call(self, s: Session, out: Outbox, hall: Hall, ws: m.WindowState, t: m.Ticket,
                    now: dt.datetime, actor: str | None) -> m.Ticket:
        ws.ticket_id, ws.updated_at = t.id, now
        self._event(s, out, hall, t, "called", now, actor)
        self._window_event(s, out, hall, ws, t)
        if t.queue_id in {q.id for q in hall.queues}:
            if self.db.is_postgres:
                # Every window calling from this queue would wait for the queue's row lock until this
                # transaction ends: the streak is bumped in the commit's own message instead, after the
                # hall's sequence lock (_commit_events). It is read without a lock when ranking anyway.
                s.info.setdefault("streaks", []).append((hall.id, t.queue_id, bool(t.priority)))
            else:  # one writer at a time: no one waits for this lock longer than for the database's
                s.connection().execute(self._BUMP_STREAK, self._streak_params(hall.id, t.queue_id, bool(t.priority)))
        return t

    # routing.apply_call in one statement: a priority call adds one to the queue's streak, a normal one
    # resets it. Text, because SQLAlchemy compiles an ON CONFLICT statement again on every execution.
    _STREAK_CONFLICT = ("ON CONFLICT (hall_id, queue_id) DO UPDATE SET priority_streak = "
                        "CASE WHEN {priority} THEN COALESCE(queue_state.priority_streak, 0) + 1 ELSE 0 END")
    _BUMP_STREAK = text("INSERT INTO queue_state (hall_id, queue_id, priority_streak) "
                        "VALUES (:hall_id, :queue_id, :first) " + _STREAK_CONFLICT.format(priority=":priority"))
    # the same in psycopg's format, for the commit message on PostgreSQL (see _commit_events)
    _STREAK_SQL = ("INSERT INTO queue_state (hall_id, queue_id, priority_streak) VALUES (%s, %s, %s) "
                   + _STREAK_CONFLICT.format(priority="%s"))

    @staticmethod
    def _streak_params(hall_id: str, queue_id: str, priority: bool) -> dict[str, object]:
        return {"hall_id": hall_id, "queue_id": queue_id, "priority": priority,
                "first": routing.apply_call(0, priority)}

    def call_next(self, hall_id: str, window: str, clerk: str | None = None, actor: str | None = None) -> TicketView | None:
        hall = self.hall(hall_id)
        wcfg = self._window_cfg(hall, window)

        def work(s: Session, out: Outbox) -> TicketView | None:
            now = self.clock()
            self._ensure_day(s, out, hall, now)
            ws = self._lock_window(s, hall, window)
            self._require_open(ws, clerk)
            if ws.paused:
                raise Conflict(f"{window}号窗口暂停服务中，请先恢复 (window is paused)", code="window_paused")
            if self._current(s, ws, required=False) is not None:
                raise Conflict("当前号尚未办结，请先办结、转移或标记过号 (current ticket not finished)",
                               code="ticket_in_progress")
            queues = self._served_queues(hall, ws)
            policies = {q.id: routing.QueuePolicy(
                ratio=q.priority_ratio if q.priority_ratio is not None else hall.priority.ratio,
                max_wait=(q.max_wait_minutes or hall.priority.max_normal_wait_minutes or 0) * 60 or None,
            ) for q in hall.queues}
            contested: set[int] = set()  # being claimed by other windows at this moment
            for attempt in range(8):
                cands, streaks = self._candidates(s, hall, window, queues, now.timestamp(), contested,
                                                  CANDIDATES_PER_CLASS << attempt)
                if not cands:
                    return None
                ranked = routing.rank(window, queues, cands, policies, streaks, now.timestamp(), wcfg.order)
                if self.db.is_postgres:  # the first of them no other window has or is claiming, in one round trip
                    t = self._claim_first(s, hall, [c.ticket_id for c in ranked], ws, now)
                    if t is not None:
                        return self._view(hall, self._after_call(s, out, hall, ws, t, now, actor))
                    contested.update(c.ticket_id for c in ranked)
                    continue
                for c in ranked:  # SQLite: one writer, so the first is free; the loop is for safety
                    t = self._claim(s, c.ticket_id, window, ws.clerk, now)
                    if t is not None:
                        return self._view(hall, self._after_call(s, out, hall, ws, t, now, actor))
                    contested.add(c.ticket_id)
            raise Conflict("叫号繁忙，请重试 (could not claim a ticket; retry)", code="busy")

        return self._run(work)  # type: ignore[return-value]

    def call_ticket(self, hall_id: str, window: str, ticket_id: int, clerk: str | None = None,
                    actor: str | None = None) -> TicketView:
        hall = self.hall(hall_id)
        if not hall.allow_call_specific:
            raise Conflict("本大厅不允许指定叫号 (calling a specific ticket is disabled)", code="call_specific_disabled")

        def work(s: Session, out: Outbox) -> TicketView:
            now = self.clock()
            ws = self._lock_window(s, hall, window)
            self._require_open(ws, clerk)
            if ws.paused:
                raise Conflict(f"{window}号窗口暂停服务中，请先恢复 (window is paused)", code="window_paused")
            if self._current(s, ws, required=False) is not None:
                raise Conflict("当前号尚未办结 (current ticket not finished)", code="ticket_in_progress")
            t = self._ticket(s, hall, ticket_id)
            if t.target_window not in (None, window) or (t.target_window is None and t.queue_id not in self._served_queues(hall, ws)):
                raise Conflict(f"{t.display}不属于{window}号窗口服务的队列 (not served by this window)",
                               code="not_served_here")
            next_status(Action.CALL, TicketStatus(t.status), t.display)
            claimed = self._claim(s, t.id, window, ws.clerk, now)
            if claimed is None:
                raise Conflict(f"{t.display}已被其他窗口呼叫 (called by another window)", code="already_called")
            return self._view(hall, self._after_call(s, out, hall, ws, claimed, now, actor))

        return self._run(work)  # type: ignore[return-value]

    def _ticket(self, s: Session, hall: Hall, ticket_id: int) -> m.Ticket:
        t = s.get(m.Ticket, ticket_id, with_for_update=True)
        if t is None or t.hall_id != hall.id:
            raise NotFound(f"未找到票号 (no ticket {ticket_id} in this hall)", code="unknown_ticket")
        return t

    def _window_action(
        self, hall_id: str, window: str, clerk: str | None, actor: str | None,
        fn: Callable[[Session, Outbox, Hall, m.WindowState, m.Ticket, dt.datetime], None],
    ) -> TicketView:
        hall = self.hall(hall_id)

        def work(s: Session, out: Outbox) -> TicketView:
            now = self.clock()
            ws, locked = self._lock_window_and_ticket(s, hall, window)
            self._require_open(ws, clerk)
            t = self._current(s, ws, locked=locked)
            assert t is not None
            try:
                fn(s, out, hall, ws, t, now)
            except IllegalTransition as exc:
                raise Conflict(str(exc), code="illegal_transition") from None
            self._window_event(s, out, hall, ws, t)
            return self._view(hall, t)

        return self._run(work)  # type: ignore[return-value]

    def recall(self, hall_id: str, window: str, clerk: str | None = None, actor: str | None = None) -> TicketView:
        def fn(s: Session, out: Outbox, hall: Hall, ws: m.WindowState, t: m.Ticket, now: dt.datetime) -> None:
            next_status(Action.RECALL, TicketStatus(t.status), t.display)
            if t.recalls >= hall.max_recalls:
                raise Conflict(f"{t.display}已重呼{t.recalls}次，达到上限，可标记过号 (recall limit reached)",
                               code="recall_limit")
            t.recalls += 1
            self._event(s, out, hall, t, "recalled", now, actor, recalls=t.recalls)

        return self._window_action(hall_id, window, clerk, actor, fn)

    def start(self, hall_id: str, window: str, clerk: str | None = None, actor: str | None = None) -> TicketView:
        def fn(s: Session, out: Outbox, hall: Hall, ws: m.WindowState, t: m.Ticket, now: dt.datetime) -> None:
            t.status = next_status(Action.START, TicketStatus(t.status), t.display).value
            t.started_at = now
            self._event(s, out, hall, t, "started", now, actor)

        return self._window_action(hall_id, window, clerk, actor, fn)

    def finish(self, hall_id: str, window: str, outcome: str, case_no: str | None = None,
               clerk: str | None = None, actor: str | None = None) -> TicketView:
        if outcome not in OUTCOMES:
            raise BadRequest(f"办结结果应为 instant(即办)、promised(承诺) 或 returned(退回)，收到 {outcome!r}",
                             code="bad_outcome")

        def fn(s: Session, out: Outbox, hall: Hall, ws: m.WindowState, t: m.Ticket, now: dt.datetime) -> None:
            t.status = next_status(Action.FINISH, TicketStatus(t.status), t.display).value
            t.finished_at, t.closed_at, t.outcome, t.case_no = now, now, outcome, case_no
            ws.ticket_id = None
            self._event(s, out, hall, t, "finished", now, actor, outcome=outcome, case_no=case_no)

        return self._window_action(hall_id, window, clerk, actor, fn)

    def no_show(self, hall_id: str, window: str, clerk: str | None = None, actor: str | None = None) -> TicketView:
        def fn(s: Session, out: Outbox, hall: Hall, ws: m.WindowState, t: m.Ticket, now: dt.datetime) -> None:
            if t.status == TicketStatus.CALLED.value and t.recalls < hall.no_show_after_recalls:
                raise Conflict(f"请先重呼{hall.no_show_after_recalls}次再标记过号（已重呼{t.recalls}次）",
                               code="recall_first")
            t.status = next_status(Action.NO_SHOW, TicketStatus(t.status), t.display).value
            ws.ticket_id = None
            self._event(s, out, hall, t, "no_show", now, actor, recalls=t.recalls)

        return self._window_action(hall_id, window, clerk, actor, fn)

    def transfer(
        self, hall_id: str, window: str, *, to_queue: str | None = None, to_window: str | None = None,
        next_stage: bool = False, clerk: str | None = None, actor: str | None = None,
    ) -> TicketView:
        if sum((to_queue is not None, to_window is not None, next_stage)) != 1:
            raise BadRequest("转移需指定目标队列、目标窗口或下一环节之一 (give one of to_queue, to_window, next_stage)")
        hall = self.hall(hall_id)
        if to_queue is not None:
            self._queue_cfg(hall, to_queue)
        if to_window is not None:
            self._window_cfg(hall, to_window)
            if to_window == window:
                raise BadRequest("不能转移到本窗口 (cannot transfer to the same window)")

        def fn(s: Session, out: Outbox, hall: Hall, ws: m.WindowState, t: m.Ticket, now: dt.datetime) -> None:
            t.status = next_status(Action.TRANSFER, TicketStatus(t.status), t.display).value
            data: dict[str, object] = {"from_queue": t.queue_id, "from_window": window}
            if to_queue is not None:
                t.queue_id, t.target_window = to_queue, None
                data["to_queue"] = to_queue
            elif to_window is not None:
                t.target_window = to_window
                data["to_window"] = to_window
            else:
                stage = hall.queue(t.queue_id).next_stage
                if stage is None:
                    raise Conflict(f"{hall.queue(t.queue_id).name}没有下一环节 (queue has no next stage)",
                                   code="no_next_stage")
                t.queue_id, t.stage, t.target_window = stage.queue, stage.name, None
                data.update(to_queue=stage.queue, stage=stage.name)
            if not hall.transfer_keeps_place:
                t.place = now.timestamp()
            t.eligible_at, t.recalls = 0.0, 0
            ws.ticket_id = None
            self._event(s, out, hall, t, "transferred", now, actor, **data)
            t.window = None

        return self._window_action(hall_id, window, clerk, actor, fn)

    def reactivate(self, hall_id: str, ticket_id: int, actor: str | None = None) -> TicketView:
        hall = self.hall(hall_id)

        def work(s: Session, out: Outbox) -> TicketView:
            now = self.clock()
            day = self._ensure_day(s, out, hall, now)
            t = self._ticket(s, hall, ticket_id)
            try:
                t.status = next_status(Action.REACTIVATE, TicketStatus(t.status), t.display).value
            except IllegalTransition as exc:
                raise Conflict(str(exc), code="illegal_transition") from None
            if t.service_day != day and hall.midnight == "close":
                raise Conflict("过号票已过当日有效期，请重新取号 (ticket is from an earlier day)", code="stale_ticket")
            places = list(s.scalars(select(m.Ticket.place).where(
                m.Ticket.hall_id == hall.id, m.Ticket.queue_id == t.queue_id, m.Ticket.id != t.id,
                m.status_is(m.Ticket.status, TicketStatus.WAITING.value), m.Ticket.priority == (true() if t.priority else false()),
                m.Ticket.target_window.is_(None))))
            t.place = routing.reactivation_place(places, hall.reactivate_behind, now.timestamp())
            t.window, t.recalls, t.target_window, t.eligible_at = None, 0, None, 0.0
            self._event(s, out, hall, t, "reactivated", now, actor, behind=hall.reactivate_behind)
            return self._view(hall, t)

        return self._run(work)  # type: ignore[return-value]

    def cancel(self, hall_id: str, ticket_id: int, reason: str = "", actor: str | None = None) -> TicketView:
        hall = self.hall(hall_id)

        def work(s: Session, out: Outbox) -> TicketView:
            now = self.clock()
            t = self._ticket(s, hall, ticket_id)
            try:
                t.status = next_status(Action.CANCEL, TicketStatus(t.status), t.display).value
            except IllegalTransition as exc:
                raise Conflict(str(exc), code="illegal_transition") from None
            t.closed_at = now
            self._event(s, out, hall, t, "cancelled", now, actor, reason=reason)
            return self._view(hall, t)

        return self._run(work)  # type: ignore[return-value]

    # ---- reading -----------------------------------------------------------------------------
    def ticket(self, hall_id: str, ticket_id: int) -> tuple[TicketView, int, float]:
        hall = self.hall(hall_id)
        with self.db.read() as s:
            t = s.get(m.Ticket, ticket_id)
            if t is None or t.hall_id != hall.id:
                raise NotFound(f"未找到票号 (no ticket {ticket_id} in this hall)", code="unknown_ticket")
            ahead, wait = self._estimate_for(s, hall, t, self.clock())
            return self._view(hall, t), ahead, wait

    _UNKNOWN_LINK = "未找到该票号，请核对链接 (unknown ticket link)"

    def ticket_by_token(self, token: str) -> tuple[str, TicketView, int, float]:
        with self.db.read() as s:
            t = s.scalar(select(m.Ticket).where(m.Ticket.public_token == token))
            if t is None:
                raise NotFound(self._UNKNOWN_LINK, code="unknown_ticket")
            hall = self.hall(t.hall_id)
            ahead, wait = self._estimate_for(s, hall, t, self.clock())
            return hall.id, self._view(hall, t), ahead, wait

    def hall_of_token(self, token: str) -> str:
        """The hall of a ticket's mobile link (for its QR code: no people-ahead count needed)."""
        with self.db.read() as s:
            hall_id = s.scalar(select(m.Ticket.hall_id).where(m.Ticket.public_token == token))
        if hall_id is None:
            raise NotFound(self._UNKNOWN_LINK, code="unknown_ticket")
        return hall_id

    def queue_views(self, hall_id: str, s: Session | None = None) -> list[QueueView]:
        hall = self.hall(hall_id)
        if s is None:
            with self.db.read() as s2:
                return self.queue_views(hall_id, s2)
        now = self.clock()
        day = numbering.service_day(now, hall.tz)
        st = self._queue_view_statements()
        conn = s.connection()
        key = {"hall_id": hall.id, "day": day}
        # Several short reads, with a pause between them: the live `queues` payload is built every half
        # second in the background, and under gevent one long read would hold up every request meanwhile.
        waiting = {r.queue_id: (r.n, r.oldest) for r in conn.execute(st["waiting"], key)}
        pause()
        issued = dict(conn.execute(st["issued"], key).all())
        pause()
        last_called = dict(conn.execute(st["last_called"], key).all()[::-1])
        pause()
        shares = self._cached(("shares", hall.id), lambda: self._window_shares(s, hall))  # as the estimates at issue
        open_counts: dict[str, int] = {}
        for ws in conn.execute(st["open_windows"], key):
            for q in self._served_queues(hall, ws):  # type: ignore[arg-type]
                open_counts[q] = open_counts.get(q, 0) + 1
        views = []
        for q in hall.queues:
            n, oldest = waiting.get(q.id, (0, None))
            handling = self._cached(("handling", hall.id, q.id, day.isoformat()),
                                    lambda: self._handling_seconds(s, hall, q.id, day)) if n else q.default_handle_minutes * 60
            views.append(QueueView(
                id=q.id, prefix=q.prefix, name=q.name, waiting=n,
                longest_wait_seconds=max(0.0, now.timestamp() - oldest) if oldest else 0.0,
                estimated_wait_seconds=estimate.estimate_wait(n, handling, shares.get(q.id, 0.0)),
                windows_open=open_counts.get(q.id, 0), issued_today=int(issued.get(q.id, 0)),
                last_called=last_called.get(q.id),
            ))
        return views

    def _queue_view_statements(self) -> dict[str, object]:
        return self._statement("queue_views", self._build_queue_view_statements)  # type: ignore[no-any-return]

    @staticmethod
    def _build_queue_view_statements() -> dict[str, object]:
        T, C, W = m.Ticket.__table__, m.Counter.__table__, m.WindowState.__table__
        hall_id, day = bindparam("hall_id"), bindparam("day")
        return {
            "waiting": select(T.c.queue_id, func.count().label("n"), func.min(T.c.place).label("oldest"))
            .where(T.c.hall_id == hall_id, m.status_is(T.c.status, TicketStatus.WAITING.value)).group_by(T.c.queue_id),
            "issued": select(C.c.queue_id, C.c.last_number).where(C.c.hall_id == hall_id, C.c.service_day == day),
            "last_called": select(T.c.queue_id, T.c.display)
            .where(T.c.hall_id == hall_id, T.c.service_day == day, T.c.called_at.is_not(None))
            .order_by(T.c.called_at.desc()).limit(200),
            "open_windows": select(W.c.number, W.c.queues_override)
            .where(W.c.hall_id == hall_id, W.c.clerk.is_not(None), W.c.paused.is_(False)),
        }

    def queues_payload(self, hall_id: str) -> QueuesPayload:
        return QueuesPayload(hall=hall_id, at=self.clock(), queues=self.queue_views(hall_id))

    def window_views(self, hall_id: str) -> list[WindowPayload]:
        hall = self.hall(hall_id)
        with self.db.read() as s:
            rows = {w.number: w for w in s.scalars(select(m.WindowState).where(m.WindowState.hall_id == hall.id))}
            return [self._window_view(s, hall, rows.get(w.number) or m.WindowState(hall_id=hall.id, number=w.number,
                                                                                   paused=False))
                    for w in hall.windows]

    def window_view(self, hall_id: str, number: str) -> WindowPayload:
        hall = self.hall(hall_id)
        self._window_cfg(hall, number)
        with self.db.read() as s:
            ws = s.get(m.WindowState, (hall.id, number)) or m.WindowState(hall_id=hall.id, number=number, paused=False)
            return self._window_view(s, hall, ws)

    def recent_calls(self, hall_id: str, limit: int = 8) -> list[TicketEventPayload]:
        hall = self.hall(hall_id)
        day = numbering.service_day(self.clock(), hall.tz)
        start = dt.datetime.combine(day, dt.time(0), hall.tz).astimezone(dt.timezone.utc)
        with self.db.read() as s:
            rows = s.execute(
                select(m.TicketEvent, m.Ticket).join(m.Ticket, m.Ticket.id == m.TicketEvent.ticket_id)
                .where(m.TicketEvent.hall_id == hall.id, m.TicketEvent.kind.in_(("called", "recalled")),
                       m.TicketEvent.at >= start)
                .order_by(m.TicketEvent.id.desc()).limit(limit)
            ).all()
            out = []
            for ev, t in reversed(rows):
                view = self._view(hall, t).model_copy(update={"window": ev.window})
                out.append(TicketEventPayload(type=ev.kind, hall=hall.id, seq=ev.id, at=ev.at, window=ev.window,
                                              ticket=view))
            return out

    def events_since(self, hall_id: str, seq: int, limit: int = 500) -> list[TicketEventPayload]:
        """Ticket events committed after ``seq``, oldest first: the catch-up after a snapshot."""
        hall = self.hall(hall_id)
        with self.db.read() as s:
            rows = s.execute(
                select(m.TicketEvent, m.Ticket).join(m.Ticket, m.Ticket.id == m.TicketEvent.ticket_id)
                .where(m.TicketEvent.hall_id == hall.id, m.TicketEvent.id > seq)
                .order_by(m.TicketEvent.id).limit(limit)
            ).all()
            return [TicketEventPayload(type=ev.kind, hall=hall.id, seq=ev.id, at=ev.at, window=ev.window,
                                       ticket=self._view(hall, t).model_copy(update={"window": ev.window}))
                    for ev, t in rows]

    def snapshot(self, hall_id: str) -> SnapshotPayload:
        hall = self.hall(hall_id)
        now = self.clock()
        with self.db.read() as s:
            last_seq = s.scalar(select(func.max(m.TicketEvent.id)).where(m.TicketEvent.hall_id == hall.id)) or 0
            queues = self.queue_views(hall_id, s)
        return SnapshotPayload(
            hall=hall.id, hall_name=hall.name, at=now, service_day=numbering.service_day(now, hall.tz),
            queues=queues, windows=self.window_views(hall_id), recent_calls=self.recent_calls(hall_id),
            last_seq=last_seq,
        )

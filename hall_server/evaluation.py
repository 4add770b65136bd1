"""好差评: evaluation requests to the window's pad, pad and online submissions, and the follow-up of
every bad review.

How a visit becomes an evaluation
- When a ticket's stage ends at a window that has an evaluation pad (the ticket is finished, or sent on
  to its next stage), :class:`EvaluationHook` sees the committed ``ticket`` event, stores an evaluation
  *request* (a row with no grade) and publishes ``evaluation_request`` to the window's room, where the
  device gateway prompts the pad. This runs after the queue engine's commit, outside its transaction,
  so the engine's hot paths are untouched; if the server dies in between, a pad answer still finds its
  ticket (the row is then created on demand).
- Unrated needs no timer: a request whose ``timeout_seconds`` (+ a short grace for the gateway) has
  passed, or that a newer request at the same window has replaced, is closed for answers and stays
  ungraded, which is what 未评价 means. Reports count such rows as unrated.
- Only the pad (its device token, scope evaluations:submit, bound to its window) can grade on site;
  clerks and managers lack the scope. One evaluation per ticket per stage (unique key); the online
  一事一评 from the ticket's QR page is one more, under the stage key ``一事一评``.
- Every 差评 opens a :class:`~hall_server.evaluation_models.FollowUpCase` in the same transaction,
  with a deadline in working days, assigned to a manager.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable, Literal

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import models as m
from .config import Hall, HallConfig
from .db import Database
from .errors import BadRequest, Conflict, NotFound
from .evaluation_models import Evaluation, FollowUpCase
from .events import Outbox, TicketEventPayload
from .rules import evaluation as rules
from .rules.numbering import service_day

log = logging.getLogger(__name__)


# ---- payloads (Socket.IO and REST) ------------------------------------------------------------------
class EvaluationRequestPayload(BaseModel):
    hall: str
    window: str
    ticket_id: int
    ticket_number: str
    stage: str
    clerk_name: str | None
    staff_no: str | None
    matter_name: str
    timeout_seconds: int


class EvaluationView(BaseModel):
    id: int
    hall: str
    ticket_id: int
    ticket_number: str
    stage: str
    window: str
    clerk: str | None
    clerk_name: str | None
    queue: str
    matter: str | None
    matter_name: str
    channel: str
    grade: int | None
    grade_label: str
    grade_class: str  # good | mid | bad | unrated
    sub_scores: dict[str, int] | None
    comment: str | None
    requested_at: dt.datetime
    evaluated_at: dt.datetime | None
    followup_id: int | None = None


FollowUpChange = Literal["opened", "callback", "fix", "closed", "assigned", "overdue"]


class FollowUpView(BaseModel):
    id: int
    hall: str
    evaluation_id: int
    ticket_id: int
    ticket_number: str
    window: str
    clerk: str | None
    clerk_name: str | None
    grade: int | None
    grade_label: str
    comment: str | None
    opened_at: dt.datetime
    deadline: dt.date
    assignee: str | None
    status: str
    status_label: str
    overdue: bool
    callback_note: str | None
    callback_at: dt.datetime | None
    fix_note: str | None
    fix_at: dt.datetime | None
    closed_at: dt.datetime | None
    closed_by: str | None


class FollowUpEvent(BaseModel):
    type: FollowUpChange
    hall: str
    case: FollowUpView


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class EvaluationService:
    def __init__(self, config: HallConfig, db: Database, *, clock: Callable[[], dt.datetime] = _utcnow,
                 publish: Callable[[Outbox], None] | None = None) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.publish = publish or (lambda outbox: None)

    # ---- helpers -------------------------------------------------------------------------------
    def hall(self, hall_id: str) -> Hall:
        try:
            return self.config.hall(hall_id)
        except KeyError:
            raise NotFound(f"未知的大厅 {hall_id!r} (unknown hall)", code="unknown_hall") from None

    def _run(self, fn: Callable[[Session, Outbox], Any]) -> Any:
        out = Outbox()
        with self.db.write() as s:
            result = fn(s, out)
        self.publish(out)
        return result

    @staticmethod
    def has_pad(hall: Hall, window: str) -> bool:
        return any(d.kind == "evalpad" and d.window == window for d in hall.devices)

    @staticmethod
    def matter_name(hall: Hall, t: m.Ticket) -> str:
        try:
            if t.matter_id:
                return hall.matter(t.matter_id).name
            if t.bundle_id:
                return hall.bundle(t.bundle_id).name
            return hall.queue(t.queue_id).name
        except KeyError:
            return t.matter_id or t.bundle_id or t.queue_id

    def default_assignee(self, hall: Hall) -> str | None:
        if hall.evaluation.followup_assignee:
            return hall.evaluation.followup_assignee
        for u in self.config.users:
            if u.role == "manager" and (u.halls == "*" or hall.id in u.halls):
                return u.username
        return None

    def _names(self, s: Session, usernames: set[str | None]) -> dict[str, m.User]:
        names = {u for u in usernames if u}
        if not names:
            return {}
        return {u.username: u for u in s.scalars(select(m.User).where(m.User.username.in_(names)))}

    def _eval_view(self, s: Session, hall: Hall, e: Evaluation, t: m.Ticket | None = None,
                   followup_id: int | None = None) -> EvaluationView:
        t = t or s.get(m.Ticket, e.ticket_id)
        assert t is not None
        user = s.get(m.User, e.clerk) if e.clerk else None
        return EvaluationView(
            id=e.id, hall=e.hall_id, ticket_id=e.ticket_id, ticket_number=t.display, stage=e.stage,
            window=e.window, clerk=e.clerk, clerk_name=user.name if user else e.clerk, queue=e.queue_id,
            matter=e.matter_id, matter_name=self.matter_name(hall, t), channel=e.channel, grade=e.grade,
            grade_label=rules.label(e.grade), grade_class=rules.grade_class(e.grade),
            sub_scores=e.sub_scores, comment=e.comment, requested_at=e.requested_at,
            evaluated_at=e.evaluated_at, followup_id=followup_id,
        )

    def _case_view(self, s: Session, hall: Hall, c: FollowUpCase, today: dt.date | None = None) -> FollowUpView:
        e = s.get(Evaluation, c.evaluation_id)
        t = s.get(m.Ticket, c.ticket_id)
        assert e is not None and t is not None
        user = s.get(m.User, c.clerk) if c.clerk else None
        today = today or service_day(self.clock(), hall.tz)
        return FollowUpView(
            id=c.id, hall=c.hall_id, evaluation_id=c.evaluation_id, ticket_id=c.ticket_id, ticket_number=t.display,
            window=c.window, clerk=c.clerk, clerk_name=user.name if user else c.clerk, grade=e.grade,
            grade_label=rules.label(e.grade), comment=e.comment, opened_at=c.opened_at, deadline=c.deadline,
            assignee=c.assignee, status=c.status, status_label="已办结" if c.status == "closed" else "处理中",
            overdue=rules.is_overdue(c.deadline, today, c.status == "closed"),
            callback_note=c.callback_note, callback_at=c.callback_at, fix_note=c.fix_note, fix_at=c.fix_at,
            closed_at=c.closed_at, closed_by=c.closed_by,
        )

    def _expires_at(self, hall: Hall, e: Evaluation) -> dt.datetime:
        return e.requested_at + dt.timedelta(seconds=hall.evaluation.timeout_seconds + rules.LATE_GRACE_SECONDS)

    # ---- requests (after a stage ends at a window) ----------------------------------------------
    def requests_for(self, outbox: Outbox) -> Outbox:
        """Evaluation requests for the stages that the committed ``outbox`` ended at windows with a pad."""
        ended: list[tuple[Hall, TicketEventPayload]] = []
        for name, hall_id, payload, _rooms in outbox.items:
            if name != "ticket" or not isinstance(payload, TicketEventPayload) or not payload.window:
                continue
            if payload.type not in ("finished", "transferred"):
                continue
            try:
                hall = self.config.hall(hall_id)
            except KeyError:
                continue
            if self.has_pad(hall, payload.window):
                ended.append((hall, payload))
        out = Outbox()
        if not ended:
            return out
        with self.db.write() as s:
            for hall, p in ended:
                req = self._request(s, hall, p)
                if req is not None:
                    out.add("evaluation_request", hall.id, req, [f"hall:{hall.id}:window:{p.window}"])
        return out

    def _request(self, s: Session, hall: Hall, p: TicketEventPayload) -> EvaluationRequestPayload | None:
        t = s.get(m.Ticket, p.ticket.id)
        if t is None or p.window is None:
            return None
        stage, clerk, queue_id = t.stage, t.clerk, t.queue_id
        if p.type == "transferred":
            ev = s.get(m.TicketEvent, p.seq)
            data = ev.data if ev is not None else {}
            if "stage" not in data:  # moved to another queue or window within the same stage: not yet served
                return None
            queue_id = str(data.get("from_queue") or t.queue_id)
            try:
                stage = hall.queue(queue_id).stage
            except KeyError:
                return None
            ws = s.get(m.WindowState, (hall.id, p.window))
            clerk = ws.clerk if ws is not None and ws.clerk else clerk
        existing = s.scalar(select(Evaluation.id).where(Evaluation.ticket_id == t.id, Evaluation.stage == stage))
        if existing is not None:
            return None
        e = Evaluation(hall_id=hall.id, ticket_id=t.id, stage=stage, window=p.window, clerk=clerk,
                       queue_id=queue_id, matter_id=t.matter_id, channel="pad", requested_at=p.at)
        s.add(e)
        s.flush()
        user = s.get(m.User, clerk) if clerk else None
        return EvaluationRequestPayload(
            hall=hall.id, window=p.window, ticket_id=t.id, ticket_number=t.display, stage=stage,
            clerk_name=user.name if user else clerk, staff_no=(user.staff_no or None) if user else None,
            matter_name=self.matter_name(hall, t), timeout_seconds=hall.evaluation.timeout_seconds,
        )

    # ---- submissions ---------------------------------------------------------------------------------
    def _grade(self, s: Session, out: Outbox, hall: Hall, e: Evaluation, grade: int,
               sub_scores: dict[str, int] | None, comment: str | None, now: dt.datetime) -> EvaluationView:
        e.grade, e.sub_scores, e.comment, e.evaluated_at = grade, sub_scores, comment or None, now
        s.flush()
        case_id = None
        if rules.is_bad(grade):
            local_day = service_day(now, hall.tz)
            rule = hall.evaluation
            c = FollowUpCase(
                hall_id=hall.id, evaluation_id=e.id, ticket_id=e.ticket_id, window=e.window, clerk=e.clerk,
                opened_at=now, deadline=rules.add_working_days(local_day, rule.followup_working_days, rule.holidays,
                                                               rule.workdays),
                assignee=self.default_assignee(hall), status="open",
            )
            s.add(c)
            s.flush()
            case_id = c.id
            out.add("followup", hall.id, FollowUpEvent(type="opened", hall=hall.id,
                                                       case=self._case_view(s, hall, c, local_day)), [])
        view = self._eval_view(s, hall, e, followup_id=case_id)
        out.items.insert(0, ("evaluation", hall.id, view, []))
        log.info("%s: evaluation of ticket %s stage %s at window %s: %s (%s)", hall.id, e.ticket_id, e.stage,
                 e.window, rules.label(grade), e.channel)
        return view

    @staticmethod
    def _check(grade: int, sub_scores: dict[str, int] | None) -> dict[str, int] | None:
        if not rules.valid_grade(grade):
            raise BadRequest(f"评价等级应为 1-5（5 非常满意 … 1 非常不满意），收到 {grade!r}", code="bad_grade")
        try:
            return rules.clean_sub_scores(sub_scores)
        except ValueError as exc:
            raise BadRequest(str(exc), code="bad_sub_scores") from None

    def submit_pad(self, hall_id: str, window: str, grade: int, *, ticket_id: int | None = None,
                   sub_scores: dict[str, int] | None = None, comment: str | None = None) -> EvaluationView:
        hall = self.hall(hall_id)
        try:
            hall.window(window)
        except KeyError:
            raise NotFound(f"未知的窗口 {window!r} (unknown window)", code="unknown_window") from None
        scores = self._check(grade, sub_scores)

        def work(s: Session, out: Outbox) -> EvaluationView:
            now = self.clock()
            latest = s.scalar(select(Evaluation).where(
                Evaluation.hall_id == hall.id, Evaluation.window == window, Evaluation.channel == "pad")
                .order_by(Evaluation.requested_at.desc(), Evaluation.id.desc()).limit(1))
            if ticket_id is None:
                e = latest
                if e is None:
                    raise Conflict(f"{window}号窗口没有待评价的服务 (nothing to evaluate)", code="nothing_to_evaluate")
            else:
                e = s.scalar(select(Evaluation).where(
                    Evaluation.ticket_id == ticket_id, Evaluation.window == window, Evaluation.channel == "pad")
                    .order_by(Evaluation.requested_at.desc()).limit(1))
                if e is None:
                    e = self._request_on_demand(s, hall, window, ticket_id)
                    latest = e
            e = s.get(Evaluation, e.id, with_for_update=True, populate_existing=True)
            assert e is not None
            if e.evaluated_at is not None:
                raise Conflict("该服务已评价，不能重复评价 (already evaluated)", code="already_evaluated")
            if (latest is not None and latest.id != e.id) or now > self._expires_at(hall, e):
                raise Conflict("评价已超时，本次服务记为未评价 (evaluation timed out: recorded as unrated)",
                               code="evaluation_expired")
            return self._grade(s, out, hall, e, grade, scores, comment, now)

        return self._run(work)

    def _request_on_demand(self, s: Session, hall: Hall, window: str, ticket_id: int) -> Evaluation:
        """The request row was lost (e.g. a restart right after the finish): make it from the ticket."""
        t = s.get(m.Ticket, ticket_id)
        if t is None or t.hall_id != hall.id:
            raise NotFound(f"未找到票号 (no ticket {ticket_id} in this hall)", code="unknown_ticket")
        if t.status != "finished" or t.window != window or t.finished_at is None:
            raise Conflict(f"{t.display}未在{window}号窗口办结，不能评价 (not finished at this window)",
                           code="not_served_here")
        e = Evaluation(hall_id=hall.id, ticket_id=t.id, stage=t.stage, window=window, clerk=t.clerk,
                       queue_id=t.queue_id, matter_id=t.matter_id, channel="pad", requested_at=t.finished_at)
        try:
            with s.begin_nested():
                s.add(e)
                s.flush()
        except IntegrityError:
            raise Conflict("该服务已评价，不能重复评价 (already evaluated)", code="already_evaluated") from None
        return e

    def submit_online(self, token: str, grade: int, *, sub_scores: dict[str, int] | None = None,
                      comment: str | None = None) -> EvaluationView:
        scores = self._check(grade, sub_scores)

        def work(s: Session, out: Outbox) -> EvaluationView:
            now = self.clock()
            t = s.scalar(select(m.Ticket).where(m.Ticket.public_token == token))
            if t is None:
                raise NotFound("未找到该票号，请核对链接 (unknown ticket link)", code="unknown_ticket")
            hall = self.hall(t.hall_id)
            if t.status != "finished" or t.window is None or t.finished_at is None:
                raise Conflict("办结后才能评价 (you can evaluate after the service is finished)",
                               code="not_finished")
            if s.scalar(select(Evaluation.id).where(Evaluation.ticket_id == t.id,
                                                    Evaluation.stage == rules.ONLINE_STAGE)) is not None:
                raise Conflict("您已评价过本次办事，感谢您的参与 (already evaluated)", code="already_evaluated")
            e = Evaluation(hall_id=hall.id, ticket_id=t.id, stage=rules.ONLINE_STAGE, window=t.window,
                           clerk=t.clerk, queue_id=t.queue_id, matter_id=t.matter_id, channel="online",
                           requested_at=t.finished_at)
            try:
                with s.begin_nested():
                    s.add(e)
                    s.flush()
            except IntegrityError:
                raise Conflict("您已评价过本次办事，感谢您的参与 (already evaluated)", code="already_evaluated") from None
            return self._grade(s, out, hall, e, grade, scores, comment, now)

        return self._run(work)

    def online_status(self, token: str) -> tuple[bool, bool]:
        """(can evaluate now, already evaluated) for the ticket's public page."""
        with self.db.read() as s:
            t = s.scalar(select(m.Ticket).where(m.Ticket.public_token == token))
            if t is None:
                raise NotFound("未找到该票号，请核对链接 (unknown ticket link)", code="unknown_ticket")
            done = s.scalar(select(Evaluation.id).where(Evaluation.ticket_id == t.id,
                                                        Evaluation.stage == rules.ONLINE_STAGE)) is not None
            return (t.status == "finished" and not done), done

    # ---- reading -------------------------------------------------------------------------------------
    def list_evaluations(self, hall_id: str, *, start: dt.datetime | None = None, end: dt.datetime | None = None,
                         window: str | None = None, clerk: str | None = None, only_rated: bool = False,
                         limit: int = 500) -> list[EvaluationView]:
        hall = self.hall(hall_id)
        with self.db.read() as s:
            q = select(Evaluation, m.Ticket).join(m.Ticket, m.Ticket.id == Evaluation.ticket_id).where(
                Evaluation.hall_id == hall.id)
            if start is not None:
                q = q.where(Evaluation.requested_at >= start)
            if end is not None:
                q = q.where(Evaluation.requested_at < end)
            if window:
                q = q.where(Evaluation.window == window)
            if clerk:
                q = q.where(Evaluation.clerk == clerk)
            if only_rated:
                q = q.where(Evaluation.grade.is_not(None))
            rows = s.execute(q.order_by(Evaluation.requested_at.desc()).limit(limit)).all()
            cases = dict(s.execute(select(FollowUpCase.evaluation_id, FollowUpCase.id).where(
                FollowUpCase.evaluation_id.in_([e.id for e, _ in rows]))).all()) if rows else {}
            return [self._eval_view(s, hall, e, t, cases.get(e.id)) for e, t in rows]

    # ---- follow-up -----------------------------------------------------------------------------------
    def list_cases(self, hall_id: str, *, status: str | None = None, overdue: bool | None = None,
                   assignee: str | None = None, clerk: str | None = None, window: str | None = None,
                   limit: int = 500) -> list[FollowUpView]:
        hall = self.hall(hall_id)
        today = service_day(self.clock(), hall.tz)
        with self.db.read() as s:
            q = select(FollowUpCase).where(FollowUpCase.hall_id == hall.id)
            if status:
                q = q.where(FollowUpCase.status == status)
            if assignee:
                q = q.where(FollowUpCase.assignee == assignee)
            if clerk:
                q = q.where(FollowUpCase.clerk == clerk)
            if window:
                q = q.where(FollowUpCase.window == window)
            if overdue is True:
                q = q.where(FollowUpCase.status == "open", FollowUpCase.deadline < today)
            cases = s.scalars(q.order_by(FollowUpCase.deadline, FollowUpCase.id).limit(limit)).all()
            views = [self._case_view(s, hall, c, today) for c in cases]
        if overdue is False:
            views = [v for v in views if not v.overdue]
        return views

    def case(self, hall_id: str, case_id: int) -> FollowUpView:
        hall = self.hall(hall_id)
        with self.db.read() as s:
            c = s.get(FollowUpCase, case_id)
            if c is None or c.hall_id != hall.id:
                raise NotFound(f"没有回访单 {case_id} (no such follow-up case)", code="unknown_case")
            return self._case_view(s, hall, c)

    def _change(self, hall_id: str, case_id: int, kind: FollowUpChange,
                fn: Callable[[FollowUpCase, dt.datetime], None]) -> FollowUpView:
        hall = self.hall(hall_id)

        def work(s: Session, out: Outbox) -> FollowUpView:
            now = self.clock()
            c = s.get(FollowUpCase, case_id, with_for_update=True)
            if c is None or c.hall_id != hall.id:
                raise NotFound(f"没有回访单 {case_id} (no such follow-up case)", code="unknown_case")
            if c.status == "closed":
                raise Conflict("回访单已办结，不能修改 (case is closed)", code="case_closed")
            fn(c, now)
            s.flush()
            view = self._case_view(s, hall, c)
            out.add("followup", hall.id, FollowUpEvent(type=kind, hall=hall.id, case=view), [])
            return view

        return self._run(work)

    @staticmethod
    def _note(note: str, what: str) -> str:
        note = (note or "").strip()
        if not note:
            raise BadRequest(f"请填写{what}情况 (a note is required)", code="note_required")
        return note

    def record_callback(self, hall_id: str, case_id: int, note: str, actor: str) -> FollowUpView:
        note = self._note(note, "回访")

        def fn(c: FollowUpCase, now: dt.datetime) -> None:
            c.callback_note, c.callback_at = note, now
            c.assignee = c.assignee or actor

        return self._change(hall_id, case_id, "callback", fn)

    def record_fix(self, hall_id: str, case_id: int, note: str, actor: str) -> FollowUpView:
        note = self._note(note, "整改")

        def fn(c: FollowUpCase, now: dt.datetime) -> None:
            c.fix_note, c.fix_at = note, now

        return self._change(hall_id, case_id, "fix", fn)

    def close(self, hall_id: str, case_id: int, actor: str) -> FollowUpView:
        def fn(c: FollowUpCase, now: dt.datetime) -> None:
            if not c.callback_at:
                raise Conflict("请先记录回访核实情况再办结 (record the call-back first)", code="callback_required")
            if not c.fix_at:
                raise Conflict("请先记录整改情况再办结 (record the fix first)", code="fix_required")
            c.status, c.closed_at, c.closed_by = "closed", now, actor

        return self._change(hall_id, case_id, "closed", fn)

    def assign(self, hall_id: str, case_id: int, assignee: str) -> FollowUpView:
        hall = self.hall(hall_id)
        managers = {u.username for u in self.config.users if u.role in ("manager", "admin")
                    and (u.halls == "*" or hall.id in u.halls)} | {"admin"}
        if assignee not in managers:
            raise BadRequest(f"{assignee!r} 不是本大厅的管理人员 (not a manager of this hall)", code="not_a_manager")

        def fn(c: FollowUpCase, now: dt.datetime) -> None:
            c.assignee = assignee

        return self._change(hall_id, case_id, "assigned", fn)

    def sweep_overdue(self, hall_id: str) -> int:
        """Alert once (across server processes: a conditional update) for each case past its deadline."""
        hall = self.hall(hall_id)

        def work(s: Session, out: Outbox) -> int:
            now = self.clock()
            today = service_day(now, hall.tz)
            ids = list(s.scalars(select(FollowUpCase.id).where(
                FollowUpCase.hall_id == hall.id, FollowUpCase.status == "open", FollowUpCase.deadline < today,
                FollowUpCase.overdue_alerted_at.is_(None))))
            n = 0
            for cid in ids:
                hit = s.execute(update(FollowUpCase).where(FollowUpCase.id == cid,
                                                           FollowUpCase.overdue_alerted_at.is_(None))
                                .values(overdue_alerted_at=now).execution_options(synchronize_session=False)).rowcount
                if hit:
                    c = s.get(FollowUpCase, cid, populate_existing=True)
                    assert c is not None
                    out.add("followup", hall.id, FollowUpEvent(type="overdue", hall=hall.id,
                                                               case=self._case_view(s, hall, c, today)), [])
                    n += 1
            if n:
                log.warning("%s: %d follow-up case(s) past their deadline", hall.id, n)
            return n

        return self._run(work)


class EvaluationHook:
    """Sits between the queue engine and the live publisher: passes every committed outbox on, then
    adds the evaluation requests for stages that ended at a window with a pad."""

    def __init__(self, publish: Callable[[Outbox], None], evaluations: EvaluationService | None) -> None:
        self.publish = publish
        self.evaluations = evaluations

    def __call__(self, outbox: Outbox) -> None:
        self.publish(outbox)
        if self.evaluations is None or not any(name == "ticket" for name, *_ in outbox.items):
            return
        try:
            extra = self.evaluations.requests_for(outbox)
        except Exception:  # an evaluation request must never fail the clerk's finish
            log.exception("could not create evaluation requests")
            return
        if extra.items:
            self.publish(extra)

"""REST API of 好差评: pad and online submissions, the evaluation list and the follow-up cases."""
from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from .api import ERRORS, HallPath, TokenPath, bearer, principal
from .auth import EVALUATE, MANAGE
from .evaluation import EvaluationService, EvaluationView, FollowUpView
from .rules.numbering import service_day

evaluation_api = APIBlueprint("evaluation_api", __name__, url_prefix="/api/v1")
t_eval = Tag(name="evaluations", description="好差评与差评回访整改")


def evaluations() -> EvaluationService:
    return current_app.extensions["hall"]["evaluations"]


class SubScores(BaseModel):
    efficiency: int | None = Field(default=None, ge=1, le=5, description="服务效率 1-5")
    level: int | None = Field(default=None, ge=1, le=5, description="服务水平 1-5")
    attitude: int | None = Field(default=None, ge=1, le=5, description="服务态度 1-5")

    def as_dict(self) -> dict[str, int] | None:
        d = {k: v for k, v in self.model_dump().items() if v is not None}
        return d or None


class PadEvaluationBody(BaseModel):
    window: str = Field(min_length=1, max_length=16)
    ticket_id: int | None = Field(default=None, description="default: the window's latest service awaiting evaluation")
    grade: int = Field(ge=1, le=5, description="5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意")
    sub_scores: SubScores | None = None
    comment: str | None = Field(default=None, max_length=500)


class OnlineEvaluationBody(BaseModel):
    grade: int = Field(ge=1, le=5, description="5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意")
    sub_scores: SubScores | None = None
    comment: str | None = Field(default=None, max_length=500)


class OnlineEvaluationResponse(BaseModel):
    """What the citizen's page is told back: no clerk identity beyond what the pad showed."""

    id: int
    ticket_number: str
    stage: str
    channel: str
    grade: int | None
    grade_label: str
    evaluated_at: dt.datetime | None


class OnlineStatus(BaseModel):
    can_evaluate: bool
    evaluated: bool


class EvaluationQuery(BaseModel):
    day: dt.date | None = Field(default=None, description="service day (hall time); default today")
    window: str | None = None
    clerk: str | None = None
    rated: bool = False


class EvaluationList(BaseModel):
    evaluations: list[EvaluationView]


class CasePath(BaseModel):
    hall: str
    case_id: int


class CaseQuery(BaseModel):
    status: Literal["open", "closed"] | None = None
    overdue: bool | None = None
    assignee: str | None = None
    clerk: str | None = None
    window: str | None = None


class CaseList(BaseModel):
    cases: list[FollowUpView]


class NoteBody(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


class AssignBody(BaseModel):
    assignee: str = Field(min_length=1, max_length=32)


@evaluation_api.post("/halls/<hall>/evaluations", tags=[t_eval], security=bearer,
                     responses={201: EvaluationView, **ERRORS})
def submit_pad(path: HallPath, body: PadEvaluationBody):  # type: ignore[no-untyped-def]
    """评价器提交评价（仅评价器设备令牌；工作人员不能代评）"""
    p = principal()
    p.require(EVALUATE, path.hall, body.window)
    view = evaluations().submit_pad(path.hall, body.window, body.grade, ticket_id=body.ticket_id,
                                    sub_scores=body.sub_scores.as_dict() if body.sub_scores else None,
                                    comment=body.comment)
    return view.model_dump(mode="json"), 201


@evaluation_api.get("/halls/<hall>/evaluations", tags=[t_eval], security=bearer,
                    responses={200: EvaluationList, **ERRORS})
def list_evaluations(path: HallPath, query: EvaluationQuery):  # type: ignore[no-untyped-def]
    """某日的评价（管理人员）"""
    principal().require(MANAGE, path.hall)
    svc = evaluations()
    hall = svc.hall(path.hall)
    day = query.day or service_day(svc.clock(), hall.tz)
    start = dt.datetime.combine(day, dt.time(0), hall.tz).astimezone(dt.timezone.utc)
    views = svc.list_evaluations(path.hall, start=start, end=start + dt.timedelta(days=1), window=query.window,
                                 clerk=query.clerk, only_rated=query.rated)
    return {"evaluations": [v.model_dump(mode="json") for v in views]}


@evaluation_api.get("/t/<token>/evaluation", tags=[t_eval], responses={200: OnlineStatus, **ERRORS})
def online_status(path: TokenPath):  # type: ignore[no-untyped-def]
    """扫码评价：是否可以评价"""
    can, done = evaluations().online_status(path.token)
    return {"can_evaluate": can, "evaluated": done}


@evaluation_api.post("/t/<token>/evaluation", tags=[t_eval], responses={201: OnlineEvaluationResponse, **ERRORS})
def submit_online(path: TokenPath, body: OnlineEvaluationBody):  # type: ignore[no-untyped-def]
    """扫码评价（一事一评，办结后一次）"""
    view = evaluations().submit_online(path.token, body.grade,
                                       sub_scores=body.sub_scores.as_dict() if body.sub_scores else None,
                                       comment=body.comment)
    return OnlineEvaluationResponse(**view.model_dump(include=set(OnlineEvaluationResponse.model_fields))
                                    ).model_dump(mode="json"), 201


@evaluation_api.get("/halls/<hall>/followups", tags=[t_eval], security=bearer, responses={200: CaseList, **ERRORS})
def list_cases(path: HallPath, query: CaseQuery):  # type: ignore[no-untyped-def]
    """差评回访单列表（可按状态、是否逾期、负责人、工作人员、窗口筛选）"""
    principal().require(MANAGE, path.hall)
    cases = evaluations().list_cases(path.hall, status=query.status, overdue=query.overdue,
                                     assignee=query.assignee, clerk=query.clerk, window=query.window)
    return {"cases": [c.model_dump(mode="json") for c in cases]}


@evaluation_api.get("/halls/<hall>/followups/<int:case_id>", tags=[t_eval], security=bearer,
                    responses={200: FollowUpView, **ERRORS})
def get_case(path: CasePath):  # type: ignore[no-untyped-def]
    principal().require(MANAGE, path.hall)
    return evaluations().case(path.hall, path.case_id).model_dump(mode="json")


@evaluation_api.post("/halls/<hall>/followups/<int:case_id>/callback", tags=[t_eval], security=bearer,
                     responses={200: FollowUpView, **ERRORS})
def case_callback(path: CasePath, body: NoteBody):  # type: ignore[no-untyped-def]
    """记录回访核实"""
    p = principal()
    p.require(MANAGE, path.hall)
    return evaluations().record_callback(path.hall, path.case_id, body.note, p.name).model_dump(mode="json")


@evaluation_api.post("/halls/<hall>/followups/<int:case_id>/fix", tags=[t_eval], security=bearer,
                     responses={200: FollowUpView, **ERRORS})
def case_fix(path: CasePath, body: NoteBody):  # type: ignore[no-untyped-def]
    """记录整改情况"""
    p = principal()
    p.require(MANAGE, path.hall)
    return evaluations().record_fix(path.hall, path.case_id, body.note, p.name).model_dump(mode="json")


@evaluation_api.post("/halls/<hall>/followups/<int:case_id>/close", tags=[t_eval], security=bearer,
                     responses={200: FollowUpView, **ERRORS})
def case_close(path: CasePath):  # type: ignore[no-untyped-def]
    """办结回访单（须已记录回访和整改）"""
    p = principal()
    p.require(MANAGE, path.hall)
    return evaluations().close(path.hall, path.case_id, p.name).model_dump(mode="json")


@evaluation_api.post("/halls/<hall>/followups/<int:case_id>/assign", tags=[t_eval], security=bearer,
                     responses={200: FollowUpView, **ERRORS})
def case_assign(path: CasePath, body: AssignBody):  # type: ignore[no-untyped-def]
    """指派负责人"""
    principal().require(MANAGE, path.hall)
    return evaluations().assign(path.hall, path.case_id, body.assignee).model_dump(mode="json")

"""REST API under /api/v1 (flask-openapi3: pydantic validates requests and responses and the OpenAPI
document is served at /api/v1/openapi.json)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from flask import current_app, g, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from .auth import ADMIN, CANCEL, ISSUE, MANAGE, OPERATE, READ, REACTIVATE, Auth, Principal
from .errors import BadRequest, Forbidden
from .events import SnapshotPayload, TicketView, WindowPayload
from .config import Hall
from .service import IssuedTicket, QueueService

bearer = [{"bearer": []}]
api = APIBlueprint("api", __name__, url_prefix="/api/v1")
t_auth, t_hall, t_tickets, t_windows, t_admin = (
    Tag(name="auth", description="登录与账号"), Tag(name="halls", description="大厅与队列"),
    Tag(name="tickets", description="取号与票号"), Tag(name="windows", description="窗口操作"),
    Tag(name="admin", description="设备与系统"),
)


def service() -> QueueService:
    return current_app.extensions["hall"]["service"]


def auth() -> Auth:
    return current_app.extensions["hall"]["auth"]


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def principal() -> Principal:
    if "principal" not in g:
        g.principal = auth().principal(bearer_token())
    return g.principal


# ---- models -------------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class HallPath(BaseModel):
    hall: str


class TicketPath(BaseModel):
    hall: str
    ticket_id: int


class WindowPath(BaseModel):
    hall: str
    window: str


class TokenPath(BaseModel):
    token: str = Field(min_length=8, max_length=64)


class DevicePath(BaseModel):
    hall: str
    device: str


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    token: str
    username: str
    name: str
    role: str
    must_change_password: bool


class PasswordBody(BaseModel):
    old_password: str
    new_password: str = Field(min_length=8, max_length=256)


class MeResponse(BaseModel):
    kind: str
    name: str
    role: str
    scopes: list[str]
    halls: list[str] | None
    window: str | None
    must_change_password: bool


class OkResponse(BaseModel):
    ok: bool = True


class IssueBody(BaseModel):
    request_id: str = Field(min_length=8, max_length=80, description="client-chosen id; a retry with the same id returns the same ticket")
    channel: Literal["kiosk", "guide", "appointment", "online"] = "kiosk"
    queue: str | None = None
    matter: str | None = None
    bundle: str | None = None
    id_number: str | None = Field(default=None, description="18-digit ID number; only a keyed hash and a masked form are stored")
    priority_class: str | None = None
    appointment_at: dt.datetime | None = None
    note: str | None = Field(default=None, max_length=200, description="reason recorded by the guide desk")


class IssueResponse(BaseModel):
    ticket: TicketView
    hall: str
    people_ahead: int
    estimated_wait_seconds: float
    estimated_wait_minutes: int
    status_url: str
    person_masked: str | None
    replayed: bool

    @classmethod
    def of(cls, hall: Hall, r: IssuedTicket) -> "IssueResponse":
        """The answer to an issue (or a check-in): the ticket, its place and wait, its mobile page."""
        return cls(ticket=r.ticket, hall=r.hall, people_ahead=r.people_ahead,
                   estimated_wait_seconds=r.estimated_wait_seconds,
                   estimated_wait_minutes=int(round(r.estimated_wait_seconds / 60)),
                   status_url=hall.ticket_url(r.public_token), person_masked=r.person_masked, replayed=r.replayed)


class TicketResponse(BaseModel):
    ticket: TicketView
    people_ahead: int
    estimated_wait_seconds: float


class PublicTicketResponse(TicketResponse):
    hall: str
    hall_name: str
    timezone: str = Field(description="the hall's time zone (IANA), for showing times on the hall's clock")


class CallResponse(BaseModel):
    ticket: TicketView | None
    message: str


class CallBody(BaseModel):
    ticket_id: int


class FinishBody(BaseModel):
    outcome: Literal["instant", "promised", "returned"] = Field(description="instant 即办 / promised 承诺 / returned 退回")
    case_no: str | None = Field(default=None, max_length=64)


class TransferBody(BaseModel):
    to_queue: str | None = None
    to_window: str | None = None
    next_stage: bool = False


class PauseBody(BaseModel):
    reason: str = Field(min_length=1, max_length=64)


class CancelBody(BaseModel):
    reason: str = Field(default="", max_length=200)


class QueuesBody(BaseModel):
    queues: list[str] | None


class WindowList(BaseModel):
    windows: list[WindowPayload]


class HallSummary(BaseModel):
    id: str
    name: str


class HallList(BaseModel):
    halls: list[HallSummary]


class HallDetail(BaseModel):
    id: str
    name: str
    timezone: str
    zones: list[dict[str, Any]]
    queues: list[dict[str, Any]]
    matters: list[dict[str, Any]]
    bundles: list[dict[str, Any]]
    windows: list[dict[str, Any]]
    priority_classes: list[dict[str, Any]]
    elderly_age: int


class DeviceTokenResponse(BaseModel):
    device: str
    kind: str
    token: str


ERRORS = {400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse}


# ---- auth ---------------------------------------------------------------------------------------
@api.post("/auth/login", tags=[t_auth], responses={200: LoginResponse, **ERRORS})
def login(body: LoginBody):  # type: ignore[no-untyped-def]
    token, user = auth().login(body.username, body.password)
    return LoginResponse(token=token, username=user.username, name=user.name, role=user.role,
                         must_change_password=user.must_change_password).model_dump()


@api.post("/auth/logout", tags=[t_auth], security=bearer, responses={200: OkResponse, **ERRORS})
def logout():  # type: ignore[no-untyped-def]
    principal()
    auth().logout(bearer_token() or "")
    return {"ok": True}


@api.post("/auth/password", tags=[t_auth], security=bearer, responses={200: OkResponse, **ERRORS})
def change_password(body: PasswordBody):  # type: ignore[no-untyped-def]
    auth().change_password(principal(), body.old_password, body.new_password)
    return {"ok": True}


@api.get("/auth/me", tags=[t_auth], security=bearer, responses={200: MeResponse, **ERRORS})
def me():  # type: ignore[no-untyped-def]
    p = principal()
    return MeResponse(kind=p.kind, name=p.name, role=p.role, scopes=sorted(p.scopes),
                      halls=list(p.halls) if p.halls is not None else None, window=p.window,
                      must_change_password=p.must_change_password).model_dump()


# ---- halls (public: what a hall offers is posted on its walls anyway) -------------------------------
@api.get("/halls", tags=[t_hall], responses={200: HallList})
def halls():  # type: ignore[no-untyped-def]
    return {"halls": [{"id": h.id, "name": h.name} for h in service().config.halls]}


@api.get("/halls/<hall>", tags=[t_hall], responses={200: HallDetail, **ERRORS})
def hall_detail(path: HallPath):  # type: ignore[no-untyped-def]
    h = service().hall(path.hall)
    return HallDetail(
        id=h.id, name=h.name, timezone=h.timezone,
        zones=[z.model_dump() for z in h.zones],
        queues=[{"id": q.id, "prefix": q.prefix, "name": q.name, "zone": q.zone, "stage": q.stage,
                 "target_wait_minutes": q.target_wait_minutes, "daily_cap": q.daily_cap} for q in h.queues],
        matters=[m.model_dump() for m in h.matters],
        bundles=[b.model_dump() for b in h.bundles],
        windows=[{"number": w.number, "name": w.name or f"{w.number}号窗口", "zone": w.zone, "kind": w.kind,
                  "queues": h.window_queues(w.number)} for w in h.windows],
        priority_classes=[p.model_dump() for p in h.priority_classes],
        elderly_age=h.elderly_age,
    ).model_dump(mode="json")


@api.get("/halls/<hall>/snapshot", tags=[t_hall], responses={200: SnapshotPayload, **ERRORS})
def snapshot(path: HallPath):  # type: ignore[no-untyped-def]
    return service().snapshot(path.hall).model_dump(mode="json")


# ---- tickets ------------------------------------------------------------------------------------
def issue_action(svc: QueueService, p: Principal, hall: str, body: IssueBody) -> tuple[str, int]:
    """Issue a ticket for ``p``: the answer's JSON text and its status (201; 200 for a replayed request
    id). Answered by lean_routes.LeanRoutes before Flask, or by the view below."""
    p.require(ISSUE, hall)
    if p.kind == "device" and body.channel not in ("kiosk", "appointment"):
        raise Forbidden(f"自助取号机只能以 kiosk 或 appointment 渠道取号，收到 {body.channel!r}")
    if body.channel == "guide" and p.kind != "user":
        raise Forbidden("导服台取号需要工作人员登录 (guide desk tickets need a staff sign-in)")
    r = svc.issue(hall, request_id=body.request_id, channel=body.channel, queue=body.queue,
                  matter=body.matter, bundle=body.bundle, id_number=body.id_number,
                  priority_class=body.priority_class, appointment_at=body.appointment_at, note=body.note,
                  actor=f"{p.kind}:{p.name}")
    return IssueResponse.of(svc.hall(hall), r).model_dump_json(), (200 if r.replayed else 201)


# validate_response=False: the answer is built as an IssueResponse, validating it again costs a
# JSON round trip on the busiest endpoint
@api.post("/halls/<hall>/tickets", tags=[t_tickets], security=bearer, responses={201: IssueResponse, **ERRORS},
          validate_response=False)
def issue_ticket(path: HallPath, body: IssueBody):  # type: ignore[no-untyped-def]
    answer, status = issue_action(service(), principal(), path.hall, body)
    return answer, status, {"Content-Type": "application/json"}


@api.get("/halls/<hall>/tickets/<int:ticket_id>", tags=[t_tickets], security=bearer,
         responses={200: TicketResponse, **ERRORS})
def get_ticket(path: TicketPath):  # type: ignore[no-untyped-def]
    principal().require(READ, path.hall)
    t, ahead, wait = service().ticket(path.hall, path.ticket_id)
    return TicketResponse(ticket=t, people_ahead=ahead, estimated_wait_seconds=wait).model_dump(mode="json")


@api.post("/halls/<hall>/tickets/<int:ticket_id>/cancel", tags=[t_tickets], security=bearer,
          responses={200: TicketView, **ERRORS})
def cancel_ticket(path: TicketPath, body: CancelBody):  # type: ignore[no-untyped-def]
    p = principal()
    p.require(CANCEL, path.hall)
    return service().cancel(path.hall, path.ticket_id, body.reason, actor=f"{p.kind}:{p.name}").model_dump(mode="json")


@api.post("/halls/<hall>/tickets/<int:ticket_id>/reactivate", tags=[t_tickets], security=bearer,
          responses={200: TicketView, **ERRORS})
def reactivate_ticket(path: TicketPath):  # type: ignore[no-untyped-def]
    p = principal()
    p.require(REACTIVATE, path.hall)
    return service().reactivate(path.hall, path.ticket_id, actor=f"{p.kind}:{p.name}").model_dump(mode="json")


@api.get("/t/<token>", tags=[t_tickets], responses={200: PublicTicketResponse, **ERRORS})
def public_ticket(path: TokenPath):  # type: ignore[no-untyped-def]
    svc = service()
    hall_id, t, ahead, wait = svc.ticket_by_token(path.token)
    hall = svc.hall(hall_id)
    return PublicTicketResponse(hall=hall_id, hall_name=hall.name, timezone=hall.timezone, ticket=t,
                                people_ahead=ahead, estimated_wait_seconds=wait).model_dump(mode="json")


# ---- windows ------------------------------------------------------------------------------------
@api.get("/halls/<hall>/windows", tags=[t_windows], security=bearer, responses={200: WindowList, **ERRORS})
def windows(path: HallPath):  # type: ignore[no-untyped-def]
    principal().require(READ, path.hall)
    return {"windows": [w.model_dump(mode="json") for w in service().window_views(path.hall)]}


@api.get("/halls/<hall>/windows/<window>", tags=[t_windows], security=bearer, responses={200: WindowPayload, **ERRORS})
def window(path: WindowPath):  # type: ignore[no-untyped-def]
    principal().require(READ, path.hall)
    return service().window_view(path.hall, path.window).model_dump(mode="json")


def _operator(path: WindowPath) -> Principal:
    p = principal()
    p.require(OPERATE, path.hall, path.window)
    return p


@api.post("/halls/<hall>/windows/<window>/sign-in", tags=[t_windows], security=bearer,
          responses={200: WindowPayload, **ERRORS})
def sign_in(path: WindowPath):  # type: ignore[no-untyped-def]
    p = _operator(path)
    if p.kind != "user":
        raise Forbidden("签到需要工作人员本人登录 (sign-in needs a staff account)")
    return service().sign_in(path.hall, path.window, p.name).model_dump(mode="json")


@api.post("/halls/<hall>/windows/<window>/sign-out", tags=[t_windows], security=bearer,
          responses={200: WindowPayload, **ERRORS})
def sign_out(path: WindowPath):  # type: ignore[no-untyped-def]
    p = _operator(path)
    return service().sign_out(path.hall, path.window, p.clerk).model_dump(mode="json")


@api.post("/halls/<hall>/windows/<window>/pause", tags=[t_windows], security=bearer,
          responses={200: WindowPayload, **ERRORS})
def pause(path: WindowPath, body: PauseBody):  # type: ignore[no-untyped-def]
    p = _operator(path)
    return service().pause(path.hall, path.window, body.reason, p.clerk).model_dump(mode="json")


@api.post("/halls/<hall>/windows/<window>/resume", tags=[t_windows], security=bearer,
          responses={200: WindowPayload, **ERRORS})
def resume(path: WindowPath):  # type: ignore[no-untyped-def]
    p = _operator(path)
    return service().resume(path.hall, path.window, p.clerk).model_dump(mode="json")


# The clerk's most frequent actions: answered by lean_routes.LeanRoutes before Flask sees the request
# (the views below declare them in the OpenAPI document and answer when that is switched off).
WINDOW_ACTIONS = ("call-next", "start", "finish", "recall", "no-show")


def window_action(svc: QueueService, p: Principal, hall: str, window: str, action: str,
                  body: FinishBody | None = None) -> dict[str, Any]:
    """Run one of WINDOW_ACTIONS for ``p`` and return its answer's JSON."""
    p.require(OPERATE, hall, window)
    actor = f"{p.kind}:{p.name}"
    if action == "call-next":
        t = svc.call_next(hall, window, p.clerk, actor=actor)
        msg = f"请{t.number}号到{window}号窗口办理" if t else "当前没有等候的号"
        return CallResponse(ticket=t, message=msg).model_dump(mode="json")
    if action == "finish":
        assert body is not None
        return svc.finish(hall, window, body.outcome, body.case_no, p.clerk, actor=actor).model_dump(mode="json")
    fn = {"start": svc.start, "recall": svc.recall, "no-show": svc.no_show}[action]
    return fn(hall, window, p.clerk, actor=actor).model_dump(mode="json")


@api.post("/halls/<hall>/windows/<window>/call-next", tags=[t_windows], security=bearer,
          responses={200: CallResponse, **ERRORS})
def call_next(path: WindowPath):  # type: ignore[no-untyped-def]
    return window_action(service(), principal(), path.hall, path.window, "call-next")


@api.post("/halls/<hall>/windows/<window>/call", tags=[t_windows], security=bearer,
          responses={200: CallResponse, **ERRORS})
def call_ticket(path: WindowPath, body: CallBody):  # type: ignore[no-untyped-def]
    p = _operator(path)
    t = service().call_ticket(path.hall, path.window, body.ticket_id, p.clerk, actor=f"{p.kind}:{p.name}")
    return CallResponse(ticket=t, message=f"请{t.number}号到{path.window}号窗口办理").model_dump(mode="json")


def _simple(action: str):  # type: ignore[no-untyped-def]
    def view(path: WindowPath):  # type: ignore[no-untyped-def]
        return window_action(service(), principal(), path.hall, path.window, action)

    view.__name__ = f"window_{action.replace('-', '_')}"
    view.__doc__ = {"recall": "重呼当前号", "start": "开始办理当前号", "no-show": "当前号标记过号"}[action]
    return view


for _action in ("recall", "start", "no-show"):
    api.post(f"/halls/<hall>/windows/<window>/{_action}", tags=[t_windows], security=bearer,
             responses={200: TicketView, **ERRORS})(_simple(_action))


@api.post("/halls/<hall>/windows/<window>/finish", tags=[t_windows], security=bearer,
          responses={200: TicketView, **ERRORS})
def finish(path: WindowPath, body: FinishBody):  # type: ignore[no-untyped-def]
    return window_action(service(), principal(), path.hall, path.window, "finish", body)


@api.post("/halls/<hall>/windows/<window>/transfer", tags=[t_windows], security=bearer,
          responses={200: TicketView, **ERRORS})
def transfer(path: WindowPath, body: TransferBody):  # type: ignore[no-untyped-def]
    p = _operator(path)
    return service().transfer(path.hall, path.window, to_queue=body.to_queue, to_window=body.to_window,
                              next_stage=body.next_stage, clerk=p.clerk,
                              actor=f"{p.kind}:{p.name}").model_dump(mode="json")


@api.put("/halls/<hall>/windows/<window>/queues", tags=[t_windows], security=bearer,
         responses={200: WindowPayload, **ERRORS})
def window_queues(path: WindowPath, body: QueuesBody):  # type: ignore[no-untyped-def]
    principal().require(MANAGE, path.hall)
    return service().set_window_queues(path.hall, path.window, body.queues).model_dump(mode="json")


# ---- admin --------------------------------------------------------------------------------------
@api.post("/halls/<hall>/devices/<device>/token", tags=[t_admin], security=bearer,
          responses={200: DeviceTokenResponse, **ERRORS})
def device_token(path: DevicePath):  # type: ignore[no-untyped-def]
    principal().require(ADMIN, path.hall)
    hall = service().hall(path.hall)
    try:
        dev = hall.device(path.device)
    except KeyError:
        raise BadRequest(f"大厅配置中没有设备 {path.device!r} (unknown device)", code="unknown_device") from None
    try:
        token = auth().device_token(path.hall, path.device)
    except ValueError as exc:
        raise BadRequest(str(exc), code="device_needs_no_token") from None
    return DeviceTokenResponse(device=dev.id, kind=dev.kind, token=token).model_dump()

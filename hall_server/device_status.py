"""Device health as reported by kiosks (their printer and reader) and the device gateway (boards,
caller pads, evaluation pads, voice). The server keeps the last report per device, lists every
configured device with it, and pushes a ``device`` event to the hall and its managers when a device's
state or detail changes. A kiosk may report only itself; a gateway any device of its hall."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy import select

from .api import ERRORS, HallPath, bearer, principal, service
from .auth import DEVICE_REPORT, READ
from .device_status_models import DeviceStatus
from .errors import BadRequest, Forbidden
from .events import Outbox

State = Literal["online", "degraded", "offline"]
STATE_LABELS = {"online": "正常", "degraded": "故障降级", "offline": "离线", "unknown": "未上报"}
# A device not heard of for this long is flagged stale: its reporter should re-send every 30 s.
STALE_AFTER = dt.timedelta(seconds=120)

devices_api = APIBlueprint("devices", __name__, url_prefix="/api/v1")
t_devices = Tag(name="devices", description="设备状态")


class DeviceReport(BaseModel):
    device: str = Field(min_length=1, max_length=64)
    state: State
    detail: str | None = Field(default=None, max_length=200)
    parts: dict[str, str] = Field(default_factory=dict, max_length=16)


class StatusBody(BaseModel):
    devices: list[DeviceReport] = Field(min_length=1, max_length=500)


class DeviceView(BaseModel):
    hall: str
    device: str
    kind: str
    window: str | None = None
    state: Literal["online", "degraded", "offline", "unknown"]
    state_label: str
    detail: str | None = None
    parts: dict[str, Any] = Field(default_factory=dict)
    reporter: str | None = None
    reported_at: dt.datetime | None = None
    stale: bool = False


class DeviceList(BaseModel):
    hall: str
    devices: list[DeviceView]


def _view(hall_id: str, dev: Any, row: DeviceStatus | None, now: dt.datetime) -> DeviceView:
    if row is None:
        return DeviceView(hall=hall_id, device=dev.id, kind=dev.kind, window=dev.window, state="unknown",
                          state_label=STATE_LABELS["unknown"])
    return DeviceView(hall=hall_id, device=dev.id, kind=dev.kind, window=dev.window, state=row.state,
                      state_label=STATE_LABELS[row.state], detail=row.detail, parts=row.parts or {},
                      reporter=row.reporter, reported_at=row.reported_at,
                      stale=now - row.reported_at > STALE_AFTER)


def list_devices(hall_id: str) -> DeviceList:
    svc = service()
    hall = svc.hall(hall_id)
    with svc.db.read() as s:
        rows = {r.device_id: r for r in s.scalars(select(DeviceStatus).where(DeviceStatus.hall_id == hall_id))}
    now = svc.clock()
    return DeviceList(hall=hall_id, devices=[_view(hall_id, d, rows.get(d.id), now) for d in hall.devices])


@devices_api.get("/halls/<hall>/devices", tags=[t_devices], security=bearer, responses={200: DeviceList, **ERRORS})
def get_devices(path: HallPath):  # type: ignore[no-untyped-def]
    """Every configured device of the hall with its last reported state (``unknown`` if never reported)."""
    principal().require(READ, path.hall)
    return list_devices(path.hall).model_dump(mode="json")


@devices_api.post("/halls/<hall>/devices/status", tags=[t_devices], security=bearer,
                  responses={200: DeviceList, **ERRORS})
def post_status(path: HallPath, body: StatusBody):  # type: ignore[no-untyped-def]
    """Report the state of one or more devices. Sends a ``device`` event for each change."""
    who = principal()
    who.require(DEVICE_REPORT, path.hall)
    svc = service()
    hall = svc.hall(path.hall)
    configured = {d.id: d for d in hall.devices}
    for rep in body.devices:
        if rep.device not in configured:
            raise BadRequest(f"大厅配置中没有设备 {rep.device!r} (unknown device)", code="unknown_device")
        if who.kind == "device" and who.role != "gateway" and rep.device != who.name:
            raise Forbidden(f"设备 {who.name!r} 只能上报自身状态 (a {who.role} reports only itself)")
    now = svc.clock()
    outbox = Outbox()
    views = []
    with svc.db.write() as s:
        for rep in body.devices:
            row = s.get(DeviceStatus, (path.hall, rep.device))
            changed = row is None or row.state != rep.state or row.detail != rep.detail or (row.parts or {}) != rep.parts
            if row is None:
                row = DeviceStatus(hall_id=path.hall, device_id=rep.device, changed_at=now)
                s.add(row)
            if changed:
                row.changed_at = now
            row.state, row.detail, row.parts = rep.state, rep.detail, dict(rep.parts)
            row.reporter, row.reported_at = who.name, now
            view = _view(path.hall, configured[rep.device], row, now)
            views.append(view)
            if changed:
                outbox.add("device", path.hall, view, [f"hall:{path.hall}"])
    if outbox.items:
        svc.publish(outbox)
        current_app.logger.info("device status %s", ", ".join(f"{v.device}={v.state}" for v in views))
    return DeviceList(hall=path.hall, devices=views).model_dump(mode="json")

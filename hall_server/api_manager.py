"""Manager REST API: the dashboard's live figures and the alerts list (scope ``hall:manage``)."""
from __future__ import annotations

from flask import current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field

from .alerts import AlertMonitor, AlertView
from .api import ERRORS, HallPath, bearer, principal
from .auth import MANAGE
from .stats import DashboardPayload, Stats

manager_api = APIBlueprint("manager_api", __name__, url_prefix="/api/v1")
t_manager = Tag(name="manager", description="管理驾驶舱与告警")


def stats() -> Stats:
    return current_app.extensions["hall"]["stats"]


def monitor() -> AlertMonitor:
    return current_app.extensions["hall"]["alerts"]


class AlertPath(BaseModel):
    hall: str
    alert_id: int


class AlertQuery(BaseModel):
    state: str = Field(default="all", pattern="^(open|all)$", description="open: only open alerts; all: also today's closed ones")


class AlertList(BaseModel):
    hall: str
    alerts: list[AlertView]


@manager_api.get("/halls/<hall>/dashboard", tags=[t_manager], security=bearer,
                 responses={200: DashboardPayload, **ERRORS})
def dashboard(path: HallPath):  # type: ignore[no-untyped-def]
    """Live figures per queue, per window and for the hall, with hourly series for charts."""
    principal().require(MANAGE, path.hall)
    return stats().dashboard(path.hall).model_dump(mode="json")


@manager_api.get("/halls/<hall>/alerts", tags=[t_manager], security=bearer, responses={200: AlertList, **ERRORS})
def alerts(path: HallPath, query: AlertQuery):  # type: ignore[no-untyped-def]
    """Open alerts (newest first), then today's closed ones."""
    principal().require(MANAGE, path.hall)
    rows = monitor().list(path.hall, include_closed=query.state == "all")
    return AlertList(hall=path.hall, alerts=rows).model_dump(mode="json")


@manager_api.post("/halls/<hall>/alerts/<int:alert_id>/ack", tags=[t_manager], security=bearer,
                  responses={200: AlertView, **ERRORS})
def acknowledge(path: AlertPath):  # type: ignore[no-untyped-def]
    """A manager has seen the alert. A condition alert still closes by itself when the condition clears."""
    p = principal()
    p.require(MANAGE, path.hall)
    return monitor().acknowledge(path.hall, path.alert_id, p.name).model_dump(mode="json")


def install(app, socketio, *, background: bool) -> None:  # type: ignore[no-untyped-def]
    """Mount the manager API, the dashboard figures and the alert monitor on the app. The monitor's
    thread runs only with the real clock (a test on a fake clock calls ``check`` itself), from the
    first request on."""
    ext = app.extensions["hall"]
    service = ext["service"]
    ext["stats"] = Stats(service)
    mon = AlertMonitor(service, lambda event, data, room: socketio.emit(event, data, to=room))
    ext["alerts"] = mon
    inner = service.publish

    def publish(outbox):  # type: ignore[no-untyped-def]
        inner(outbox)
        mon.poke(outbox)

    service.publish = publish
    app.register_api(manager_api)
    if background:
        # started by the first request, so that commands which only build the app (db upgrade, user,
        # device-token) run no monitor, and the schema exists by the time it first checks
        @app.before_request
        def _start_alert_monitor() -> None:
            mon.start()

        ext["on_request"] = mon.start  # also by the requests answered before Flask (lean_routes)

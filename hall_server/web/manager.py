"""The manager dashboard (管理驾驶舱) at ``/manager``: live figures per queue, window and hall, alerts
with acknowledgement, hourly charts (ECharts) and the hall controls (window pause/resume/sign-out,
window queues, the hall screen notice). The page is static; its figures come from
``GET /api/v1/halls/<hall>/dashboard`` and the alerts list, refreshed on every live event of the
managers' Socket.IO room and every 15 s; alerts arrive live as the ``alert`` event."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template

HERE = Path(__file__).parent / "manager"

manager_bp = Blueprint("manager", __name__, url_prefix="/manager", static_folder=str(HERE / "static"),
                       static_url_path="/static", template_folder=str(HERE / "templates"))


@manager_bp.get("/")
def dashboard():  # type: ignore[no-untyped-def]
    return render_template("manager/dashboard.html")

"""Report endpoints (managers): daily and monthly figures as JSON, CSV, XLSX or a printable HTML table."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal, get_type_hints
from urllib.parse import quote

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field, create_model

from . import reports
from .api import ERRORS, HallPath, bearer, principal
from .auth import MANAGE
from .errors import BadRequest
from .rules.numbering import service_day

report_api = APIBlueprint("report_api", __name__, url_prefix="/api/v1")
t_reports = Tag(name="reports", description="统计报表（日报、月报）")

Format = Literal["json", "csv", "xlsx", "html"]


class DailyQuery(BaseModel):
    day: dt.date | None = Field(default=None, description="service day YYYY-MM-DD (hall time); default today")
    format: Format = "json"


class MonthlyQuery(BaseModel):
    month: str | None = Field(default=None, description="YYYY-MM; default this month")
    format: Format = "json"


# the API row is the report's own row plus its Chinese level label: derived, so the two cannot drift apart
ReportRowModel = create_model(
    "ReportRowModel", level_label=(str, ...),
    **{name: (hint, ...) for name, hint in get_type_hints(reports.ReportRow).items()},
)


class ReportResponse(BaseModel):
    hall: str
    hall_name: str
    kind: str
    period: str
    start: dt.datetime
    end: dt.datetime
    generated_at: dt.datetime
    rows: list[ReportRowModel]


def _respond(report: reports.Report, fmt: Format) -> Any:
    name = f"{report.hall}-{report.kind}-{report.period}"
    if fmt == "json":
        return ReportResponse(
            hall=report.hall, hall_name=report.hall_name, kind=report.kind, period=report.period,
            start=report.start, end=report.end, generated_at=report.generated_at,
            rows=[ReportRowModel(**r.as_dict()) for r in report.rows],
        ).model_dump(mode="json")
    if fmt == "html":
        from .web.reports import render_report

        return Response(render_report(report), mimetype="text/html")
    if fmt == "csv":
        body, mime, ext = reports.to_csv(report), "text/csv; charset=utf-8", "csv"
    else:
        body, ext = reports.to_xlsx(report), "xlsx"
        mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    filename = f"{reports.title(report)}.{ext}"
    return Response(body, mimetype=mime, headers={
        "Content-Disposition": f"attachment; filename={name}.{ext}; filename*=UTF-8''{quote(filename)}"})


def _load(hall_id: str, kind: Literal["daily", "monthly"], period: str) -> reports.Report:
    ext = current_app.extensions["hall"]
    hall = ext["service"].hall(hall_id)
    return reports.load(ext["db"], hall, kind, period, ext["service"].clock())


@report_api.get("/halls/<hall>/reports/daily", tags=[t_reports], security=bearer,
                responses={200: ReportResponse, **ERRORS})
def daily_report(path: HallPath, query: DailyQuery):  # type: ignore[no-untyped-def]
    """日报：全厅、各队列、各窗口、各工作人员（format=json|csv|xlsx|html）"""
    principal().require(MANAGE, path.hall)
    svc = current_app.extensions["hall"]["service"]
    day = query.day or service_day(svc.clock(), svc.hall(path.hall).tz)
    return _respond(_load(path.hall, "daily", day.isoformat()), query.format)


@report_api.get("/halls/<hall>/reports/monthly", tags=[t_reports], security=bearer,
                responses={200: ReportResponse, **ERRORS})
def monthly_report(path: HallPath, query: MonthlyQuery):  # type: ignore[no-untyped-def]
    """月报：全厅逐日及各队列、窗口、工作人员（format=json|csv|xlsx|html）"""
    principal().require(MANAGE, path.hall)
    svc = current_app.extensions["hall"]["service"]
    month = query.month or service_day(svc.clock(), svc.hall(path.hall).tz).strftime("%Y-%m")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise BadRequest(f"月份格式应为 YYYY-MM，收到 {month!r}", code="bad_month")
    return _respond(_load(path.hall, "monthly", month), query.format)

"""The printable report page at ``/reports/<hall>``: a manager picks a day or a month, the page
fetches the server-rendered table (``GET /api/v1/halls/<hall>/reports/daily?format=html``) with the
manager's token and prints it on A4 landscape; CSV and XLSX downloads use the same endpoints."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..reports import COLUMNS, Report, table, title

HERE = Path(__file__).parent / "reports"

reports_bp = Blueprint("reports_page", __name__, url_prefix="/reports", template_folder=str(HERE / "templates"))
_env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]))


@reports_bp.get("/<hall>")
def page(hall: str):  # type: ignore[no-untyped-def]
    return render_template("reports/report_page.html", hall=hall)


def render_report(report: Report) -> str:
    """The report as an HTML table (a fragment the page inserts, also printable on its own)."""
    from zoneinfo import ZoneInfo

    header, rows = table(report)
    tz = ZoneInfo(report.timezone)
    levels = [r.level for r in report.rows]
    return _env.get_template("reports/report_table.html").render(
        title=title(report), header=header, rows=list(zip(levels, rows)), keys=[k for k, _ in COLUMNS],
        start=report.start.astimezone(tz), end=report.end.astimezone(tz),
        generated=report.generated_at.astimezone(tz),
    )

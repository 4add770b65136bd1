"""The clerk console (窗口工作台) at ``/clerk``: sign in, choose a window, call and serve with the
keyboard. The page is static; everything it shows comes from the REST API (``/api/v1``) with the
clerk's bearer token and from the window's Socket.IO room, which it rejoins by itself after a
network or server outage (the server's ``snapshot`` on reconnect brings it back in sync)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template

HERE = Path(__file__).parent / "clerk"

clerk_bp = Blueprint("clerk", __name__, url_prefix="/clerk", static_folder=str(HERE / "static"),
                     static_url_path="/static", template_folder=str(HERE / "templates"))


@clerk_bp.get("/")
def console():  # type: ignore[no-untyped-def]
    return render_template("clerk/console.html")

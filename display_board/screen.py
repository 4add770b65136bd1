"""The hall screen (综合屏): a page for a 1920x1080 TV in the hall, served at ``/screen/<hall>``.

It is public, like everything on the hall's walls: it joins the hall's Socket.IO room without a
token and shows ticket numbers, window names, queue names and waiting figures only, never a person.
The page itself (static/screen.js) applies ``ticket`` events in ``seq`` order, drops duplicates, and
rebuilds itself from the ``snapshot`` the server sends on every (re)connect.
"""
from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, render_template

log = logging.getLogger(__name__)

screen_bp = Blueprint("display_board", __name__, url_prefix="/screen", static_folder="static",
                      static_url_path="/static", template_folder="templates")


def _config():  # type: ignore[no-untyped-def]
    return current_app.extensions["hall"]["config"]


@screen_bp.get("/")
def index():  # type: ignore[no-untyped-def]
    """Which screens this server offers: one per hall."""
    return render_template("display_board/index.html", halls=_config().halls)


@screen_bp.get("/<hall>")
def screen(hall: str):  # type: ignore[no-untyped-def]
    try:
        h = _config().hall(hall)
    except KeyError:
        abort(404)
    return render_template("display_board/screen.html",
                           cfg={"hall": h.id, "hall_name": h.name, "timezone": h.timezone})

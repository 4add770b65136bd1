"""Citizen and guide-desk pages:

- ``/t/<token>``: the mobile ticket page the QR code on a slip opens. Number, queue, people ahead and
  the estimated wait, updated live from the hall's public Socket.IO room, with an alert (banner,
  vibration, sound and, if allowed, a notification) when the ticket is called. It shows no personal
  data, and the token is 144 random bits (``secrets.token_urlsafe(18)``), so links cannot be guessed.
- ``/book/<hall>``: online booking (预约): matter, date, time slot, ID number; cancellation by code + ID.
- ``/guide/<hall>``: the guide desk (导服台): a signed-in staff member (any role with tickets:issue)
  issues tickets for citizens without an ID card or needing a priority / green channel, with the
  reason recorded in the ticket's note, and prints the slip on the desk PC's printer (the browser's
  print, an 80 mm slip with the QR code of ``/t/<token>/qr.svg``).

The pages are static; they talk to the REST API (``/api/v1``) like any other client.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, render_template

from ..errors import NotFound

HERE = Path(__file__).parent / "public"

public_bp = Blueprint("public", __name__, static_folder=str(HERE / "static"), static_url_path="/public/static",
                      template_folder=str(HERE / "templates"))


def _hall_name(hall_id: str) -> str:
    try:
        return current_app.extensions["hall"]["config"].hall(hall_id).name
    except KeyError:
        raise NotFound(f"未知的大厅 {hall_id!r} (unknown hall)", code="unknown_hall") from None


@public_bp.get("/t/<token>")
def ticket_page(token: str):  # type: ignore[no-untyped-def]
    resp = current_app.make_response(render_template("public/ticket.html", token=token))
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"  # the token must not leak to other sites
    resp.headers["X-Robots-Tag"] = "noindex"
    return resp


@public_bp.get("/t/<token>/qr.svg")
def ticket_qr(token: str):  # type: ignore[no-untyped-def]
    """The QR code of a ticket's mobile page, as printed on a kiosk slip: for the guide desk's slip."""
    import qrcode
    import qrcode.image.svg

    service = current_app.extensions["hall"]["service"]
    link = service.hall(service.hall_of_token(token)).ticket_url(token)
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2,
                         image_factory=qrcode.image.svg.SvgPathImage)
    code.add_data(link)
    resp = current_app.make_response(code.make_image().to_string())
    resp.headers["Content-Type"] = "image/svg+xml"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@public_bp.get("/book/<hall>")
def booking_page(hall: str):  # type: ignore[no-untyped-def]
    return render_template("public/book.html", hall=hall, hall_name=_hall_name(hall))


@public_bp.get("/guide/<hall>")
def guide_page(hall: str):  # type: ignore[no-untyped-def]
    return render_template("public/guide.html", hall=hall, hall_name=_hall_name(hall))

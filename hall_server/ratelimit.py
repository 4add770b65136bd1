"""Rate limits on the public endpoints nobody signs in to: online booking, appointment look-up and
cancellation (an appointment code plus an ID number must not be guessable by brute force).

Flask-Limiter, keyed by the client's address. With ``[server] redis_url`` set every server process
counts in Redis together; without it each process counts in memory. Behind a reverse proxy the client
address is the proxy's unless ``[server] trusted_proxies`` says how many proxies' X-Forwarded-For to
believe (``app.create_app``).
"""
from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# endpoints of hall_server.kiosk_api that anyone may call
PUBLIC_ENDPOINTS = ("kiosk_api.book_appointment", "kiosk_api.lookup_appointment", "kiosk_api.cancel_appointment")


def install(app: Flask, limit: str, redis_url: str | None) -> Limiter:
    """Wrap the public views of ``app`` (after their blueprints are registered) in ``limit``."""
    limiter = Limiter(get_remote_address, app=app, default_limits=[], headers_enabled=True,
                      storage_uri=redis_url or "memory://", key_prefix="hall-limit")
    for endpoint in PUBLIC_ENDPOINTS:
        app.view_functions[endpoint] = limiter.limit(limit)(app.view_functions[endpoint])
    # Every limit here is on a view and checked by its decorator; the check Flask-Limiter also runs
    # before every other request (for default and application limits, which we have none of) costs
    # ~0.07 ms per kiosk ticket, so it is taken off. Should a later Flask-Limiter not register it this
    # way, it simply stays.
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:  # noqa: SLF001
        hooks.remove(limiter._check_request_limit)  # noqa: SLF001
    return limiter

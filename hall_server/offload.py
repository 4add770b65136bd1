"""Long work without stopping the server: a blocking C call (argon2's password hashing: tens of
milliseconds) goes to a native thread, and a long read pauses between its statements.

Under gunicorn's gevent worker every request shares one OS thread: a 50 ms hash there holds every call
and every event of the hall for 50 ms. The call goes to gevent's pool of native threads instead
(argon2-cffi releases the GIL while it hashes). Under threads it runs where it is.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

R = TypeVar("R")


def under_gevent() -> bool:
    """True when gevent has patched the standard library (gunicorn's gevent workers do so before
    loading the app): every request is then a greenlet on one OS thread."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket") and monkey.is_module_patched("threading")


def off_the_loop(fn: Callable[..., R], *args: object) -> R:
    if not under_gevent():
        return fn(*args)
    import gevent

    return gevent.get_hub().threadpool.apply(fn, args)  # type: ignore[no-any-return]


def pause() -> None:
    """Let other requests run before going on: under gevent (``time.sleep`` patched) this greenlet goes
    to the back of the line; under threads it gives up the interpreter for a moment. Only between the
    statements of a read, never inside a write transaction (SQLite's one writer would wait meanwhile)."""
    time.sleep(0)

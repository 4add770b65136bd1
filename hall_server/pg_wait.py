"""PostgreSQL connections that wait for the server on gevent's own event loop.

Under gevent psycopg cannot use its C wait (it would block every greenlet), so it waits through
``select.poll``, which gevent replaces with an emulation written in Python: a poll object, watchers, a
timer for psycopg's 0.1 s wake-up interval and a result object, for every statement. A simple statement
sent back to back cost 78 µs of CPU that way here, and 23 µs with one libev watcher on the connection's
socket (gevent's public ``gevent.socket.wait``, what the emulation does underneath), which is what
:class:`GeventConnection` uses (docs/benchmarks.md, ninth round). Waits with a deadline (a cancel,
``notifies(timeout=..)``) keep psycopg's own wait. ``Connection.wait`` is psycopg's hook for driving
its generators; ``tests/hall_server/test_pg_wait.py`` fails if a psycopg release changes it.
"""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg import waiting
from psycopg.waiting import Ready, Wait

_READY = {Wait.R: Ready.R, Wait.W: Ready.W, Wait.RW: Ready.RW}


def gevent_wait(gen: Any, fileno: int, interval: float = 0.0, timeout: float | None = None) -> Any:
    """Drive one of psycopg's generators to completion, yielding to other greenlets while the socket is
    not ready; the signature of ``psycopg.waiting.wait``."""
    if timeout is not None:
        return waiting.wait_poll(gen, fileno, interval=interval, timeout=timeout)
    from gevent import get_hub
    from gevent.socket import wait

    loop = get_hub().loop
    try:
        s = next(gen)
        while True:
            # s is Wait.R, W or RW: the same bits as libev's READ (1) and WRITE (2)
            watcher = loop.io(fileno, int(s))
            try:
                wait(watcher)
            finally:
                watcher.close()
            # Either direction may be the ready one after an RW wait: psycopg's generators only try a
            # non-blocking read or write on what is reported, so reporting both is safe.
            s = gen.send(_READY[s])
    except StopIteration as done:
        return done.value


class GeventConnection(psycopg.Connection):  # type: ignore[type-arg]
    """A psycopg connection whose statements wait with :func:`gevent_wait`."""

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        return gevent_wait(gen, self.pgconn.socket, interval, timeout)

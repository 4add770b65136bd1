"""Under gevent: psycopg waits for its socket on one gevent watcher.

Once gevent has patched ``select``, psycopg waits with ``select.poll()``, which gevent emulates: a poll
object, a watcher per registered socket, a timeout and a result object per wait, all in Python. A
window action waits four times, and py-spy put the emulation at ~7 % of the server's CPU in the paced
benchmark (docs/benchmarks.md, fourteenth round). Here a wait is one io watcher started on the
connection's socket and a switch to gevent's hub until it fires, as gevent's own sockets wait.
psycopg's wait states and gevent's event bits are the same numbers (read 1, write 2).
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
_installed = False


def install() -> bool:
    """Replace psycopg's wait function when gevent has patched the standard library; True if it did."""
    global _installed
    from .offload import under_gevent

    if _installed or not under_gevent():
        return _installed
    import psycopg.waiting as waiting
    from gevent import get_hub
    from gevent.hub import Waiter

    original = waiting.wait

    def wait(gen: Any, fileno: int, interval: float = 0.0, timeout: float | None = None) -> Any:
        if timeout is not None:  # psycopg's own deadline handling (connecting, cancelling)
            return original(gen, fileno, interval=interval, timeout=timeout)
        hub = get_hub()
        try:
            state = next(gen)
            while True:
                watcher = hub.loop.io(fileno, int(state))
                waiter = Waiter(hub)
                watcher.start(waiter.switch, pass_events=True)
                try:
                    ready = waiter.get()
                finally:
                    watcher.close()
                state = gen.send(ready & 3)
        except StopIteration as done:
            return done.value

    waiting.wait = wait
    _installed = True
    log.debug("psycopg waits on gevent watchers")
    return True

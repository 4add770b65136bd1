"""Keep Python's full garbage collections short in the long-running processes (server, gateway)."""
from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive now (the app, its routes and validators, SQLAlchemy's
    mappers, the hall's configuration: they live as long as the process) out of the collector's view.

    A full collection walks every tracked object, and while it runs nothing else in the process does:
    under gunicorn's gevent worker that is every request and every live event. In the benchmark the
    server's full collections walked ~170,000 such objects and took 60-90 ms, every 2-3 s under load;
    with them frozen, 2-11 ms (docs/benchmarks.md, sixth round). Objects made later are collected as
    usual; the frozen ones are freed by reference counting, only cycles among them would stay."""
    gc.collect()
    gc.freeze()
    log.debug("%d start-up objects frozen out of the garbage collector's view", gc.get_freeze_count())

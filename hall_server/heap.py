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
    full_collections_less_often()


FULL_AFTER = 100  # collections of the middle generation before a full one (Python's default: 10)


def full_collections_less_often() -> None:
    """Even with the start-up heap frozen, a full collection walks everything made since (statement
    and plan caches, sessions' leftovers) and took ~13 ms, twice every 40 s of the benchmark's paced
    calls: each such pause lands on the requests in flight, the latency tail. One full collection
    after 100 of the middle generation instead of 10 makes them ten times rarer; cyclic garbage waits
    longer for them (minutes under load), everything else is freed as before by reference counting or
    the younger generations."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_AFTER)

"""Publish committed transactions' events in the order of their sequence numbers.

Events get their ``seq`` as their transaction commits, under the hall's sequence lock (PostgreSQL: an
advisory lock taken in the same round trip as the inserts and the COMMIT; SQLite: its one writer), so
commit order is seq order. But after the commit each request thread publishes on its own, and a thread
that committed later can get there first: a board or a loudspeaker would then show or announce two calls
in the wrong order.

So a transaction says when it is about to take its seq (:meth:`PublishOrder.begin`, before it sends its
commit) and when it is over (:meth:`PublishOrder.done`, with its outbox after the commit, or nothing
after a rollback). A committed outbox leaves once every transaction of this process that began before
it was done is done too (only those can hold a lower seq: one that begins later takes the lock after
this commit), and outboxes leave in seq order. No thread waits for another's commit: it hands its
outbox over and goes on; the last one to finish a blocking transaction publishes what it unblocked.
"""
from __future__ import annotations

import heapq
import logging
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Place:
    """A transaction's ticket in line; set ``seq`` (its lowest event seq) before :meth:`PublishOrder.done`."""

    __slots__ = ("number", "seq")

    def __init__(self, number: int) -> None:
        self.number = number
        self.seq = 0


class PublishOrder(Generic[T]):
    def __init__(self, publish: Callable[[T], None]) -> None:
        self.publish = publish
        self._lock = threading.Lock()
        self._begun = 0
        self._open: set[int] = set()  # numbers of transactions begun and not done
        self._ready: list[tuple[int, int, int, T]] = []  # heap: (seq, number, last begun at done, outbox)
        self._flushing = False

    def begin(self) -> Place:
        """Before the transaction takes its seq: call no later than sending its commit."""
        with self._lock:
            self._begun += 1
            self._open.add(self._begun)
            return Place(self._begun)

    def done(self, place: Place, item: T | None) -> None:
        """The transaction committed (``item``: its outbox) or rolled back (``None``). Publishes every
        outbox that may go now; a thread already publishing takes this one along instead."""
        with self._lock:
            self._open.discard(place.number)
            if item is not None:
                heapq.heappush(self._ready, (place.seq, place.number, self._begun, item))
            if self._flushing:
                return
            self._flushing = True
        while True:
            with self._lock:
                ready = []
                oldest_open = min(self._open, default=self._begun + 1)
                while self._ready and self._ready[0][2] < oldest_open:
                    ready.append(heapq.heappop(self._ready)[3])
                if not ready:
                    self._flushing = False
                    return
            for it in ready:
                try:
                    self.publish(it)
                except Exception:  # committed already: one failed publish must not stop the line
                    log.exception("publishing committed events failed")

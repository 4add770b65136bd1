"""Publish committed transactions' events in the order their sequence numbers were given.

Events get their ``seq`` just before their transaction commits, under the hall's sequence lock, so commit
order is seq order. But after the commit each request thread publishes on its own, and a thread that
committed later can get there first: a board or a loudspeaker would then show or announce two calls in
the wrong order. So a transaction takes a place in line while it still holds the lock
(:meth:`PublishOrder.reserve`), and after its commit (or rollback) says so (:meth:`PublishOrder.done`):
outboxes leave in line order, one publisher at a time, never held up by a transaction still running
except those ahead of it in line.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

_ABORTED = object()
_PENDING = object()


class _Place:
    __slots__ = ("item",)

    def __init__(self) -> None:
        self.item: object = _PENDING


class PublishOrder(Generic[T]):
    def __init__(self, publish: Callable[[T], None]) -> None:
        self.publish = publish
        self._lock = threading.Lock()
        self._line: deque[_Place] = deque()
        self._flushing = False

    def reserve(self) -> _Place:
        """A place in line; call while the transaction holds the lock that orders its seq."""
        place = _Place()
        with self._lock:
            self._line.append(place)
        return place

    def done(self, place: _Place, item: T | None) -> None:
        """The transaction committed (``item`` is its outbox) or rolled back (``None``). Publishes every
        outbox at the head of the line that is ready; the first thread to find the line stuck on a
        transaction still running leaves the rest to that transaction's thread."""
        with self._lock:
            place.item = _ABORTED if item is None else item
            if self._flushing:
                return  # the thread flushing now will take it
            self._flushing = True
        while True:
            with self._lock:
                ready = []
                while self._line and self._line[0].item is not _PENDING:
                    ready.append(self._line.popleft().item)
                if not ready:
                    self._flushing = False
                    return
            for it in ready:
                if it is _ABORTED:
                    continue
                try:
                    self.publish(it)  # type: ignore[arg-type]
                except Exception:  # committed already: one failed publish must not stop the line
                    log.exception("publishing committed events failed")

"""Group commit: concurrent callers' work done together in one transaction.

A caller that finds no batch running becomes the writer: it takes everything queued so far (its own
item first), runs it as one batch, passes the writer's role to the oldest caller still waiting, and
hands every caller its own result or exception. So a lone caller runs its item at once, without a
thread hand-off, and under load one transaction (one commit, one fsync) serves as many callers as
arrived while the previous batch ran. Each thread runs at most one batch, so no caller's own answer
waits behind an unbounded stream of others.

Under gevent (the production worker) every request is a greenlet on one thread, and a batch's fixed
cost (its transaction and round trips: ~1.5 ms of the server's CPU on PostgreSQL) is paid per batch:
so before taking the queue the writer lets every request the server can read right now reach it, by
waiting until the event loop is idle (``IDLE_WAIT_SECONDS`` at most, so a loop that never idles cannot
hold a batch back).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

from .offload import under_gevent

# the longest a writer under gevent waits for the event loop to idle before taking its batch
IDLE_WAIT_SECONDS = 0.005

T = TypeVar("T")
R = TypeVar("R")


def _let_callers_submit(gevented: bool) -> None:
    """Let every caller that is ready to submit do so before a batch is taken. Under gevent the others
    only get to submit when this greenlet yields, and only once the loop has read their requests: wait
    for the loop to idle (bounded). With threads this is a brief GIL release."""
    if gevented:
        import gevent

        with gevent.Timeout(IDLE_WAIT_SECONDS, False):
            gevent.idle()
    else:
        time.sleep(0)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class _Slot(Generic[T, R]):
    item: T
    # released when the caller may go on (answered, or made the writer): a bare lock wakes its one
    # waiter for less than a threading.Event, which matters with dozens of callers per batch
    ready: threading.Lock = field(default_factory=_held_lock)
    lead: bool = False  # this caller has to run the next batch
    done: bool = False
    outcome: object = None


class GroupCommit(Generic[T, R]):
    """``submit(item)`` returns ``run_batch([... item ...])``'s outcome for that item, or raises it.

    ``run_batch`` gets the items in arrival order and returns one outcome per item: a result, or an
    exception to raise in that caller only. If ``run_batch`` itself raises, every caller of the batch
    gets that exception."""

    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[object]], max_batch: int = 64) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: deque[_Slot[T, R]] = deque()
        self._running = False
        self._gevented = under_gevent()  # gunicorn's gevent worker patches before the app is built

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            if not self._running:
                self._running = slot.lead = True
        if not slot.lead:
            slot.ready.acquire()  # answered, or made the writer
        if not slot.done:
            self._run_one_batch()
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome  # type: ignore[return-value]

    def _run_one_batch(self) -> None:
        _let_callers_submit(self._gevented)
        with self._lock:
            n = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(n)]
        try:
            outcomes: Sequence[object] = self._run_batch([s.item for s in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} answered with {len(outcomes)} outcomes")
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            outcomes = [exc] * len(batch)
        with self._lock:
            nxt = self._queue[0] if self._queue else None
            if nxt is None:
                self._running = False
            else:
                nxt.lead = True
        if nxt is not None:  # first: the next batch starts before this one's callers write their answers
            nxt.ready.release()
        for s, outcome in zip(batch, outcomes):
            s.outcome, s.done = outcome, True
            s.ready.release()

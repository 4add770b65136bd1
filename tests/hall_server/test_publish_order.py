"""Committed transactions publish their events in the order of their seq, whichever thread is first."""
from __future__ import annotations

import random
import threading
import time

from hall_server.publish_order import PublishOrder


def _done(order: PublishOrder[str], place, seq: int, item: str | None) -> None:  # type: ignore[no-untyped-def]
    place.seq = seq
    order.done(place, item)


def test_a_later_transaction_that_finishes_first_waits_for_the_ones_begun_before_it() -> None:
    published: list[str] = []
    order: PublishOrder[str] = PublishOrder(published.append)
    first, second, third = order.begin(), order.begin(), order.begin()
    _done(order, third, 3, "C")
    _done(order, second, 2, "B")
    assert published == []  # A may hold a lower seq and has not committed yet
    _done(order, first, 1, "A")
    assert published == ["A", "B", "C"]


def test_seq_decides_the_order_not_the_order_of_beginning() -> None:
    """Two commits in flight at once: the database's lock gave the later-begun one the lower seq."""
    published: list[str] = []
    order: PublishOrder[str] = PublishOrder(published.append)
    a, b = order.begin(), order.begin()
    _done(order, a, 8, "A")
    assert published == []  # B began before A was done: it may hold a lower seq
    _done(order, b, 7, "B")
    assert published == ["B", "A"]


def test_a_transaction_begun_after_a_commit_does_not_hold_it_back() -> None:
    published: list[str] = []
    order: PublishOrder[str] = PublishOrder(published.append)
    a = order.begin()
    _done(order, a, 1, "A")
    order.begin()  # still running: it takes its seq after A's commit, so it cannot come before A
    assert published == ["A"]


def test_a_rolled_back_transaction_does_not_hold_up_the_line_and_a_failed_publish_does_not_stop_it() -> None:
    published: list[str] = []

    def publish(item: str) -> None:
        if item == "bad":
            raise RuntimeError("message queue down")
        published.append(item)

    order: PublishOrder[str] = PublishOrder(publish)
    a, b, c, d = (order.begin() for _ in range(4))
    _done(order, b, 2, "bad")
    order.done(a, None)  # rolled back
    _done(order, c, 3, "C")
    _done(order, d, 4, "D")
    assert published == ["C", "D"]


def test_many_threads_publish_in_seq_order() -> None:
    """16 threads, each begins, takes its seq under a lock at some moment after (as the database's
    sequence lock grants it), sleeps a little (the rest of the commit) and reports: every outbox goes
    out in seq order, none is lost."""
    published: list[int] = []
    order: PublishOrder[int] = PublishOrder(published.append)
    lock = threading.Lock()  # stands for the hall's sequence lock
    barrier = threading.Barrier(16)
    counter = iter(range(10**6))

    def transaction(n: int) -> None:
        rnd = random.Random(n)
        barrier.wait()
        for _ in range(50):
            place = order.begin()
            time.sleep(rnd.random() / 2000)  # the pipeline on its way to the server
            with lock:
                seq = next(counter)
            time.sleep(rnd.random() / 2000)  # the commit's flush and the answer on their way back
            if rnd.random() < 0.1:
                order.done(place, None)  # rolled back after all
                continue
            place.seq = seq
            order.done(place, seq)

    threads = [threading.Thread(target=transaction, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert published == sorted(published)
    assert len(published) == len(set(published)) > 600

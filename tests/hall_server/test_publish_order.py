"""Committed transactions publish their events in the order of their seq, whichever thread is first."""
from __future__ import annotations

import itertools
import threading

from hall_server.publish_order import PublishOrder


def test_a_later_transaction_that_finishes_first_waits_for_the_one_before_it() -> None:
    published: list[str] = []
    order: PublishOrder[str] = PublishOrder(published.append)
    first, second, third = order.reserve(), order.reserve(), order.reserve()
    order.done(third, "C")
    order.done(second, "B")
    assert published == []  # A has not committed yet
    order.done(first, "A")
    assert published == ["A", "B", "C"]


def test_a_rolled_back_transaction_does_not_hold_up_the_line_and_a_failed_publish_does_not_stop_it() -> None:
    published: list[str] = []

    def publish(item: str) -> None:
        if item == "bad":
            raise RuntimeError("message queue down")
        published.append(item)

    order: PublishOrder[str] = PublishOrder(publish)
    a, b, c, d = (order.reserve() for _ in range(4))
    order.done(b, "bad")
    order.done(a, None)  # rolled back
    order.done(c, "C")
    order.done(d, "D")
    assert published == ["C", "D"]


def test_many_threads_publish_in_reservation_order() -> None:
    published: list[int] = []
    order: PublishOrder[int] = PublishOrder(published.append)
    lock = threading.Lock()  # stands for the hall's sequence lock
    barrier = threading.Barrier(16)

    def transaction(n: int) -> None:
        barrier.wait()
        for _ in range(50):
            with lock:
                seq = next(counter)
                place = order.reserve()
            order.done(place, seq)

    counter = itertools.count()
    threads = [threading.Thread(target=transaction, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert published == list(range(16 * 50))

"""The "people ahead" a citizen is told (on the ticket, on its status page) against a count made by
hand from the waiting tickets: every priority ticket of the queue and the earlier normal ones for a
normal ticket, the earlier priority ones for a priority ticket. Ties in issue time (several kiosks in
the same instant) are broken by issue order."""
from __future__ import annotations

import random
import threading

import sqlalchemy as sa

from hall_server import models as m
from hall_server.config import HallConfig
from hall_server.db import Database
from hall_server.migrations import upgrade
from hall_server.service import QueueService
from tests.hall_server.conftest import FakeClock


def expected_ahead(db: Database) -> dict[int, int]:
    """Ticket id -> people ahead, counted in Python from every waiting ticket."""
    with db.read() as s:
        rows = s.execute(sa.select(m.Ticket.id, m.Ticket.queue_id, m.Ticket.priority, m.Ticket.place)
                         .where(m.Ticket.status == "waiting")).all()
    out = {}
    for t in rows:
        mine = (t.place, t.id)
        out[t.id] = sum(1 for u in rows if u.queue_id == t.queue_id and u.id != t.id and (
            (u.priority and (u.place, u.id) < mine) if t.priority
            else (u.priority or (u.place, u.id) < mine)))
    return out


def test_people_ahead_matches_a_count_by_hand(db_url: str, small_config: HallConfig, clock: FakeClock) -> None:
    upgrade(db_url)
    db = Database(db_url)
    svc = QueueService(small_config, db, b"k" * 32, clock=clock)
    svc.sync_state()
    svc.sign_in("t", "1", "clerk1")
    rnd = random.Random(20261122)
    try:
        for i in range(60):
            if rnd.random() < 0.6:
                clock.advance(seconds=rnd.choice([1, 7, 30]))  # else: the same instant as the last one
            r = svc.issue("t", request_id=f"r{i}", channel="kiosk", queue=rnd.choice(["biz", "soc"]),
                          priority_class="elderly" if rnd.random() < 0.25 else None)
            assert r.people_ahead == expected_ahead(db)[r.ticket.id], f"ticket {r.ticket.number} at issue"
            if i % 9 == 8:
                svc.call_next("t", "1", "clerk1")  # takes a ticket out of the waiting pool
                svc.start("t", "1", "clerk1")
                svc.finish("t", "1", "instant", None, "clerk1")
        now = expected_ahead(db)
        assert len(now) > 30
        for tid, n in now.items():  # what the status page says later
            assert svc.ticket("t", tid)[1] == n, f"ticket {tid}"
    finally:
        db.dispose()


def test_tickets_issued_together_are_told_their_own_places(db_url: str, small_config: HallConfig,
                                                          clock: FakeClock) -> None:
    """Kiosks issuing at once share one transaction (group commit); each still learns its own count."""
    upgrade(db_url)
    db = Database(db_url)
    svc = QueueService(small_config, db, b"k" * 32, clock=clock)
    svc.sync_state()
    for i in range(5):  # a queue that already has priority and normal tickets waiting
        svc.issue("t", request_id=f"before{i}", channel="kiosk", queue="biz",
                  priority_class="elderly" if i % 2 else None)
    told: dict[int, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(8)

    def kiosk(k: int) -> None:
        start.wait()
        for i in range(6):
            r = svc.issue("t", request_id=f"k{k}-{i}", channel="kiosk", queue="biz")
            with lock:
                told[r.ticket.id] = r.people_ahead

    threads = [threading.Thread(target=kiosk, args=(k,)) for k in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # normal tickets in the same instant: nobody issued after one of them is ahead of it, so the
        # count at issue is the count now
        now = expected_ahead(db)
        assert len(told) == 48
        assert {tid: now[tid] for tid in told} == told
        assert sorted(told.values()) == list(range(5, 53))
    finally:
        db.dispose()

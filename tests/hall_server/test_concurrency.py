"""20 windows calling while 8 kiosks issue 2,000 tickets: nothing lost, nothing duplicated.

Runs the real engine on real databases (SQLite in WAL mode and PostgreSQL) from many threads, each with
its own connection, so the database's own locking is what is tested.
"""
from __future__ import annotations

import collections
import threading
import time

import pytest
import sqlalchemy as sa

from hall_server.config import HallConfig, parse_config
from hall_server.db import Database
from hall_server.errors import Conflict
from hall_server.migrations import upgrade
from hall_server.service import QueueService

KIOSKS, WINDOWS, TICKETS = 8, 20, 2000


def busy_hall(person_limits: tuple[int | None, int | None] = (None, None), q3_cap: int | None = None) -> HallConfig:
    queues = [{"id": f"q{i}", "prefix": p, "name": f"队列{p}", **({"daily_cap": q3_cap} if i == 3 and q3_cap else {})}
              for i, p in enumerate("ABCD")]
    windows = []
    for n in range(1, WINDOWS + 1):
        if n % 5 == 0:
            windows.append({"number": n, "queues": "*", "order": "longest_wait"})
        else:
            qs = [f"q{(n + k) % 4}" for k in range(2)]
            windows.append({"number": n, "queues": qs})
    return parse_config({
        "halls": [{
            "id": "busy", "name": "压力测试大厅", "enforce_hours": False, "queues": queues, "windows": windows,
            "priority_classes": [{"id": "elderly", "name": "老年人优先"}],
            "person_limits": {"per_queue_per_day": person_limits[0], "per_hall_per_day": person_limits[1]},
        }],
        "users": [{"username": f"c{n}", "name": f"窗口{n}"} for n in range(1, WINDOWS + 1)],
    })


def without_commit_flush(db_url: str) -> str:
    """PostgreSQL: commit without waiting for the WAL to reach the disk. Locks, visibility and
    constraints, which this test is about, are unchanged; a crash could lose the last commits, which
    this test does not look at. Saves most of its run time (thousands of fsync waits)."""
    if not db_url.startswith("postgresql"):
        return db_url
    return db_url + ("&" if "?" in db_url else "?") + "options=-csynchronous_commit%3Doff"


@pytest.mark.slow
def test_no_duplicate_no_gap_no_double_call(db_url: str) -> None:
    cfg = busy_hall()
    upgrade(db_url)
    db = Database(without_commit_flush(db_url), pool_size=KIOSKS + WINDOWS + 4)
    svc = QueueService(cfg, db, b"k" * 32)
    svc.sync_state()
    for n in range(1, WINDOWS + 1):
        svc.sign_in("busy", str(n), f"c{n}")

    issued: list[tuple[str, str]] = []
    served: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    issuing_done = threading.Event()

    def kiosk(k: int) -> None:
        try:
            for i in range(TICKETS // KIOSKS):
                q = f"q{(k + i) % 4}"
                r = svc.issue("busy", request_id=f"k{k}-{i}", channel="kiosk", queue=q,
                              priority_class="elderly" if i % 7 == 0 else None)
                if i % 10 == 0:  # a retried request must not yield a second ticket
                    again = svc.issue("busy", request_id=f"k{k}-{i}", channel="kiosk", queue=q)
                    assert again.ticket.id == r.ticket.id and again.replayed
                with lock:
                    issued.append((r.ticket.queue, r.ticket.number))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def window(n: int) -> None:
        try:
            idle_rounds = 0
            while True:
                try:
                    t = svc.call_next("busy", str(n))
                except Conflict as exc:
                    if exc.code == "busy":
                        continue
                    raise
                if t is None:
                    if issuing_done.is_set():
                        idle_rounds += 1
                        if idle_rounds > 3:
                            return
                    time.sleep(0.005)
                    continue
                idle_rounds = 0
                svc.start("busy", str(n))
                svc.finish("busy", str(n), "instant")
                with lock:
                    served.append((t.id, str(n)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    kiosks = [threading.Thread(target=kiosk, args=(k,)) for k in range(KIOSKS)]
    windows = [threading.Thread(target=window, args=(n,)) for n in range(1, WINDOWS + 1)]
    for t in kiosks + windows:
        t.start()
    for t in kiosks:
        t.join(240)
    issuing_done.set()
    for t in windows:
        t.join(240)
    assert not errors, errors[:3]
    assert len(issued) == TICKETS

    # numbers: unique and gap-free per queue
    per_queue: dict[str, list[int]] = collections.defaultdict(list)
    for q, number in issued:
        per_queue[q].append(int(number[1:]))
    for q, numbers in per_queue.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), f"gap or duplicate in {q}"

    # every ticket served exactly once, by one window
    ids = [tid for tid, _ in served]
    assert len(ids) == len(set(ids)) == TICKETS
    with db.engine.connect() as conn:
        calls = conn.execute(sa.text(
            "SELECT ticket_id, count(*) FROM ticket_events WHERE kind = 'called' GROUP BY ticket_id HAVING count(*) > 1"
        )).all()
        statuses = dict(conn.execute(sa.text("SELECT status, count(*) FROM tickets GROUP BY status")).all())
        dup_numbers = conn.execute(sa.text(
            "SELECT display, count(*) FROM tickets GROUP BY origin_queue_id, service_day, display HAVING count(*) > 1"
        )).all()
    assert calls == [], f"tickets called twice: {calls[:5]}"
    assert statuses == {"finished": TICKETS}
    assert dup_numbers == []
    # the work was shared: more than a handful of windows served
    assert len({w for _, w in served}) >= WINDOWS // 2
    db.dispose()


def test_concurrent_retries_of_one_request_yield_one_ticket(db_url: str) -> None:
    cfg = busy_hall()
    upgrade(db_url)
    db = Database(db_url)
    svc = QueueService(cfg, db, b"k" * 32)
    svc.sync_state()
    results = []
    barrier = threading.Barrier(8)

    def tap() -> None:
        barrier.wait()
        results.append(svc.issue("busy", request_id="double-tap-1", channel="kiosk", queue="q0"))

    threads = [threading.Thread(target=tap) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len({r.ticket.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert svc.issue("busy", request_id="next-one-1", channel="kiosk", queue="q0").ticket.number == "A002"
    db.dispose()


def test_limits_hold_for_requests_issued_together(db_url: str) -> None:
    """Simultaneous requests are issued in shared transactions: each still gets its own answer. A
    daily cap and a person's limits refuse exactly the requests beyond them, the refused ones do not
    fail the others or leave a gap in the numbers, and a double tap yields one ticket."""
    from tests.hall_server.test_tickets_api import valid_id

    cfg = busy_hall(person_limits=(2, 3), q3_cap=10)
    upgrade(db_url)
    db = Database(db_url, pool_size=40)
    svc = QueueService(cfg, db, b"k" * 32)
    svc.sync_state()
    tout = valid_id("11010519900307123")  # one person (a tout) trying for many tickets at once
    jobs = ([("tout", f"q{i % 3}", tout, f"tout-{i:04d}") for i in range(12)]
            + [("cap", "q3", None, f"cap-{i:05d}") for i in range(16)]
            + [("tap", "q0", None, "double-tap-0") for _ in range(4)]
            + [("other", f"q{i % 3}", valid_id(f"110105198001{i + 1:02d}123"), f"other-{i:03d}") for i in range(12)])
    results: list[tuple[str, object]] = []
    barrier = threading.Barrier(len(jobs))

    def go(kind: str, queue: str, id_number: str | None, request_id: str) -> None:
        barrier.wait()
        try:
            r: object = svc.issue("busy", request_id=request_id, channel="kiosk", queue=queue, id_number=id_number)
        except Conflict as exc:
            r = exc.code
        results.append((kind, r))

    threads = [threading.Thread(target=go, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == len(jobs)

    by_kind: dict[str, list[object]] = collections.defaultdict(list)
    for kind, r in results:
        by_kind[kind].append(r)
    tout_ok = [r for r in by_kind["tout"] if not isinstance(r, str)]
    assert len(tout_ok) == 3  # the hall limit
    assert max(collections.Counter(r.ticket.queue for r in tout_ok).values()) <= 2  # type: ignore[attr-defined]
    assert set(r for r in by_kind["tout"] if isinstance(r, str)) <= {"person_limit_hall", "person_limit_queue"}
    assert all(not isinstance(r, str) for r in by_kind["other"])  # bystanders are not refused
    cap_ok = [r for r in by_kind["cap"] if not isinstance(r, str)]
    assert len(cap_ok) == 10 and by_kind["cap"].count("daily_cap_reached") == 6
    assert sorted(r.ticket.number for r in cap_ok) == [f"D{n:03d}" for n in range(1, 11)]  # type: ignore[attr-defined]
    taps = by_kind["tap"]
    assert len({r.ticket.id for r in taps}) == 1 and sum(not r.replayed for r in taps) == 1  # type: ignore[attr-defined]

    # every answer names the ticket the database holds under its id, and numbers have no gaps
    answered = {r.ticket.id: r.ticket.number for _, r in results if not isinstance(r, str)}  # type: ignore[attr-defined]
    with db.engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT id, display FROM tickets")).all())
    assert answered == stored
    per_prefix = collections.Counter(d[0] for d in stored.values())
    assert sorted(stored.values()) == sorted(f"{p}{n:03d}" for p, k in per_prefix.items() for n in range(1, k + 1))
    db.dispose()


def test_a_persons_limits_hold_across_server_processes(db_url: str) -> None:
    """Two server processes (two services, each with its own connection pool and its own batches)
    issue for one person at once: together they still give the person no more than the limits."""
    from tests.hall_server.test_tickets_api import valid_id

    cfg = busy_hall(person_limits=(2, 3), q3_cap=None)
    upgrade(db_url)
    dbs = [Database(db_url, pool_size=20) for _ in range(2)]
    services = [QueueService(cfg, d, b"k" * 32) for d in dbs]
    services[0].sync_state()
    tout = valid_id("11010519900307123")
    results: list[object] = []
    barrier = threading.Barrier(24)

    def go(i: int) -> None:
        barrier.wait()
        try:
            r: object = services[i % 2].issue("busy", request_id=f"tout-{i:04d}", channel="kiosk",
                                              queue=f"q{i % 3}", id_number=tout)
        except Conflict as exc:
            r = exc.code
        results.append(r)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 24
    issued = [r for r in results if not isinstance(r, str)]
    assert len(issued) == 3  # the hall-wide limit, over both processes
    assert max(collections.Counter(r.ticket.queue for r in issued).values()) <= 2  # type: ignore[attr-defined]
    assert set(r for r in results if isinstance(r, str)) <= {"person_limit_hall", "person_limit_queue"}
    for d in dbs:
        d.dispose()

"""A month of finished hall days in the benchmark database, as a hall's database holds after its first
month, before the server under test starts.

Why: PostgreSQL plans a statement from the table's statistics, and the server keeps one generic plan
per prepared statement per connection (hall_server/db.py: _prepared). Against tables created empty a
moment before, every plan is made for an empty table (sequential scans) and kept while the tables grow
during the run: the request-id lookup of each issue batch then read every ticket (1.5 ms per batch at
3,000 tickets, growing). A hall in service has history, analysed by autovacuum. The seeded rows are
closed days (finished tickets, their four events), so they never appear among the waiting.
"""
from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo
from typing import Sequence

import sqlalchemy as sa

DAYS = 30
PER_DAY = 1000  # tickets per service day, a busy county centre


def seed_history(url: str, hall: str, queues: Sequence[tuple[str, str]], windows: int,
                 days: int = DAYS, per_day: int = PER_DAY) -> int:
    """Insert ``days`` finished service days before today, for ``queues`` given as (id, prefix); on
    PostgreSQL, ANALYZE as autovacuum would have (SQLite keeps no statistics unless asked, and the
    hall server never asks). Returns the tickets inserted."""
    from hall_server import models as m
    from hall_server.rules import numbering

    rnd = random.Random(7)
    prefix = dict(queues)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()  # the benchmark hall's service day
    engine = sa.create_engine(url)
    total = 0
    with engine.begin() as conn:
        for back in range(days, 0, -1):
            day = today - dt.timedelta(days=back)
            opens = dt.datetime.combine(day, dt.time(1, 0), tzinfo=dt.timezone.utc)  # 09:00 in Shanghai
            numbers = {q: 0 for q in prefix}
            tickets = []
            for i in range(per_day):
                q = queues[i % len(queues)][0]
                numbers[q] += 1
                issued = opens + dt.timedelta(seconds=i * 28_800 / per_day)
                called = issued + dt.timedelta(seconds=rnd.randint(60, 1800))
                started = called + dt.timedelta(seconds=rnd.randint(10, 120))
                finished = started + dt.timedelta(seconds=rnd.randint(60, 900))
                tickets.append(dict(
                    hall_id=hall, queue_id=q, origin_queue_id=q, service_day=day, number=numbers[q],
                    display=numbering.format_number(prefix[q], numbers[q]), status="finished", channel="kiosk",
                    priority_class=None, priority=False, matter_id=None, bundle_id=None, stage="受理",
                    place=issued.timestamp(), eligible_at=0.0, target_window=None,
                    window=str(rnd.randint(1, windows)), clerk=None, recalls=0, person_hash=None,
                    person_masked=None, request_id=f"history-{day}-{i}", public_token=f"h{day:%Y%m%d}{i:05d}",
                    note=None, issued_at=issued, called_at=called, started_at=started, finished_at=finished,
                    closed_at=finished, outcome="instant", case_no=None))
            ids = conn.execute(sa.insert(m.Ticket).returning(m.Ticket.id, sort_by_parameter_order=True),
                               tickets).scalars().all()
            events = [dict(ticket_id=tid, hall_id=hall, kind=kind, at=t[at], queue_id=t["queue_id"],
                           window=None if kind == "issued" else t["window"], actor=None, data={})
                      for tid, t in zip(ids, tickets)
                      for kind, at in (("issued", "issued_at"), ("called", "called_at"),
                                       ("started", "started_at"), ("finished", "finished_at"))]
            conn.execute(sa.insert(m.TicketEvent), events)
            conn.execute(sa.insert(m.Counter), [dict(hall_id=hall, queue_id=q, service_day=day, last_number=n)
                                                for q, n in numbers.items()])
            total += len(tickets)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    engine.dispose()
    return total

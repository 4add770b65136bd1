"""PostgreSQL's plans for calling a ticket in the state a real hall's database is in each morning:
months of finished tickets, the waiting pool's partial index last vacuumed when it was empty, and
since then a pool of hundreds. A claim must look its ticket up by the primary key, not by scanning
the whole waiting pool (what PostgreSQL chose while it believed the pool empty: 1.2 ms a scan at
2,200 waiting, twice per call)."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from hall_server import models as m
from hall_server.config import HallConfig
from hall_server.db import Database
from hall_server.migrations import upgrade
from hall_server.service import QueueService
from tests.conftest import PG_URL, pg_available
from tests.hall_server.conftest import FakeClock, reset_postgres


@pytest.fixture
def morning(small_config: HallConfig, clock: FakeClock) -> Iterator[tuple[QueueService, list[int]]]:
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    reset_postgres()
    upgrade(PG_URL)
    db = Database(PG_URL)
    svc = QueueService(small_config, db, b"k" * 32, clock=clock)
    svc.sync_state()
    svc.sign_in("t", "1", "clerk1")
    template = svc.issue("t", request_id="first", channel="kiosk", queue="biz").ticket.id
    T = m.Ticket.__table__
    cols = [c.name for c in T.c if c.name != "id"]
    quoted = ", ".join('"' + c + '"' for c in cols)  # "window" is a keyword

    def copies(n: int, status: str, tag: str, day_offset: str) -> None:
        override = {"status": f"'{status}'", "request_id": f"'{tag}' || g", "public_token": f"'{tag}' || g",
                    "number": "number + g", "service_day": f"service_day - {day_offset}", "place": "place + g"}
        select_list = ", ".join(override.get(c, '"' + c + '"') for c in cols)
        with db.engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO tickets ({quoted}) SELECT {select_list} "
                                 f"FROM tickets, generate_series(1, {n}) g WHERE id = :id"),
                         {"id": template})

    copies(30_000, "finished", "h", "1 - (g % 90)")  # three months of history, finished
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE tickets"))  # the night's vacuum: the pool is empty
    copies(2_000, "waiting", "w", "0")  # the morning's pool
    with db.read() as s:
        waiting = list(s.scalars(sa.select(T.c.id).where(T.c.status == "waiting").order_by(T.c.place).limit(10)))
    try:
        yield svc, waiting
    finally:
        db.dispose()


def indexes_used(svc: QueueService, statement: Any, params: dict[str, Any]) -> set[str]:
    compiled = statement.compile(dialect=svc.db.engine.dialect)
    with svc.db.engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled),
                                    compiled.construct_params(params)).scalar()
        conn.rollback()
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "Index Name" in node:
                found.add(node["Index Name"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(plan if not isinstance(plan, str) else json.loads(plan))
    return found


def test_a_claim_finds_its_ticket_by_id_when_the_statistics_think_the_pool_empty(
        morning: tuple[QueueService, list[int]]) -> None:
    svc, waiting = morning
    now = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.timezone.utc)
    first = indexes_used(svc, svc._build_claim_first_statement(), {
        "b_ids": waiting, "b_hall": "t", "b_window": "1", "b_clerk": "clerk1", "b_now": now})
    one = indexes_used(svc, svc._build_claim_statement(), {
        "b_id": waiting[0], "b_window": "1", "b_clerk": "clerk1", "b_now": now})
    for used in (first, one):
        assert "tickets_pkey" in used, used
        assert not any(i.startswith("ix_ticket_waiting") for i in used), used
    # and the call itself takes the pool's first ticket
    called = svc.call_next("t", "1", "clerk1")
    assert called is not None and called.id == waiting[0]

"""A pooled PostgreSQL connection that the server closed (a database restart, an idle timeout) is
replaced on its next use instead of failing a clerk's request."""
from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from hall_server import db as dbmod
from hall_server.db import Database
from tests.conftest import PG_URL, pg_available


def _kill_pooled_connection(db: Database) -> None:
    with db.read() as s:
        pid = s.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    other = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    with other.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    other.dispose()


@pytest.fixture
def pg_db():  # type: ignore[no-untyped-def]
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    db = Database(PG_URL, pool_size=1)
    yield db
    db.dispose()


def test_a_connection_closed_by_the_server_is_replaced_after_a_rest(pg_db: Database,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE", 0.0)  # every checkout counts as after a rest
    _kill_pooled_connection(pg_db)
    with pg_db.read() as s:
        assert s.execute(sa.text("SELECT 41 + 1")).scalar_one() == 42


def test_a_busy_connection_is_not_pinged(pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other side of the trade: within the rest period no ping is spent, so a connection killed
    that very moment fails its one request (the pool then replaces it)."""
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE", 3600.0)
    _kill_pooled_connection(pg_db)
    with pytest.raises(OperationalError):
        with pg_db.read() as s:
            s.execute(sa.text("SELECT 1"))
    with pg_db.read() as s:
        assert s.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_connections_and_their_plans_are_renewed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generic plans live as long as their connection; a connection older than PLAN_LIFETIME is
    replaced at its next checkout, so plans made on yesterday's statistics do not stay for weeks."""
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    monkeypatch.setattr(dbmod, "PLAN_LIFETIME", 1)
    db = Database(PG_URL, pool_size=1)
    try:
        def backend() -> int:
            with db.read() as s:
                return int(s.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())

        first = backend()
        assert backend() == first  # within its lifetime the pooled connection is reused
        time.sleep(1.2)
        assert backend() != first
    finally:
        db.dispose()


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "pgbouncer"])
def test_statements_are_prepared_with_generic_plans_unless_switched_off(prepared: bool) -> None:
    """By default each statement is prepared on its connection at its first run and keeps a generic
    plan (planning the call path cost more than running it); ``[server] prepared_statements = false``
    (PgBouncer in transaction mode) prepares nothing."""
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    db = Database(PG_URL, pool_size=1, prepared=prepared)
    try:
        with db.read() as s:
            s.execute(sa.text("SELECT count(*) FROM pg_class WHERE relname = :n"), {"n": "tickets"})
            statements = s.execute(sa.text("SELECT statement FROM pg_prepared_statements")).scalars().all()
            mode = s.execute(sa.text("SHOW plan_cache_mode")).scalar_one()
    finally:
        db.dispose()
    if prepared:
        assert any("FROM pg_class" in st for st in statements), statements
        assert mode == "force_generic_plan"
    else:
        assert statements == []
        assert mode == "auto"


def test_options_in_the_database_url_are_kept_beside_the_generic_plans() -> None:
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    sep = "&" if "?" in PG_URL else "?"
    db = Database(f"{PG_URL}{sep}options=-c%20statement_timeout%3D12345", pool_size=1)
    try:
        with db.read() as s:
            assert s.execute(sa.text("SHOW statement_timeout")).scalar_one() == "12345ms"
            assert s.execute(sa.text("SHOW plan_cache_mode")).scalar_one() == "force_generic_plan"
    finally:
        db.dispose()


def test_after_a_burst_a_quiet_hall_stays_on_the_connection_that_has_its_statements_prepared() -> None:
    """A burst opens several connections; afterwards, one request at a time, the pool hands out the
    connection used last, which has the statement prepared already, instead of taking each resting
    connection in turn and preparing (and planning) the statement on every one of them."""
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    db = Database(PG_URL, pool_size=4)
    query = sa.text("SELECT count(*) FROM pg_class WHERE relname = :n")
    try:
        burst = [db.engine.connect() for _ in range(4)]  # four requests at once: four connections
        for conn in burst:
            conn.execute(sa.text("SELECT 1"))
        for conn in burst:
            conn.close()
        backends, prepared = set(), []
        for _ in range(8):  # then a quiet spell
            with db.read() as s:
                s.execute(query, {"n": "tickets"})
                backends.add(s.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
                prepared.append(s.execute(sa.text(
                    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%FROM pg_class%' "
                    "AND statement NOT LIKE '%pg_prepared_statements%'")).scalar_one())
    finally:
        db.dispose()
    assert len(backends) == 1, f"quiet requests went to {len(backends)} connections"
    assert prepared == [1] * 8  # prepared once, on that connection


def _terminate_every_backend_but_mine() -> int:
    other = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    with other.connect() as conn:
        killed = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
    other.dispose()
    return int(killed)


def test_a_lost_database_answers_503_once_and_the_hall_goes_on(small_config, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A database restart (here: every connection terminated) while the hall is busy: the request that
    meets a dead connection is refused with 503 and a message that says so, not an anonymous 500, and
    the pool drops its other connections with it, so the hall's next requests work on new ones
    instead of each meeting another dead connection in turn."""
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    from tests.hall_server.conftest import make_client, reset_postgres

    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE", 3600.0)  # busy connections: not pinged
    reset_postgres()
    hall = make_client(small_config, PG_URL)
    try:
        hall.login("clerk1")
        hall.device("kiosk1")
        for _ in range(3):
            hall.issue(queue="biz")
        hall.act("1", "sign-in")
        held = [hall.db.engine.connect() for _ in range(3)]  # three connections in the pool, as a busy hall has
        for conn in held:
            conn.exec_driver_sql("SELECT 1")
        for conn in held:
            conn.close()
        assert _terminate_every_backend_but_mine() >= 3

        lost = hall.act("1", "call-next", expect=503)["error"]
        assert lost["code"] == "database_unavailable"
        assert lost["message"].startswith("数据库暂时不可用，请稍后重试 (database unavailable: ")
        assert "administrator command" in lost["message"]  # the server's reason, not the rollback's after it
        called = hall.act("1", "call-next")["ticket"]  # a new connection; nothing of the lost call remained
        assert called["number"] == "A001"
        snapshot = hall.req("GET", "/api/v1/halls/t/windows/1", "clerk1")  # a Flask route, not a lean one
        assert snapshot.status_code == 200, snapshot.get_json()

        _terminate_every_backend_but_mine()
        lost = hall.req("GET", "/api/v1/halls/t/windows/1", "clerk1")
        assert lost.status_code == 503, lost.get_json()
        assert lost.get_json()["error"]["code"] == "database_unavailable"
        assert hall.req("GET", "/api/v1/halls/t/windows/1", "clerk1").status_code == 200
    finally:
        hall.db.dispose()

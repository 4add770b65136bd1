"""PostgreSQL's window actions read their rows through psycopg directly (``pg_raw``): the times they
answer must be the same UTC times SQLAlchemy's types give, whatever time zone the database session
has (a DBA's ``timezone = 'Asia/Shanghai'`` in postgresql.conf is common in China)."""
from __future__ import annotations

import datetime as dt

import pytest

from hall_server.config import HallConfig
from tests.conftest import PG_URL, pg_available
from tests.hall_server.conftest import FakeClock, make_client, reset_postgres


@pytest.fixture
def shanghai_session_url() -> str:
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    reset_postgres()
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-c%20TimeZone%3DAsia/Shanghai"


def test_window_actions_answer_utc_times_whatever_the_session_zone(
        small_config: HallConfig, shanghai_session_url: str, clock: FakeClock) -> None:
    hall = make_client(small_config, shanghai_session_url, clock)
    try:
        hall.login("clerk1")
        hall.device("kiosk1")
        with hall.db.engine.connect() as conn:  # the sessions really are in Shanghai time
            assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "Asia/Shanghai"
        issued_at = clock.now
        hall.issue(queue="biz")
        hall.act("1", "sign-in")
        clock.advance(minutes=5)
        called_at = clock.now
        called = hall.act("1", "call-next")["ticket"]  # the claim's RETURNING row
        clock.advance(minutes=1)
        started = hall.act("1", "start")  # the window's lock with its ticket
        for view in (called, started):
            assert dt.datetime.fromisoformat(view["issued_at"]) == issued_at
            assert dt.datetime.fromisoformat(view["called_at"]) == called_at
            assert dt.datetime.fromisoformat(view["issued_at"]).utcoffset() == dt.timedelta(0), view["issued_at"]
            assert dt.datetime.fromisoformat(view["called_at"]).utcoffset() == dt.timedelta(0), view["called_at"]
        assert dt.datetime.fromisoformat(started["started_at"]) == clock.now
    finally:
        hall.db.dispose()

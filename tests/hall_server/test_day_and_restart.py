"""Local midnight, carry-over, and a server restart mid-day."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from hall_server.config import HallConfig
from tests.hall_server.conftest import FakeClock, make_client


def with_midnight(config: HallConfig, policy: str) -> HallConfig:
    hall = config.halls[0].model_copy(update={"midnight": policy})
    return config.model_copy(update={"halls": [hall]})


def test_numbers_restart_at_shanghai_midnight_and_waiting_tickets_close(small_config: HallConfig, db_url: str) -> None:
    clock = FakeClock(dt.datetime(2026, 11, 20, 15, 50, tzinfo=dt.timezone.utc))  # 23:50 in Shanghai
    hall = make_client(with_midnight(small_config, "close"), db_url, clock)
    hall.device("kiosk1")
    hall.issue(queue="biz")
    left = hall.issue(queue="biz")["ticket"]
    clock.advance(minutes=5)  # 23:55: same service day, even though UTC is unchanged
    assert hall.issue(queue="biz")["ticket"]["number"] == "A003"
    clock.advance(minutes=10)  # 00:05 local: a new service day
    first = hall.issue(queue="biz")
    assert first["ticket"]["number"] == "A001" and first["people_ahead"] == 0
    old = hall.service.ticket("t", left["id"])[0]
    assert old.status == "expired"
    with hall.db.engine.connect() as conn:  # history kept for reports
        n_old = conn.execute(sa.text("SELECT count(*) FROM tickets WHERE service_day = '2026-11-20'")).scalar()
        expired_events = conn.execute(sa.text("SELECT count(*) FROM ticket_events WHERE kind = 'expired'")).scalar()
    assert n_old == 3 and expired_events == 3
    hall.db.dispose()


def test_carry_over_keeps_yesterdays_tickets_first(small_config: HallConfig, db_url: str) -> None:
    clock = FakeClock(dt.datetime(2026, 11, 20, 15, 50, tzinfo=dt.timezone.utc))
    hall = make_client(with_midnight(small_config, "carry_over"), db_url, clock)
    hall.device("kiosk1")
    hall.login("clerk1")
    hall.issue(queue="biz")
    clock.advance(hours=10)  # next morning
    today = hall.issue(queue="biz")
    assert today["ticket"]["number"] == "A001" and today["people_ahead"] == 1
    hall.act("1", "sign-in")
    first = hall.act("1", "call-next")["ticket"]
    assert first["number"] == "A001" and first["id"] != today["ticket"]["id"]  # yesterday's A001
    hall.db.dispose()


def test_day_rolls_over_without_traffic(small_config: HallConfig, db_url: str) -> None:
    clock = FakeClock(dt.datetime(2026, 11, 20, 15, 50, tzinfo=dt.timezone.utc))
    hall = make_client(with_midnight(small_config, "close"), db_url, clock)
    hall.device("kiosk1")
    t = hall.issue(queue="biz")["ticket"]
    clock.advance(minutes=30)
    hall.service.rollover("t")  # what the server's day keeper does every 30 s
    assert hall.service.ticket("t", t["id"])[0].status == "expired"
    hall.db.dispose()


def test_restart_mid_day_continues_exactly(small_config: HallConfig, db_url: str, clock: FakeClock) -> None:
    first = make_client(small_config, db_url, clock)
    first.device("kiosk1")
    first.login("clerk1")
    for _ in range(3):
        first.issue(queue="biz")
    first.act("1", "sign-in")
    first.act("1", "call-next")
    first.act("1", "start")
    first.app.extensions["hall"]["db"].dispose()
    # a new server process on the same database
    second = make_client(small_config, db_url, clock)
    second.tokens = dict(first.tokens)  # tokens live in the database, so they still work
    w = second.req("GET", "/api/v1/halls/t/windows/1", "clerk1").get_json()
    assert w["status"] == "serving" and w["ticket"]["number"] == "A001"
    assert second.issue(queue="biz", request_id="after-restart-1")["ticket"]["number"] == "A004"
    second.act("1", "finish", outcome="promised")
    assert second.act("1", "call-next")["ticket"]["number"] == "A002"
    assert second.admin_password is None  # the admin was created once, on first run
    second.db.dispose()

"""The manager dashboard's figures, checked against a morning worked out by hand (SQLite and PostgreSQL)."""
from __future__ import annotations

from typing import Any

from tests.hall_server.conftest import FakeClock, HallClient


def dashboard(hall: HallClient, who: str = "boss") -> dict[str, Any]:
    r = hall.req("GET", "/api/v1/halls/t/dashboard", who)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def evaluate(hall: HallClient, window: str, grade: int, comment: str | None = None) -> None:
    r = hall.req("POST", "/api/v1/halls/t/evaluations", "eval1", json={"window": window, "grade": grade, "comment": comment})
    assert r.status_code == 201, r.get_json()


def morning(hall: HallClient, clock: FakeClock) -> None:
    """10:00 A001 and B001 issued, windows 1 and 2 open; 10:05 A002.
    10:10 window 1 calls A001 (waited 10 min), serves it until 10:16 (6 min), rated 非常满意.
    10:16 window 1 calls A002 (waited 11 min), hands it to 出件 at 10:20 (4 min), rated 不满意.
    10:30 window 2 calls B001 (waited 30 min, target 10), nobody comes: no-show at 10:31.
    10:30 B002 issued and cancelled. 10:32 window 2 pauses for 休息. Seen at 10:40."""
    q = lambda queue: hall.issue(queue=queue)["ticket"]  # noqa: E731
    q("biz"), q("soc")
    hall.act("1", "sign-in", "clerk1")
    hall.act("2", "sign-in", "clerk2")
    clock.advance(minutes=5)
    q("biz")
    clock.advance(minutes=5)
    assert hall.act("1", "call-next", "clerk1")["ticket"]["number"] == "A001"
    hall.act("1", "start", "clerk1")
    clock.advance(minutes=6)
    hall.act("1", "finish", "clerk1", outcome="instant")
    evaluate(hall, "1", 5)
    assert hall.act("1", "call-next", "clerk1")["ticket"]["number"] == "A002"
    hall.act("1", "start", "clerk1")
    clock.advance(minutes=4)
    hall.act("1", "transfer", "clerk1", next_stage=True)
    evaluate(hall, "1", 2, "等太久了")
    clock.advance(minutes=10)
    assert hall.act("2", "call-next", "clerk2")["ticket"]["number"] == "B001"
    b002 = q("soc")
    r = hall.req("POST", f"/api/v1/halls/t/tickets/{b002['id']}/cancel", "boss", json={"reason": "重复取号"})
    assert r.status_code == 200, r.get_json()
    hall.act("2", "recall", "clerk2")
    clock.advance(minutes=1)
    hall.act("2", "no-show", "clerk2")
    clock.advance(minutes=1)
    hall.act("2", "pause", "clerk2", reason="休息")
    clock.advance(minutes=8)


def test_figures_of_a_morning(hall: HallClient, clock: FakeClock) -> None:
    morning(hall, clock)
    d = dashboard(hall)
    assert d["service_day"] == "2026-11-20"
    assert d["totals"] == {"issued": 4, "waiting": 1, "served": 1, "no_shows": 1, "cancelled": 1,
                           "windows_total": 3, "windows_open": 2, "windows_paused": 1}

    queues = {q["id"]: q for q in d["queues"]}
    biz, soc, out = queues["biz"], queues["soc"], queues["out"]
    # biz: waits 10 and 11 minutes, both within the 20-minute target, both in the last hour
    assert (biz["waiting"], biz["called_today"], biz["service_level"]) == (0, 2, 100.0)
    assert biz["avg_wait_last_hour_seconds"] == 630.0
    assert biz["windows"] == ["1"]  # window 2 is paused
    # soc: B001 waited 30 minutes against a 10-minute target
    assert (soc["called_today"], soc["service_level"], soc["avg_wait_last_hour_seconds"]) == (1, 0.0, 1800.0)
    assert soc["max_waiting"] == 2 and soc["issued_today"] == 2
    # out: A002 keeps its place from 10:05, so it has waited 35 minutes; no window serves the queue
    assert out["waiting"] == 1 and out["longest_wait_seconds"] == 35 * 60
    assert out["over_target"] is True and out["windows"] == [] and out["service_level"] is None
    assert out["estimated_wait_seconds"] == 8 * 60  # one ahead x the default 8 minutes, one window assumed
    assert out["max_waiting"] == 3  # the hall's default

    windows = {w["number"]: w for w in d["windows"]}
    w1, w2, w9 = windows["1"], windows["2"], windows["9"]
    # window 1 ended two services: A001 finished after 6 minutes, A002 handed on after 4
    assert (w1["status"], w1["served_today"], w1["avg_handle_seconds"]) == ("idle", 2, 300.0)
    assert (w1["clerk"], w1["clerk_name"], w1["ticket"]) == ("clerk1", "王小明", None)
    assert (w2["status"], w2["status_label"], w2["pause_reason"], w2["paused_seconds"]) == ("paused", "暂停服务", "休息", 480.0)
    assert (w2["served_today"], w2["avg_handle_seconds"]) == (0, None)  # a no-show is not a service
    assert (w9["status"], w9["clerk"]) == ("closed", None)

    sat = d["satisfaction"]
    assert (sat["rated"], sat["satisfied"], sat["bad"], sat["rate"]) == (2, 1, 1, 50.0)
    assert (sat["open_cases"], sat["overdue_cases"]) == (1, 0)
    assert d["satisfaction_by_window"] == [{"window": "1", "name": "1号窗口", "rated": 2, "satisfied": 1, "bad": 1,
                                            "rate": 50.0}]

    hours = {h["hour"]: h for h in d["hourly"]}
    assert hours[10] == {"hour": 10, "arrivals": 4, "called": 3, "served": 1, "avg_wait_seconds": 1020.0}
    assert hours[9]["arrivals"] == 0 and hours[9]["avg_wait_seconds"] is None
    assert min(hours) == 8 and max(hours) == 17


def test_a_window_at_work_and_the_figures_follow_new_events(hall: HallClient, clock: FakeClock) -> None:
    hall.issue(queue="soc")
    hall.act("1", "sign-in", "clerk1")
    before = dashboard(hall)
    assert before["totals"]["issued"] == 1 and before["queues"][1]["called_today"] == 0
    clock.advance(minutes=3)
    hall.act("1", "call-next", "clerk1")
    clock.advance(seconds=90)
    d = dashboard(hall)  # the same process: today's events are folded incrementally
    w1 = d["windows"][0]
    assert (w1["status"], w1["ticket"], w1["elapsed_seconds"]) == ("calling", "B001", 90.0)
    soc = d["queues"][1]
    assert (soc["called_today"], soc["avg_wait_last_hour_seconds"], soc["service_level"]) == (1, 180.0, 100.0)
    # an hour later the call no longer counts in the hourly average, but still in the day's service level
    clock.advance(hours=1)
    soc = dashboard(hall)["queues"][1]
    assert (soc["avg_wait_last_hour_seconds"], soc["called_last_hour"], soc["service_level"]) == (None, 0, 100.0)


def test_figures_are_the_same_from_another_server_process(hall: HallClient, clock: FakeClock, manager_config, db_url) -> None:  # type: ignore[no-untyped-def]
    from tests.hall_server.conftest import make_client

    morning(hall, clock)
    other = make_client(manager_config, db_url, clock)
    other.login("boss")
    try:
        mine, theirs = dashboard(hall), dashboard(other)
        assert mine == theirs
    finally:
        other.db.dispose()


def test_device_health_on_the_dashboard(hall: HallClient) -> None:
    r = hall.req("POST", "/api/v1/halls/t/devices/status", "gw", json={"devices": [
        {"device": "led1", "state": "offline", "detail": "RS-485 无应答"}, {"device": "eval1", "state": "online"}]})
    assert r.status_code == 200, r.get_json()
    dev = dashboard(hall)["devices"]
    assert (dev["total"], dev["online"], dev["offline"], dev["degraded"], dev["unknown"]) == (4, 1, 1, 0, 2)
    assert dev["faults"] == [{"device": "led1", "kind": "led", "window": "1", "state": "offline", "state_label": "离线",
                              "detail": "RS-485 无应答"}]
    assert dashboard(hall)["windows"][0]["devices_faulty"] == ["led1"]


def test_only_managers_see_the_dashboard(hall: HallClient) -> None:
    r = hall.req("GET", "/api/v1/halls/t/dashboard", "clerk1")
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    r = hall.req("GET", "/api/v1/halls/t/dashboard")
    assert r.status_code == 401
    r = hall.req("GET", "/api/v1/halls/nowhere/dashboard", "boss")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "unknown_hall"

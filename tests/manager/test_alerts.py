"""Alert rules: each opens one alert while its condition holds, pushes it to the managers' Socket.IO
room, and closes it when the condition clears; two server processes never raise it twice."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.hall_server.conftest import FakeClock, HallClient, make_client


def check(hall: HallClient) -> list[dict[str, Any]]:
    """One pass of the alert monitor (the server runs it every few seconds; here the test drives time)."""
    return [e.model_dump(mode="json") for e in hall.app.extensions["hall"]["alerts"].check("t")]


def alerts(hall: HallClient, state: str = "all") -> list[dict[str, Any]]:
    if "boss" not in hall.tokens:
        hall.login("boss")
    r = hall.req("GET", f"/api/v1/halls/t/alerts?state={state}", "boss")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["alerts"]


def opened(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["alert"] for e in events if e["action"] == "opened" and e["alert"]["kind"] == kind]


@pytest.fixture
def manager_socket(hall: HallClient):  # type: ignore[no-untyped-def]
    client = hall.socketio.test_client(hall.app, auth={"hall": "t", "token": hall.tokens["boss"]})
    assert client.is_connected()
    client.get_received()  # the snapshot
    yield client
    client.disconnect()


def received_alerts(client) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [m["args"][0] for m in client.get_received() if m["name"] == "alert"]


def test_wait_over_target_opens_once_pushes_live_and_closes_when_served(
        hall: HallClient, clock: FakeClock, manager_socket) -> None:  # type: ignore[no-untyped-def]
    hall.issue(queue="soc")  # target 10 minutes
    clock.advance(minutes=9)
    assert check(hall) == []
    clock.advance(minutes=2)
    events = check(hall)
    [a] = opened(events, "wait_over_target")
    assert a["subject"] == "soc" and a["level"] == "warning" and a["kind_label"] == "等候超时"
    assert a["message"] == "社保医保（B）最长等候已达11分钟，超过目标10分钟"
    assert [e["alert"]["id"] for e in received_alerts(manager_socket)] == [a["id"]]

    clock.advance(minutes=10)  # still over target: the same alert, not a second one
    assert check(hall) == []
    assert [x["id"] for x in alerts(hall, "open")] == [a["id"]]

    hall.act("2", "sign-in", "clerk2")
    hall.act("2", "call-next", "clerk2")
    [closed] = check(hall)
    assert closed["action"] == "closed" and closed["alert"]["id"] == a["id"] and closed["alert"]["status"] == "closed"
    assert alerts(hall, "open") == []
    assert [x["status"] for x in alerts(hall)] == ["closed"]  # today's closed alerts stay listed

    hall.issue(queue="soc")  # the condition comes back later: a new alert
    clock.advance(minutes=11)
    [again] = opened(check(hall), "wait_over_target")
    assert again["id"] != a["id"]


def test_queue_too_long_uses_the_queue_limit_then_the_hall_default(hall: HallClient) -> None:
    for _ in range(3):
        hall.issue(queue="soc")  # soc: max_waiting = 2
    for _ in range(3):
        hall.issue(queue="biz")  # biz: the hall's max_queue_length = 3
    [a] = opened(check(hall), "queue_too_long")
    assert (a["subject"], a["value"], a["threshold"]) == ("soc", 3, 2)
    assert a["message"] == "社保医保（B）等候3人，超过2人"
    hall.issue(queue="biz")
    [b] = opened(check(hall), "queue_too_long")
    assert b["subject"] == "biz"


def test_window_paused_too_long(hall: HallClient, clock: FakeClock) -> None:
    hall.act("1", "sign-in", "clerk1")
    hall.act("1", "pause", "clerk1", reason="培训")
    clock.advance(minutes=15)
    assert check(hall) == []
    clock.advance(minutes=1)
    [a] = opened(check(hall), "pause_too_long")
    assert a["subject"] == "1" and a["message"] == "1号窗口暂停已16分钟（原因：培训），超过15分钟"
    hall.act("1", "resume", "clerk1")
    [closed] = check(hall)
    assert closed["action"] == "closed" and closed["alert"]["kind"] == "pause_too_long"


def test_device_fault_opens_and_clears(hall: HallClient) -> None:
    def report(state: str, detail: str | None = None) -> None:
        r = hall.req("POST", "/api/v1/halls/t/devices/status", "gw",
                     json={"devices": [{"device": "led1", "state": state, "detail": detail}]})
        assert r.status_code == 200, r.get_json()

    report("degraded", "部分灯珠损坏")
    [a] = opened(check(hall), "device_fault")
    assert (a["subject"], a["level"]) == ("led1", "warning")
    assert a["message"] == "1号窗口窗口屏 led1故障：部分灯珠损坏"
    report("online")
    assert [e["action"] for e in check(hall)] == ["closed"]


def serve_and_rate(hall: HallClient, grade: int, comment: str | None = None) -> None:
    hall.issue(queue="biz")
    hall.act("1", "sign-in", "clerk1")
    hall.act("1", "call-next", "clerk1")
    hall.act("1", "start", "clerk1")
    hall.act("1", "finish", "clerk1", outcome="instant")
    r = hall.req("POST", "/api/v1/halls/t/evaluations", "eval1", json={"window": "1", "grade": grade, "comment": comment})
    assert r.status_code == 201, r.get_json()


def test_a_bad_review_alerts_until_its_follow_up_closes(hall: HallClient, clock: FakeClock) -> None:
    serve_and_rate(hall, 1, "态度很差")
    [a] = opened(check(hall), "bad_review")
    assert a["level"] == "critical" and a["message"] == "1号窗口收到差评（非常不满意），票号A001：“态度很差”"
    r = hall.req("POST", f"/api/v1/halls/t/alerts/{a['id']}/ack", "boss")
    assert r.status_code == 200 and r.get_json()["acknowledged_by"] == "boss"
    assert check(hall) == []  # acknowledged, still open: the case is not closed
    [case] = hall.req("GET", "/api/v1/halls/t/followups", "boss").get_json()["cases"]
    for step in ("callback", "fix"):
        r = hall.req("POST", f"/api/v1/halls/t/followups/{case['id']}/{step}", "boss", json={"note": "已处理"})
        assert r.status_code == 200, r.get_json()
    assert hall.req("POST", f"/api/v1/halls/t/followups/{case['id']}/close", "boss").status_code == 200
    [closed] = check(hall)
    assert closed["action"] == "closed" and closed["alert"]["id"] == a["id"]
    assert check(hall) == []  # the same review never alerts again


def test_overdue_follow_up(hall: HallClient, clock: FakeClock) -> None:
    serve_and_rate(hall, 2)
    [case] = hall.req("GET", "/api/v1/halls/t/followups", "boss").get_json()["cases"]
    check(hall)
    clock.advance(days=14)  # well past 5 working days
    [a] = opened(check(hall), "followup_overdue")
    assert a["subject"] == str(case["id"]) and "整改已逾期" in a["message"]


def test_good_reviews_raise_nothing(hall: HallClient) -> None:
    serve_and_rate(hall, 3)
    assert opened(check(hall), "bad_review") == []


def test_acknowledging_is_for_managers_and_pushed(hall: HallClient, clock: FakeClock, manager_socket) -> None:  # type: ignore[no-untyped-def]
    hall.issue(queue="soc")
    clock.advance(minutes=30)
    [a] = opened(check(hall), "wait_over_target")
    assert a["level"] == "critical"  # beyond twice the target
    assert hall.req("POST", f"/api/v1/halls/t/alerts/{a['id']}/ack", "clerk1").status_code == 403
    assert hall.req("POST", "/api/v1/halls/t/alerts/999999/ack", "boss").status_code == 404
    manager_socket.get_received()
    r = hall.req("POST", f"/api/v1/halls/t/alerts/{a['id']}/ack", "boss")
    assert r.status_code == 200
    [pushed] = received_alerts(manager_socket)
    assert pushed["action"] == "acknowledged" and pushed["alert"]["acknowledged_by"] == "boss"
    [listed] = alerts(hall, "open")
    assert listed["acknowledged_at"] is not None and listed["status"] == "open"


def test_two_server_processes_raise_an_alert_once(hall: HallClient, clock: FakeClock, manager_config, db_url) -> None:  # type: ignore[no-untyped-def]
    """Both processes check the same hall at the same moment, several times over: one alert, one push."""
    other = make_client(manager_config, db_url, clock)
    try:
        hall.issue(queue="soc")
        clock.advance(minutes=12)

        def together(fn) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
            barrier = threading.Barrier(6)
            results: list[list[dict[str, Any]]] = []

            def run(h: HallClient) -> None:
                barrier.wait()
                results.append(fn(h))

            threads = [threading.Thread(target=run, args=(h,)) for h in (hall, other) * 3]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return [e for r in results for e in r]

        events = together(check)
        assert [e["action"] for e in events] == ["opened"]
        assert len(alerts(hall, "open")) == 1
        hall.act("2", "sign-in", "clerk2")
        hall.act("2", "call-next", "clerk2")
        events = together(check)
        assert [e["action"] for e in events] == ["closed"]
        assert alerts(other, "open") == []
    finally:
        other.db.dispose()


def test_a_public_socket_never_receives_alerts(hall: HallClient, clock: FakeClock) -> None:
    public = hall.socketio.test_client(hall.app, auth={"hall": "t"})
    public.get_received()
    hall.issue(queue="soc")
    clock.advance(minutes=12)
    assert opened(check(hall), "wait_over_target")
    assert received_alerts(public) == []
    public.disconnect()

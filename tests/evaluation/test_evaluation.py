"""好差评 through the HTTP API on SQLite and PostgreSQL: the pad's prompt after a service, the pad's
grade, who may rate, one evaluation per ticket and stage, unrated after the timeout, online 一事一评,
and a bad review's follow-up case from opening to closing, overdue on a fake clock."""
from __future__ import annotations

import datetime as dt
from typing import Any

from tests.hall_server.conftest import FakeClock, HallClient


def serve(hall: HallClient, window: str = "1", clerk: str = "clerk1", **issue: Any) -> dict[str, Any]:
    """Issue a ticket, and have ``clerk`` at ``window`` call, start and finish it."""
    t = hall.issue(**(issue or {"matter": "licence"}))
    hall.act(window, "sign-in", clerk) if hall.service.window_view("t", window).clerk is None else None
    called = hall.act(window, "call-next", clerk)
    assert called["ticket"]["id"] == t["ticket"]["id"]
    hall.act(window, "start", clerk)
    hall.act(window, "finish", clerk, outcome="instant")
    return t


def pad(hall: HallClient, window: str = "1", expect: int = 201, who: str | None = None, **body: Any) -> dict[str, Any]:
    r = hall.req("POST", "/api/v1/halls/t/evaluations", who or f"evalpad-{window}", json={"window": window, **body})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


_inbox: dict[int, list[dict[str, Any]]] = {}


def wait_for(client: Any, name: str, n: int = 1) -> list[dict[str, Any]]:
    """The first ``n`` not yet taken ``name`` events of a Socket.IO test client (emitted after the
    commit, possibly by another request's thread, so they may take a moment)."""
    import time

    box = _inbox.setdefault(id(client), [])
    for _ in range(100):
        box += client.get_received()
        mine = [m for m in box if m["name"] == name]
        if len(mine) >= n:
            for m in mine[:n]:
                box.remove(m)
            return [m["args"][0] for m in mine[:n]]
        time.sleep(0.05)
    raise AssertionError(f"only {len([m for m in box if m['name'] == name])} {name} events")


def test_the_pad_is_prompted_with_the_service_and_its_grade_is_stored(hall: HallClient) -> None:
    console = hall.socketio.test_client(hall.app, auth={"hall": "t", "token": hall.tokens["clerk1"], "window": "1"})
    t = serve(hall)
    [req] = wait_for(console, "evaluation_request")
    assert req == {"hall": "t", "window": "1", "ticket_id": t["ticket"]["id"], "ticket_number": "A001",
                   "stage": "受理", "clerk_name": "王小明", "staff_no": "1001", "matter_name": "营业执照办理",
                   "timeout_seconds": 30}

    ev = pad(hall, grade=5, sub_scores={"efficiency": 5, "level": 4, "attitude": 5}, comment="很快")
    assert ev["ticket_id"] == t["ticket"]["id"] and ev["grade_label"] == "非常满意" and ev["channel"] == "pad"
    assert (ev["clerk"], ev["clerk_name"], ev["window"], ev["matter"], ev["queue"]) == (
        "clerk1", "王小明", "1", "licence", "biz")
    assert ev["sub_scores"] == {"efficiency": 5, "level": 4, "attitude": 5} and ev["followup_id"] is None

    listed = hall.req("GET", "/api/v1/halls/t/evaluations", "boss").get_json()["evaluations"]
    assert [(e["ticket_number"], e["grade"], e["comment"]) for e in listed] == [("A001", 5, "很快")]
    console.disconnect()


def test_only_the_pad_rates_and_only_once_per_ticket_and_stage(hall: HallClient) -> None:
    t = serve(hall)
    for who in ("clerk1", "boss", "kiosk1", "gw"):
        r = pad(hall, who=who, expect=403, grade=5)
        assert r["error"]["code"] == "forbidden"
    # the pad of window 2 cannot rate window 1's service
    pad(hall, window="1", who="evalpad-2", expect=403, grade=5)
    pad(hall, grade=4, ticket_id=t["ticket"]["id"])
    again = pad(hall, grade=1, ticket_id=t["ticket"]["id"], expect=409)
    assert again["error"]["code"] == "already_evaluated"
    assert pad(hall, grade=1, expect=409)["error"]["code"] == "already_evaluated"
    assert pad(hall, grade=9, expect=422)["error"]["code"] == "invalid_request"


def test_no_answer_before_the_timeout_is_recorded_as_unrated(hall: HallClient, clock: FakeClock) -> None:
    serve(hall)
    clock.advance(seconds=60)
    late = pad(hall, grade=5, expect=409)
    assert late["error"]["code"] == "evaluation_expired" and "未评价" in late["error"]["message"]
    [e] = hall.req("GET", "/api/v1/halls/t/evaluations", "boss").get_json()["evaluations"]
    assert e["grade"] is None and e["grade_label"] == "未评价" and e["grade_class"] == "unrated"
    report = hall.req("GET", "/api/v1/halls/t/reports/daily", "boss").get_json()
    assert report["rows"][0]["unrated"] == 1 and report["rows"][0]["rated"] == 0


def test_a_newer_service_replaces_an_unanswered_prompt(hall: HallClient) -> None:
    first = serve(hall)
    second = serve(hall)
    assert pad(hall, grade=4)["ticket_id"] == second["ticket"]["id"]
    stale = pad(hall, grade=4, ticket_id=first["ticket"]["id"], expect=409)
    assert stale["error"]["code"] == "evaluation_expired"


def test_window_without_a_pad_gets_no_prompt_and_next_stage_is_a_stage_of_its_own(hall: HallClient) -> None:
    t = hall.issue(matter="licence")
    hall.act("1", "sign-in", "clerk1")
    hall.act("1", "call-next", "clerk1")
    hall.act("1", "transfer", "clerk1", next_stage=True)  # 受理 done at window 1 (has a pad)
    hall.act("3", "sign-in", "clerk3")
    hall.act("3", "call-next", "clerk3")
    hall.act("3", "start", "clerk3")
    hall.act("3", "finish", "clerk3", outcome="promised")  # 出件 at window 3 (no pad)
    ev = pad(hall, grade=4)
    assert (ev["ticket_id"], ev["stage"], ev["clerk"], ev["queue"]) == (t["ticket"]["id"], "受理", "clerk1", "biz")
    rows = hall.req("GET", "/api/v1/halls/t/evaluations", "boss").get_json()["evaluations"]
    assert [(e["stage"], e["window"]) for e in rows] == [("受理", "1")]


def test_online_evaluation_once_after_service(hall: HallClient) -> None:
    t = hall.issue(matter="pension")
    token = t["status_url"].rsplit("/", 1)[1]
    url = f"/api/v1/t/{token}/evaluation"
    early = hall.client.post(url, json={"grade": 5})
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "not_finished"
    assert hall.client.get(url).get_json() == {"can_evaluate": False, "evaluated": False}
    hall.act("2", "sign-in", "clerk2")
    hall.act("2", "call-next", "clerk2")
    hall.act("2", "start", "clerk2")
    hall.act("2", "finish", "clerk2", outcome="instant")
    assert hall.client.get(url).get_json() == {"can_evaluate": True, "evaluated": False}
    ok = hall.client.post(url, json={"grade": 4, "sub_scores": {"attitude": 5}})
    assert ok.status_code == 201 and ok.get_json()["channel"] == "online" and "clerk" not in ok.get_json()
    again = hall.client.post(url, json={"grade": 1})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_evaluated"
    assert hall.client.get(url).get_json() == {"can_evaluate": False, "evaluated": True}
    pad(hall, window="2", grade=5)  # 一次一评 at the pad is a separate evaluation of the same visit
    rows = hall.req("GET", "/api/v1/halls/t/evaluations", "boss").get_json()["evaluations"]
    assert sorted((e["channel"], e["stage"], e["clerk"]) for e in rows) == [
        ("online", "一事一评", "clerk2"), ("pad", "受理", "clerk2")]


def test_bad_review_follow_up_from_opening_to_closing(hall: HallClient, clock: FakeClock) -> None:
    managers = hall.socketio.test_client(hall.app, auth={"hall": "t", "token": hall.tokens["boss"]})
    serve(hall)
    ev = pad(hall, grade=1, comment="态度差，材料被退回三次")
    assert ev["grade_class"] == "bad" and ev["followup_id"]
    [e_evt] = wait_for(managers, "evaluation")
    assert e_evt["grade"] == 1 and e_evt["clerk_name"] == "王小明"
    [opened] = wait_for(managers, "followup")
    assert opened["type"] == "opened"

    case = hall.req("GET", f"/api/v1/halls/t/followups/{ev['followup_id']}", "boss").get_json()
    # Friday 2026-11-20 + 5 working days, skipping the weekend and the configured holiday on the 26th
    assert case["deadline"] == "2026-11-30" and case["assignee"] == "boss" and case["status"] == "open"
    assert (case["clerk"], case["window"], case["comment"], case["overdue"]) == ("clerk1", "1", "态度差，材料被退回三次", False)

    base = f"/api/v1/halls/t/followups/{case['id']}"
    assert hall.req("POST", base + "/callback", "clerk1", json={"note": "x"}).status_code == 403
    early = hall.req("POST", base + "/close", "boss")
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "callback_required"
    clock.advance(hours=2)
    r = hall.req("POST", base + "/callback", "boss", json={"note": "已电话回访，群众反映材料清单不清楚"})
    assert r.status_code == 200 and r.get_json()["callback_at"]
    assert hall.req("POST", base + "/close", "boss").get_json()["error"]["code"] == "fix_required"
    r = hall.req("POST", base + "/fix", "boss", json={"note": "更新一次性告知单，窗口培训"})
    assert r.status_code == 200
    closed = hall.req("POST", base + "/close", "boss").get_json()
    assert closed["status"] == "closed" and closed["closed_by"] == "boss" and closed["status_label"] == "已办结"
    assert hall.req("POST", base + "/fix", "boss", json={"note": "again"}).get_json()["error"]["code"] == "case_closed"
    assert [f["type"] for f in wait_for(managers, "followup", 3)] == ["callback", "fix", "closed"]

    listed = hall.req("GET", "/api/v1/halls/t/followups?status=closed", "boss").get_json()["cases"]
    assert [c["id"] for c in listed] == [case["id"]]
    report = hall.req("GET", "/api/v1/halls/t/reports/daily?day=2026-11-20", "boss").get_json()
    top = report["rows"][0]
    assert (top["bad"], top["followed_up"], top["followup_rate"], top["closed_cases"]) == (1, 1, 1.0, 1)
    managers.disconnect()


def test_overdue_cases_are_listed_and_alerted_once(hall: HallClient, clock: FakeClock) -> None:
    managers = hall.socketio.test_client(hall.app, auth={"hall": "t", "token": hall.tokens["boss"]})
    serve(hall)
    case_id = pad(hall, grade=2)["followup_id"]
    evaluations = hall.app.extensions["hall"]["evaluations"]
    clock.now = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc)  # the deadline day: still in time
    assert evaluations.sweep_overdue("t") == 0
    assert hall.req("GET", "/api/v1/halls/t/followups?overdue=true", "boss").get_json()["cases"] == []
    clock.now = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.timezone.utc)
    [c] = hall.req("GET", "/api/v1/halls/t/followups?overdue=true", "boss").get_json()["cases"]
    assert c["id"] == case_id and c["overdue"] is True
    assert evaluations.sweep_overdue("t") == 1
    assert evaluations.sweep_overdue("t") == 0  # alerted once
    overdue = [f for f in wait_for(managers, "followup", 2) if f["type"] == "overdue"]
    assert [f["case"]["id"] for f in overdue] == [case_id]
    managers.disconnect()

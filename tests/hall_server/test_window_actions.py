"""A clerk's day at a window, through the REST API, on SQLite and PostgreSQL."""
from __future__ import annotations

import sqlalchemy as sa

from tests.hall_server.conftest import HallClient


def test_full_service_cycle_is_timestamped(hall: HallClient, clock) -> None:  # type: ignore[no-untyped-def]
    hall.issue(queue="biz")
    hall.act("1", "sign-in")
    clock.advance(minutes=5)
    called = hall.act("1", "call-next")
    assert called["ticket"]["number"] == "A001" and called["message"] == "请A001号到1号窗口办理"
    clock.advance(seconds=40)
    assert hall.act("1", "recall")["recalls"] == 1
    clock.advance(seconds=30)
    started = hall.act("1", "start")
    assert started["status"] == "serving"
    clock.advance(minutes=7)
    done = hall.act("1", "finish", outcome="instant", case_no="JH2026-0001")
    assert done["status"] == "finished"
    # waiting, walking and handling times are derivable from the timestamps
    with hall.db.engine.connect() as conn:
        t = conn.execute(sa.text("SELECT issued_at, called_at, started_at, finished_at, outcome, case_no FROM tickets")).one()
        kinds = [r[0] for r in conn.execute(sa.text("SELECT kind FROM ticket_events ORDER BY id"))]
    assert t.outcome == "instant" and t.case_no == "JH2026-0001"
    assert kinds == ["issued", "called", "recalled", "started", "finished"]
    w = hall.req("GET", "/api/v1/halls/t/windows/1", "clerk1").get_json()
    assert w["status"] == "idle" and w["clerk_name"] == "王小明"


def test_window_prefers_its_queues_in_order(hall: HallClient) -> None:
    hall.issue(queue="soc")
    hall.issue(queue="biz")
    hall.act("1", "sign-in")  # window 1 serves biz before soc
    hall.act("2", "sign-in", who="clerk2")  # window 2 serves soc before biz
    assert hall.act("1", "call-next")["ticket"]["number"] == "A001"
    assert hall.act("2", "call-next", who="clerk2")["ticket"]["number"] == "B001"


def test_nothing_waiting_says_so(hall: HallClient) -> None:
    hall.act("1", "sign-in")
    r = hall.act("1", "call-next")
    assert r["ticket"] is None and r["message"] == "当前没有等候的号"


def test_illegal_transitions_are_refused_and_change_nothing(hall: HallClient) -> None:
    hall.issue(queue="biz")
    r = hall.act("1", "call-next", expect=409)
    assert r["error"]["code"] == "window_closed" and "请先签到" in r["error"]["message"]
    hall.act("1", "sign-in")
    assert hall.act("1", "finish", outcome="instant", expect=409)["error"]["code"] == "no_current_ticket"
    hall.act("1", "call-next")
    r = hall.act("1", "finish", outcome="instant", expect=409)
    assert r["error"]["code"] == "illegal_transition" and "已叫号" in r["error"]["message"]
    assert hall.act("1", "call-next", expect=409)["error"]["code"] == "ticket_in_progress"
    assert hall.act("1", "sign-out", expect=409)["error"]["code"] == "ticket_in_progress"
    assert hall.act("1", "pause", reason="午休", expect=409)["error"]["code"] == "ticket_in_progress"
    assert hall.act("1", "finish", outcome="bogus", expect=422)["error"]["code"] == "invalid_request"
    w = hall.req("GET", "/api/v1/halls/t/windows/1", "clerk1").get_json()
    assert w["status"] == "calling" and w["ticket"]["number"] == "A001"


def test_recall_limit_then_no_show_then_reactivate_behind_k(hall: HallClient, clock) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        hall.issue(queue="biz")
        clock.advance(seconds=20)
    hall.act("1", "sign-in")
    first = hall.act("1", "call-next")["ticket"]
    assert hall.act("1", "no-show", expect=409)["error"]["code"] == "recall_first"
    hall.act("1", "recall")
    hall.act("1", "recall")
    assert hall.act("1", "recall", expect=409)["error"]["code"] == "recall_limit"
    assert hall.act("1", "no-show")["status"] == "no_show"
    # the citizen comes back: two waiting tickets (reactivate_behind = 2) go first
    r = hall.req("POST", f"/api/v1/halls/t/tickets/{first['id']}/reactivate", "clerk1")
    assert r.status_code == 200 and r.get_json()["status"] == "waiting"
    order = []
    for _ in range(5):
        order.append(hall.act("1", "call-next")["ticket"]["number"])
        hall.act("1", "start")
        hall.act("1", "finish", outcome="instant")
    assert order == ["A002", "A003", "A001", "A004", "A005"]


def test_transfer_to_queue_keeps_place_by_issue_time(hall: HallClient, clock) -> None:  # type: ignore[no-untyped-def]
    a = hall.issue(queue="biz")["ticket"]
    clock.advance(minutes=1)
    hall.issue(queue="soc")
    hall.issue(queue="soc")
    hall.act("1", "sign-in")
    hall.act("1", "call-next")
    t = hall.act("1", "transfer", to_queue="soc")
    assert t["queue"] == "soc" and t["number"] == "A001" and t["status"] == "waiting"
    hall.act("2", "sign-in", who="clerk2")
    assert hall.act("2", "call-next", who="clerk2")["ticket"]["id"] == a["id"]  # ahead of B001: issued earlier


def test_transfer_to_window_and_to_next_stage(hall: HallClient) -> None:
    hall.issue(queue="biz")
    hall.issue(queue="soc")
    hall.act("1", "sign-in")
    hall.act("2", "sign-in", who="clerk2")
    hall.act("1", "call-next")
    hall.act("1", "start")
    hall.act("1", "transfer", to_window="2")
    # window 2 prefers soc, but a ticket sent to it comes first
    assert hall.act("2", "call-next", who="clerk2")["ticket"]["number"] == "A001"
    hall.act("2", "start", who="clerk2")
    moved = hall.act("2", "transfer", who="clerk2", next_stage=True)
    assert moved["queue"] == "out" and moved["stage"] == "出件"
    hall.login("clerk2")
    hall.act("2", "call-next", who="clerk2")  # B001
    boss_calls = hall.req("POST", "/api/v1/halls/t/windows/9/call-next", "boss")
    assert boss_calls.status_code == 409  # window 9 not signed in
    hall.auth.set_password("boss", "correct-horse-1", one_time=False)
    hall.login("boss")
    hall.act("9", "sign-in", who="boss")
    assert hall.act("9", "call-next", who="boss")["ticket"]["number"] == "A001"


def test_pause_with_reason_and_resume(hall: HallClient) -> None:
    hall.issue(queue="biz")
    hall.act("1", "sign-in")
    assert hall.act("1", "pause", reason="", expect=422)["error"]["code"] == "invalid_request"
    w = hall.act("1", "pause", reason="午休")
    assert w["status"] == "paused" and w["pause_reason"] == "午休" and w["status_label"] == "暂停服务"
    assert hall.act("1", "call-next", expect=409)["error"]["code"] == "window_paused"
    assert hall.act("1", "resume")["status"] == "idle"
    assert hall.act("1", "call-next")["ticket"]["number"] == "A001"


def test_clerk_cannot_work_another_clerks_window(hall: HallClient) -> None:
    hall.issue(queue="biz")
    hall.act("1", "sign-in")
    assert hall.act("1", "sign-in", who="clerk2", expect=409)["error"]["code"] == "window_taken"
    assert hall.act("1", "call-next", who="clerk2", expect=409)["error"]["code"] == "window_other_clerk"
    assert hall.act("2", "sign-in", expect=409)["error"]["code"] == "clerk_elsewhere"


def test_caller_pad_operates_only_its_window(hall: HallClient) -> None:
    hall.issue(queue="biz")
    hall.act("1", "sign-in")
    assert hall.act("1", "call-next", who="pad1")["ticket"]["number"] == "A001"
    assert hall.act("2", "call-next", who="pad1", expect=403)["error"]["code"] == "forbidden"


def test_call_specific_ticket(hall: HallClient) -> None:
    hall.issue(queue="biz")
    b = hall.issue(queue="biz")["ticket"]
    hall.act("1", "sign-in")
    r = hall.act("1", "call", ticket_id=b["id"])
    assert r["ticket"]["number"] == "A002"
    hall.act("2", "sign-in", who="clerk2")
    assert hall.act("2", "call", who="clerk2", ticket_id=b["id"], expect=409)["error"]["code"] in (
        "illegal_transition", "already_called")


def test_priority_tickets_go_first_but_at_most_two_in_a_row(hall: HallClient, clock) -> None:  # type: ignore[no-untyped-def]
    """The queue's streak of priority calls outlives each call and is shared by its windows: with the
    default ratio of 2, every third call from a queue where normal tickets wait is a normal one."""
    for priority_class in (None, None, "elderly", "elderly", "elderly", "elderly"):
        hall.issue(queue="biz", **({"priority_class": priority_class} if priority_class else {}))
        clock.advance(seconds=10)
    hall.act("1", "sign-in")
    hall.act("2", "sign-in", who="clerk2")
    called = []
    for window, who in [("1", "clerk1"), ("1", "clerk1"), ("2", "clerk2"), ("1", "clerk1"), ("2", "clerk2"),
                        ("2", "clerk2")]:
        called.append(hall.act(window, "call-next", who=who)["ticket"]["number"])
        hall.act(window, "start", who=who)
        hall.act(window, "finish", who=who, outcome="instant")
    assert called == ["A003", "A004", "A001", "A005", "A006", "A002"]


def test_a_case_number_is_kept_exactly_as_typed(hall: HallClient) -> None:
    """On PostgreSQL the window's and ticket's updates travel inside the commit's message as literal
    SQL: quotes, percent signs and placeholders in what a clerk typed must arrive unchanged."""
    hall.issue(queue="biz")
    hall.act("1", "sign-in")
    hall.act("1", "call-next")
    hall.act("1", "start")
    typed = "浙'市监%s-50%%; DROP\\x"
    assert hall.act("1", "finish", outcome="instant", case_no=typed)["status"] == "finished"
    with hall.db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT case_no FROM tickets")).scalar() == typed
    assert hall.act("1", "call-next")["ticket"] is None  # the window is free again

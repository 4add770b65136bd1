"""The gateway's hall state on its own: events in, what the boards show and what is announced out."""
from __future__ import annotations

from typing import Any

from hall_server.gateway.state import HallState


def ticket(tid: int, number: str, status: str = "called", recalls: int = 0, window: str | None = "1") -> dict[str, Any]:
    return {"id": tid, "number": number, "queue": "biz", "queue_name": "企业开办", "status": status,
            "recalls": recalls, "window": window}


def ev(seq: int, kind: str, t: dict[str, Any], window: str = "1") -> dict[str, Any]:
    return {"type": kind, "hall": "t", "seq": seq, "window": window, "ticket": t}


def win(number: str, status: str, t: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"hall": "t", "number": number, "name": f"{number}号窗口", "status": status, "status_label": "",
            "ticket": t, "queues": ["biz"], "pause_reason": "午休" if status == "paused" else None}


def snap(last_seq: int, windows: list[dict[str, Any]], recent: list[dict[str, Any]], waiting: int = 0) -> dict[str, Any]:
    return {"hall": "t", "hall_name": "测试", "last_seq": last_seq, "windows": windows, "recent_calls": recent,
            "queues": [{"id": "biz", "waiting": waiting}]}


def test_first_snapshot_shows_the_hall_but_announces_nothing_old() -> None:
    s = HallState(["1", "2"])
    a1 = ticket(1, "A001")
    out = s.apply_snapshot(snap(5, [win("1", "calling", a1), win("2", "paused")], [ev(5, "called", a1)], waiting=3))
    assert out == []
    assert s.board("1").kind == "called" and s.board("1").ticket == "A001"
    assert s.board("2").kind == "paused"
    assert s.composite() == [("A001", "1号窗口")]
    assert s.pad("1").waiting == 3 and s.pad("1").ticket == "A001"


def test_live_calls_are_announced_once_in_order_and_duplicates_dropped() -> None:
    s = HallState(["1", "2"])
    s.apply_snapshot(snap(0, [win("1", "idle"), win("2", "idle")], []))
    calls = []
    for e in (ev(1, "called", ticket(1, "A001")), ev(2, "called", ticket(2, "A002", window="2"), "2"),
              ev(1, "called", ticket(1, "A001"))):  # the catch-up repeats seq 1
        calls += s.apply_ticket(e)
    assert [(c.number, c.window) for c in calls] == [("A001", "1"), ("A002", "2")]
    assert s.composite() == [("A002", "2号窗口"), ("A001", "1号窗口")]
    recall = s.apply_ticket(ev(3, "recalled", ticket(1, "A001", recalls=1)))
    assert [(c.number, c.recall) for c in recall] == [("A001", True)]
    assert s.board("1").call == (1, 1)  # a new call key: the board blinks again


def test_reconnect_announces_calls_still_waiting_but_not_answered_or_old_ones() -> None:
    s = HallState(["1", "2", "3"])
    a1 = ticket(1, "A001")
    s.apply_snapshot(snap(0, [win("1", "idle"), win("2", "idle"), win("3", "idle")], []))
    assert len(s.apply_ticket(ev(1, "called", a1))) == 1
    # link lost; meanwhile window 1 finished A001 and called A002, window 2 called and served A003,
    # window 3 called A004
    a2, a3, a4 = ticket(2, "A002"), ticket(3, "A003", "serving", window="2"), ticket(4, "A004", window="3")
    out = s.apply_snapshot(snap(9, [win("1", "calling", a2), win("2", "serving", a3), win("3", "calling", a4)],
                                [ev(1, "called", a1), ev(4, "called", a2), ev(5, "called", a3, "2"),
                                 ev(8, "called", a4, "3")]))
    assert [(c.number, c.window) for c in out] == [("A002", "1"), ("A004", "3")]
    assert s.composite()[0] == ("A004", "3号窗口") and len(s.composite()) == 4
    # the same snapshot again (another reconnect) announces nothing
    assert s.apply_snapshot(snap(9, [win("1", "calling", a2), win("2", "serving", a3), win("3", "calling", a4)], [])) == []


def test_state_file_round_trip_keeps_a_restarted_gateway_from_repeating_a_call() -> None:
    s = HallState(["1"])
    a1 = ticket(1, "A001")
    s.apply_snapshot(snap(0, [win("1", "idle")], []))
    s.apply_ticket(ev(1, "called", a1))
    restarted = HallState(["1"])
    restarted.load(s.dump())
    assert restarted.apply_snapshot(snap(1, [win("1", "calling", a1)], [ev(1, "called", a1)])) == []


def test_an_older_ticket_event_does_not_move_a_window_back() -> None:
    s = HallState(["1"])
    s.apply_snapshot(snap(0, [win("1", "idle")], []))
    s.apply_ticket(ev(2, "finished", ticket(1, "A001", "finished")))
    s.apply_window(win("1", "idle"))
    s.apply_ticket(ev(1, "called", ticket(1, "A001")))  # arrived late (catch-up interleaving)
    assert s.board("1").kind == "idle"


def test_a_call_that_overtook_its_snapshot_stays_on_the_board_and_is_said_once() -> None:
    """Should a call made just after a reconnect's snapshot was read ever be applied before that
    snapshot (python-engineio's stock client hands each message to a thread of its own; the gateway's
    link no longer does, and the state does not rely on it)."""
    s = HallState(["1", "2"])
    a1, a2, a3 = ticket(1, "A001"), ticket(2, "A002"), ticket(3, "A003", window="2")
    s.apply_snapshot(snap(0, [win("1", "idle"), win("2", "idle")], []))
    s.apply_ticket(ev(1, "called", a1))
    # the link drops and comes back; the server reads the snapshot (seq 3: window 1 calls A001, window 2
    # calls A003, both while we were away), then window 1 calls A002 (seq 4) and that event comes first
    assert [(c.number, c.window) for c in s.apply_ticket(ev(4, "called", a2))] == [("A002", "1")]
    out = s.apply_snapshot(snap(3, [win("1", "calling", a1), win("2", "calling", a3)],
                                [ev(1, "called", a1), ev(3, "called", a3, "2")]))
    assert [(c.number, c.window) for c in out] == [("A003", "2")]  # not A001 again, not A002 twice
    assert s.board("1").ticket == "A002" and s.board("2").ticket == "A003"
    assert s.composite() == [("A002", "1号窗口"), ("A003", "2号窗口"), ("A001", "1号窗口")]
    assert s.apply_ticket(ev(4, "called", a2)) == []  # the server's catch-up repeats it: dropped
    assert s.board("1").ticket == "A002"

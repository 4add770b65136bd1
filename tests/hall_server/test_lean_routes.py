"""Issuing and the clerk's window actions answered before Flask (hall_server/lean_routes.py) answer,
refuse and publish exactly as the Flask views do: the same session of requests, good and bad, runs
against an app with the lean handler and one without, on fresh databases and the same clock."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from flask import request_started

from hall_server.config import HallConfig

from .conftest import PG_URL, FakeClock, make_client, reset_postgres

P = "/api/v1/halls/t/windows/1/"


def _session(hc: Any) -> list[tuple[str, int, Any]]:
    """A clerk's morning at window 1, with the mistakes clients make, and every answer."""
    answers: list[tuple[str, int, Any]] = []

    def rec(label: str, r: Any) -> None:
        answers.append((label, r.status_code, _tokens_out(r.get_json(silent=True))))

    def post(label: str, action: str, who: str | None = "clerk1", url: str = P, **kw: Any) -> None:
        rec(label, hc.req("POST", url + action, who, **kw))

    for action in ("call-next", "start", "finish", "recall", "no-show"):
        post(f"{action}: no token", action, None)
        post(f"{action}: unknown token", action, None, headers={"Authorization": "Bearer nope"})
        post(f"{action}: basic auth", action, None, headers={"Authorization": "Basic YTpi"})
        post(f"{action}: a kiosk", action, "kiosk1")
        post(f"{action}: unknown hall", action, url="/api/v1/halls/zz/windows/1/")
        post(f"{action}: unknown window", action, url="/api/v1/halls/t/windows/99/")
        post(f"{action}: unknown window, in Chinese", action, url="/api/v1/halls/t/windows/综合/")
        post(f"{action}: window not signed in", action)
        post(f"{action}: malformed JSON", action, data="{x", content_type="application/json")
        rec(f"{action}: GET", hc.req("GET", P + action, "clerk1"))
        post(f"{action}: trailing slash", action + "/")
    rec("sign in", hc.req("POST", P + "sign-in", "clerk1"))
    post("clerk2 at clerk1's window", "call-next", "clerk2")
    post("nothing waiting", "call-next")
    tickets = "/api/v1/halls/t/tickets"

    def issue(label: str, who: str | None = "kiosk1", url: str = tickets, **kw: Any) -> None:
        rec(label, hc.req("POST", url, who, **kw))

    for i in range(3):
        issue(f"issue {i}", json={"request_id": f"lean-parity-{i:04d}", "queue": "biz"})
    issue("issue: the same request id again", json={"request_id": "lean-parity-0001", "queue": "biz"})
    issue("issue: a matter, with an ID number", json={"request_id": "lean-parity-0100", "matter": "pension",
                                                       "id_number": "11010519491231002X"})
    good = {"request_id": "lean-parity-0150", "queue": "biz"}
    for label, kw in (("no token", {"who": None, "json": good}), ("a clerk's pad", {"who": "pad1", "json": good}),
                      ("unknown hall", {"url": "/api/v1/halls/zz/tickets", "json": good}),
                      ("no body", {}), ("an array", {"json": ["biz"]}),
                      ("no request id", {"json": {"queue": "biz"}}),
                      ("a short request id", {"json": {"request_id": "x", "queue": "biz"}}),
                      ("unknown queue", {"json": {"request_id": "lean-parity-0200", "queue": "nope"}}),
                      ("unknown channel", {"json": {"request_id": "lean-parity-0201", "queue": "biz",
                                                    "channel": "fax"}}),
                      ("a kiosk on the guide channel", {"json": {"request_id": "lean-parity-0202", "queue": "biz",
                                                                 "channel": "guide"}}),
                      ("a bad ID number", {"json": {"request_id": "lean-parity-0203", "queue": "biz",
                                                    "id_number": "123"}}),
                      ("a bad appointment time", {"json": {"request_id": "lean-parity-0204", "queue": "biz",
                                                           "appointment_at": "tomorrow"}}),
                      ("malformed JSON", {"data": '{"queue": ', "content_type": "application/json"}),
                      ("text body", {"data": "queue=biz", "content_type": "text/plain"})):
        issue(f"issue: {label}", **kw)
    issue("issue: guide desk by the manager", "boss", json={"request_id": "lean-parity-0300", "queue": "soc",
                                                            "channel": "guide", "note": "老年人"})
    rec("issue: GET", hc.req("GET", tickets, "kiosk1"))
    post("start before a call", "start")
    post("finish before a call", "finish", json={"outcome": "instant"})
    post("call next", "call-next")
    post("call next again", "call-next")
    post("recall", "recall")
    post("start with an empty body", "start", json={})
    for label, kw in (("no body", {}), ("text body", {"data": "outcome=instant", "content_type": "text/plain"}),
                      ("an array", {"json": [1]}), ("unknown outcome", {"json": {"outcome": "bogus"}}),
                      ("case number too long", {"json": {"outcome": "instant", "case_no": "x" * 65}}),
                      ("malformed JSON", {"data": '{"outcome":', "content_type": "application/json"}),
                      ("body over the size limit", {"data": "{" + " " * 70_000 + "}",
                                                    "content_type": "application/json"}),
                      ("not UTF-8", {"data": b'{"outcome": "\xff"}', "content_type": "application/json"})):
        post(f"finish: {label}", "finish", **kw)
    post("finish with a case number and an extra field", "finish",
         json={"outcome": "promised", "case_no": "（2026）第1号", "extra": 1})
    post("call next: the second", "call-next")
    post("no-show before a recall", "no-show")
    post("recall from the caller pad", "recall", "pad1")
    post("recall by the manager", "recall", "boss")
    post("no-show", "no-show")
    post("finish a no-show", "finish", json={"outcome": "returned"})
    post("call next: the third", "call-next", headers={"Content-Type": "application/json; charset=utf-8"}, data="")
    rec("pause", hc.req("POST", P + "pause", "clerk1", json={"reason": "午休"}))
    post("start while paused", "start")
    post("finish while paused", "finish", json={"outcome": "instant"})
    post("call next while paused", "call-next")
    return answers


def _tokens_out(answer: Any) -> Any:
    """The answer with each ticket's random mobile-page token replaced by a placeholder."""
    return json.loads(re.sub(r"/t/[A-Za-z0-9_-]+", "/t/TOKEN", json.dumps(answer, ensure_ascii=False)))


def _run(config: HallConfig, db_url: str, *, lean: bool) -> tuple[list[Any], list[Any], int]:
    clock = FakeClock(dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.timezone.utc))
    hc = make_client(config, db_url, clock, lean_routes=lean)
    through_flask = []

    def counted(sender: Any, **kw: Any) -> None:
        through_flask.append(1)

    request_started.connect(counted, hc.app)
    try:
        for user in ("clerk1", "clerk2", "boss"):
            hc.login(user)
        hc.device("kiosk1")
        hc.device("pad1")
        board = hc.socketio.test_client(hc.app, auth={"hall": "t", "token": hc.tokens["boss"]})
        board.get_received()  # the snapshot on connecting
        flask_before = len(through_flask)
        answers = _session(hc)
        events = [(e["name"], _tokens_out(e["args"])) for e in board.get_received() if e["name"] != "queues"]
        board.disconnect()
        return answers, events, len(through_flask) - flask_before
    finally:
        request_started.disconnect(counted, hc.app)
        hc.db.dispose()


def test_issuing_and_window_actions_answer_refuse_and_publish_as_the_flask_views_do(
        small_config: HallConfig, db_url: str, tmp_path: Path) -> None:
    flask_answers, flask_events, flask_count = _run(small_config, db_url, lean=False)
    if db_url == PG_URL:
        reset_postgres()
        lean_url = db_url
    else:
        lean_url = f"sqlite:///{tmp_path}/lean.db"
    lean_answers, lean_events, lean_count = _run(small_config, lean_url, lean=True)

    assert [a[0] for a in lean_answers] == [a[0] for a in flask_answers]
    for lean, flask in zip(lean_answers, flask_answers):
        assert lean == flask
    assert lean_events == flask_events
    # the session did call, start, finish, refuse: the comparison is not between two empty lists
    statuses = {status for _label, status, _body in flask_answers}
    assert {200, 400, 401, 403, 404, 405, 409, 413, 422} <= statuses
    assert [name for name, _ in flask_events].count("ticket") >= 8
    assert sum(1 for label, status, _b in flask_answers if label.startswith("issue") and status == 201) == 5
    # and the lean handler answered those requests itself: only the session's other requests (the
    # GETs, the trailing slashes, the over-size body, sign-in, pause) reached Flask
    assert lean_count < flask_count
    to_flask = [label for label, _s, _b in flask_answers
                if label in ("sign in", "pause") or label.endswith((": GET", ": trailing slash", "size limit"))]
    assert flask_count - lean_count == len(flask_answers) - len(to_flask)

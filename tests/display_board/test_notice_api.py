"""The hall notice: a manager sets it, anyone (the screen) reads it, the hall room is told, a restart keeps it."""
from __future__ import annotations

from tests.hall_server.conftest import HallClient, clock, db_url, hall, make_client, small_config  # noqa: F401

URL = "/api/v1/halls/t/notice"


def test_manager_sets_the_notice_and_the_hall_room_is_told(hall: HallClient) -> None:
    assert hall.req("GET", URL).get_json() == {"hall": "t", "text": "", "updated_at": None}
    screen = hall.socketio.test_client(hall.app, auth={"hall": "t"})  # the public room, no token
    assert screen.is_connected()
    screen.get_received()

    r = hall.req("PUT", URL, "boss", json={"text": "  今天 16:00 起\n社保系统升级  "})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["text"] == "今天 16:00 起 社保系统升级"  # one scrolling line
    got = [e for e in screen.get_received() if e["name"] == "notice"]
    assert [e["args"][0] for e in got] == [body]
    assert hall.req("GET", URL).get_json() == body  # public: no token needed
    screen.disconnect()


def test_only_managers_may_set_it_and_bad_text_is_refused_in_chinese(hall: HallClient) -> None:
    r = hall.req("PUT", URL, "clerk1", json={"text": "x"})
    assert r.status_code == 403 and "无权大厅管理" in r.get_json()["error"]["message"]
    r = hall.req("PUT", URL, "kiosk1", json={"text": "x"})
    assert r.status_code == 403
    assert hall.req("PUT", URL, json={"text": "x"}).status_code == 401
    r = hall.req("PUT", URL, "boss", json={"text": "长" * 501})
    assert r.status_code == 422 and r.get_json()["error"]["message"].startswith("请求参数有误")
    r = hall.req("PUT", URL, "boss", json={"text": "响铃\x07"})
    assert r.status_code == 422 and "控制字符" in r.get_json()["error"]["message"]
    assert hall.req("PUT", "/api/v1/halls/nope/notice", "boss", json={"text": "x"}).status_code in (403, 404)
    assert hall.req("GET", "/api/v1/halls/nope/notice").status_code == 404
    assert hall.req("GET", URL).get_json()["text"] == ""  # nothing above changed it


def test_a_restart_keeps_the_notice_and_an_empty_text_clears_it(hall: HallClient, small_config, db_url: str, clock) -> None:  # type: ignore[no-untyped-def]
    assert hall.req("PUT", URL, "boss", json={"text": "请文明排队"}).status_code == 200
    hall.db.dispose()
    again = make_client(small_config, db_url, clock)  # a new server process on the same database
    try:
        assert again.req("GET", URL).get_json()["text"] == "请文明排队"
        again.login("boss")
        assert again.req("PUT", URL, "boss", json={"text": ""}).get_json()["text"] == ""
        assert again.req("GET", URL).get_json()["text"] == ""
    finally:
        again.db.dispose()

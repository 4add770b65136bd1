"""Live events over Socket.IO against a real server process: snapshot first, calls in order,
reconnects resynchronise, rooms are guarded, and a second process's events arrive through Redis."""
from __future__ import annotations

import http.client
import json
import queue
import select
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import socketio

from tests.conftest import REDIS_URL
from tests.hall_server.server_proc import ServerProcess


class Listener:
    def __init__(self, url: str, auth: dict[str, Any]) -> None:
        self.events: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        for name in ("snapshot", "ticket", "window", "queues"):
            self.client.on(name, self._handler(name))
        self.url, self.auth = url, auth

    def _handler(self, name: str):  # type: ignore[no-untyped-def]
        return lambda data: self.events.put((name, data))

    def connect(self) -> "Listener":
        self.client.connect(self.url, auth=self.auth, transports=["websocket"], wait_timeout=10)
        return self

    def next(self, name: str | None = None, timeout: float = 10.0) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name or 'event'} within {timeout}s")
            ev = self.events.get(timeout=left)
            if name is None or ev[0] == name:
                return ev

    def calls(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        out = []
        while len(out) < n:
            _, data = self.next("ticket", timeout)
            if data["type"] == "called":
                out.append(data)
        return out


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.s = requests.Session()
        self.n = 0

    def token(self, username: str, password: str) -> str:
        r = self.s.post(f"{self.base}/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def post(self, path: str, token: str, **body: Any) -> dict[str, Any]:
        r = self.s.post(f"{self.base}/api/v1{path}", json=body or None, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code < 300, r.text
        return r.json()

    def issue(self, token: str, queue: str = "biz") -> dict[str, Any]:
        self.n += 1
        return self.post("/halls/t/tickets", token, queue=queue, request_id=f"live-{self.n:06d}-{time.time_ns()}")


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(db_url, tmp_path)
    *_, kiosk = srv.hall_all(("db", "upgrade"), ("user", "clerk1", "--password", "clerk-pass-1"),
                             ("device-token", "t", "kiosk1"))
    srv.kiosk = kiosk.strip()  # type: ignore[attr-defined]
    srv.start()
    yield srv
    srv.stop()


def test_snapshot_first_then_every_call_in_order(server: ServerProcess) -> None:
    api = Api(server.url)
    clerk = api.token("clerk1", "clerk-pass-1")
    for _ in range(12):
        api.issue(server.kiosk)  # type: ignore[attr-defined]
    screen = Listener(server.url, {"hall": "t"}).connect()
    name, snap = screen.next()
    assert name == "snapshot"  # before anything else
    assert snap["hall_name"] == "测试政务服务中心"
    assert {q["id"]: q["waiting"] for q in snap["queues"]}["biz"] == 12
    api.post("/halls/t/windows/1/sign-in", clerk)
    numbers = []
    for _ in range(10):  # a burst of calls
        numbers.append(api.post("/halls/t/windows/1/call-next", clerk)["ticket"]["number"])
        api.post("/halls/t/windows/1/start", clerk)
        api.post("/halls/t/windows/1/finish", clerk, outcome="instant")
    got = screen.calls(10)
    assert [c["ticket"]["number"] for c in got] == numbers
    assert [c["seq"] for c in got] == sorted(c["seq"] for c in got)
    assert all(c["window"] == "1" for c in got)
    _, queues = screen.next("queues")  # coalesced queue snapshot
    assert {q["id"]: q["waiting"] for q in queues["queues"]}["biz"] <= 2
    screen.client.disconnect()


def test_reconnect_gets_the_true_state(server: ServerProcess) -> None:
    api = Api(server.url)
    clerk = api.token("clerk1", "clerk-pass-1")
    for _ in range(3):
        api.issue(server.kiosk)  # type: ignore[attr-defined]
    api.post("/halls/t/windows/1/sign-in", clerk)
    screen = Listener(server.url, {"hall": "t"}).connect()
    screen.next("snapshot")
    screen.client.disconnect()
    api.post("/halls/t/windows/1/call-next", clerk)  # while the screen is away
    again = Listener(server.url, {"hall": "t"}).connect()
    name, snap = again.next()
    assert name == "snapshot"
    assert [c["ticket"]["number"] for c in snap["recent_calls"]] == ["A001"]
    win = {w["number"]: w for w in snap["windows"]}["1"]
    assert win["status"] == "calling" and win["ticket"]["number"] == "A001"
    again.client.disconnect()


def test_window_room_needs_a_token_and_unknown_hall_is_refused(server: ServerProcess) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        Listener(server.url, {"hall": "t", "window": "1"}).connect()
    with pytest.raises(socketio.exceptions.ConnectionError):
        Listener(server.url, {"hall": "nope"}).connect()
    api = Api(server.url)
    clerk = api.token("clerk1", "clerk-pass-1")
    console = Listener(server.url, {"hall": "t", "window": "1", "token": clerk}).connect()
    assert console.next()[0] == "snapshot"
    console.client.disconnect()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_processes_share_events_through_redis(db_url: str, tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    # A runs the production stack (gunicorn's gevent pywsgi worker), B runs `hall serve`
    a = ServerProcess(db_url, tmp_path, redis_url=REDIS_URL, gunicorn="gevent_pywsgi")
    *_, kiosk = a.hall_all(("db", "upgrade"), ("user", "clerk1", "--password", "clerk-pass-1"),
                           ("device-token", "t", "kiosk1"))
    kiosk = kiosk.strip()
    b = ServerProcess(db_url, tmp_path, redis_url=REDIS_URL)
    a.start()
    b.start()
    try:
        screen = Listener(a.url, {"hall": "t"}).connect()  # watches process A
        screen.next("snapshot")
        api_b = Api(b.url)  # everything happens through process B
        clerk = api_b.token("clerk1", "clerk-pass-1")
        api_b.issue(kiosk)
        api_b.post("/halls/t/windows/1/sign-in", clerk)
        called = api_b.post("/halls/t/windows/1/call-next", clerk)["ticket"]
        got = screen.calls(1)
        assert got[0]["ticket"]["id"] == called["id"] and got[0]["window"] == "1"
        # numbering is shared too: process A continues after B's ticket
        assert Api(a.url).issue(kiosk)["ticket"]["number"] == "A002"
        screen.client.disconnect()
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("worker", ["gevent_pywsgi", "gthread"])
def test_gunicorn_serves_the_api_and_live_events(db_url: str, tmp_path: Path, worker: str) -> None:
    """The production entry (hall_server.wsgi under gunicorn, gevent or gthread worker) prepares the
    database itself and serves REST and Socket.IO like `hall serve`, in the async mode of its worker
    (gevent's: every connection a greenlet; threading mode there would run Socket.IO on gevent-patched
    threads, a combination nobody measured)."""
    srv = ServerProcess(db_url, tmp_path, gunicorn=worker)
    srv.start()
    try:
        assert "首次运行" in srv.log.read_text()  # the first run printed the admin's one-time password
        health = requests.get(srv.url + "/healthz", timeout=5).json()
        assert health["async_mode"] == ("gevent" if worker.startswith("gevent") else "threading")
        _, kiosk = srv.hall_all(("user", "clerk1", "--password", "clerk-pass-1"), ("device-token", "t", "kiosk1"))
        kiosk = kiosk.strip()
        screen = Listener(srv.url, {"hall": "t"}).connect()
        screen.next("snapshot")
        api = Api(srv.url)
        clerk = api.token("clerk1", "clerk-pass-1")
        assert api.issue(kiosk)["ticket"]["number"] == "A001"
        api.post("/halls/t/windows/1/sign-in", clerk)
        called = api.post("/halls/t/windows/1/call-next", clerk)["ticket"]
        assert screen.calls(1)[0]["ticket"]["id"] == called["id"]
        screen.client.disconnect()
    finally:
        srv.stop()


class RawBoard:
    """A board on the bare Engine.IO websocket, so the test can see what is already in its socket."""

    def __init__(self, url: str, hall: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
                                              timeout=10)
        assert self.ws.recv().startswith("0")  # Engine.IO open
        self.sock = self.ws.sock
        self.ws.send('40{"hall": "%s"}' % hall)  # Socket.IO connect to the public room

    def calls(self, timeout: float) -> list[int]:
        """Called ticket ids in the frames that arrive until the socket has been quiet for ``timeout``
        (0: the frames in the socket now)."""
        seen = []
        while select.select([self.sock], [], [], timeout)[0]:
            text = self.ws.recv()  # websocket-client reads exactly one frame's bytes, nothing beyond
            if text == "2":  # Engine.IO ping
                self.ws.send("3")
            elif text.startswith("42"):
                name, data = json.loads(text[2:])
                if name == "ticket" and data["type"] == "called":
                    seen.append(data["ticket"]["id"])
        return seen


def test_a_board_has_the_call_before_the_clerk_has_the_answer(db_url: str, tmp_path: Path) -> None:
    """Production stack: the frame of a call is in a board's socket by the time the first byte of the
    clerk's HTTP answer arrives, so the board does not lag the console. (Guaranteed for a call whose
    commit no other commit overlaps: one that does hands its events to that one's request, in seq order,
    and answers at once.)"""
    srv = ServerProcess(db_url, tmp_path, gunicorn="gevent_pywsgi")
    srv.start()
    try:
        _, kiosk = srv.hall_all(("user", "clerk1", "--password", "clerk-pass-1"), ("device-token", "t", "kiosk1"))
        kiosk = kiosk.strip()
        api = Api(srv.url)
        clerk = api.token("clerk1", "clerk-pass-1")
        for _ in range(10):
            api.issue(kiosk)
        api.post("/halls/t/windows/1/sign-in", clerk)
        board = RawBoard(srv.url, "t")
        board.calls(1.0)  # connect answer, snapshot, the issues' events
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        auth = {"Authorization": f"Bearer {clerk}", "Content-Type": "application/json"}
        for _ in range(8):
            conn.request("POST", "/api/v1/halls/t/windows/1/call-next", headers=auth)
            shown: list[int] = []
            while True:  # what the board has each time either socket wakes us, until the answer starts
                ready = select.select([conn.sock, board.sock], [], [], 10)[0]
                assert ready, "no answer within 10 s"
                if board.sock in ready:
                    shown += board.calls(0)
                if conn.sock in ready:
                    break
            resp = conn.getresponse()
            assert resp.status == 200
            called = json.loads(resp.read())["ticket"]["id"]
            assert called in shown, f"call {called} was not on the board when the clerk's answer arrived"
            for action, body in (("start", None), ("finish", '{"outcome": "instant"}')):
                conn.request("POST", f"/api/v1/halls/t/windows/1/{action}", body=body, headers=auth)
                done = conn.getresponse()
                assert done.status == 200, done.read()
                done.read()
            board.calls(0.05)
        board.ws.close()
        conn.close()
    finally:
        srv.stop()

"""Gateway tests: a real `hall serve` process, the hall bus simulator on a real TCP port (and pty), and
the gateway between them; a TCP proxy in front of the server stands in for the hall's network link."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from hall_server.gateway import Gateway, parse_gateway_config
from hall_server.ports import free_port
from simulators.base import SimulatorServer
from simulators.hallbus_sim import HallBusSim
from tests.hall_server.conftest import db_url  # noqa: F401  (SQLite and PostgreSQL)
from tests.hall_server.server_proc import ServerProcess

HERE = Path(__file__).parent
HALL = "t"
PASSWORD = "clerk-pass-1"
WINDOWS = [str(w) for w in range(1, 11)]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; bounded so a broken gateway fails instead of hanging."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - report the last problem if it never settles
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


class Api:
    """The hall server's REST API as a clerk's console and a kiosk use it."""

    def __init__(self, server: ServerProcess) -> None:
        self.base = server.url
        self.s = requests.Session()
        self.tokens: dict[str, str] = {}
        self.n = 0

    def login(self, username: str) -> str:
        r = self.s.post(f"{self.base}/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=10)
        assert r.status_code == 200, r.text
        self.tokens[username] = r.json()["token"]
        return self.tokens[username]

    def req(self, method: str, path: str, who: str, body: Any = None, expect: int | None = 200) -> Any:
        r = self.s.request(method, f"{self.base}/api/v1{path}", json=body,
                           headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=10)
        if expect is not None:
            assert r.status_code == expect, (path, r.status_code, r.text)
        return r.json()

    def act_parallel(self, window: str, action: str) -> Any:
        """Like act, on a session of its own (for calls from several threads at once)."""
        r = requests.post(f"{self.base}/api/v1/halls/{HALL}/windows/{window}/{action}", timeout=10,
                          headers={"Authorization": f"Bearer {self.tokens[f'clerk{window}']}"})
        assert r.status_code == 200, r.text
        return r.json()

    def sign_in(self, window: str) -> None:
        who = f"clerk{window}"
        if who not in self.tokens:
            self.login(who)
        self.req("POST", f"/halls/{HALL}/windows/{window}/sign-in", who)

    def act(self, window: str, action: str, body: Any = None, expect: int | None = 200) -> Any:
        return self.req("POST", f"/halls/{HALL}/windows/{window}/{action}", f"clerk{window}", body, expect)

    def issue(self, n: int = 1, queue: str = "biz") -> list[str]:
        out = []
        for _ in range(n):
            self.n += 1
            r = self.req("POST", f"/halls/{HALL}/tickets", "kiosk1",
                         {"queue": queue, "request_id": f"gw-{self.n:06d}-{time.time_ns()}"}, expect=201)
            out.append(r["ticket"]["number"])
        return out

    def window(self, window: str) -> dict[str, Any]:
        return self.req("GET", f"/halls/{HALL}/windows/{window}", f"clerk{window}")

    def snapshot(self) -> dict[str, Any]:
        return self.s.get(f"{self.base}/api/v1/halls/{HALL}/snapshot", timeout=10).json()

    def devices(self) -> dict[str, dict[str, Any]]:
        data = self.req("GET", f"/halls/{HALL}/devices", "gw")
        return {d["device"]: d for d in data["devices"]}


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:  # noqa: F811
    srv = ServerProcess(db_url, tmp_path, config=HERE / "gw_hall.toml")
    # Schema, passwords and device tokens in one go (what `hall db upgrade`, `hall user` and
    # `hall device-token` do), without a Python process or an Argon2 hash per account.
    from sqlalchemy import update

    from hall_server import models as m
    from hall_server.auth import Auth, hash_password
    from hall_server.config import load_config
    from hall_server.db import Database
    from hall_server.migrations import upgrade

    upgrade(db_url)
    db = Database(db_url)
    auth = Auth(load_config(HERE / "gw_hall.toml"), db)
    auth.sync_users()
    with db.write() as s:
        s.execute(update(m.User).values(password_hash=hash_password(PASSWORD), must_change_password=False))
    srv.tokens = {d: auth.device_token(HALL, d) for d in ("gw", "kiosk1", "evalpad-1")}  # type: ignore[attr-defined]
    db.dispose()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: ServerProcess) -> Api:
    a = Api(server)
    a.tokens.update(server.tokens)  # type: ignore[attr-defined]
    return a


BUS_DEVICES = ([{"address": w, "type": "led"} for w in range(1, 11)]
               + [{"address": 99, "type": "composite"}, {"address": 101, "type": "caller"},
                  {"address": 151, "type": "evalpad"}])


@pytest.fixture
def bus() -> Iterator[tuple[HallBusSim, SimulatorServer]]:
    sim = HallBusSim.from_options({"devices": BUS_DEVICES})
    srv = SimulatorServer(sim, name="bus1", tcp_port=0).start()
    yield sim, srv
    srv.stop()


def gateway_config(server_url: str, tokens: dict[str, str], port: str, tmp_path: Path, **extra: Any) -> Any:
    devices = ([{"id": f"led-{w}", "kind": "led", "address": w, "window": w} for w in range(1, 11)]
               + [{"id": "led-hall", "kind": "composite", "address": 99},
                  {"id": "caller-1", "kind": "caller", "address": 101, "window": "1"},
                  {"id": "evalpad-1", "kind": "evalpad", "address": 151, "window": "1", "token": tokens["evalpad-1"]}])
    data = {
        "server": server_url, "hall": HALL, "device": "gw", "token": tokens["gw"],
        "state_file": str(tmp_path / "gateway-state.json"), "report_interval": 2.0,
        "voice": {"player": "file", "folder": str(tmp_path / "voice-out"), "cache_dir": str(tmp_path.parent / "voice-cache"),
                  "repeat": 1, "chime": True},
        "buses": [{"name": "bus1", "port": port, "heartbeat_interval": 0.5, "offline_retry_interval": 0.5,
                   "devices": devices}],
    }
    data.update(extra)
    return parse_gateway_config(data)


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def make(server_url: str, tokens: dict[str, str], port: str, **extra: Any) -> Gateway:
        gw = Gateway(gateway_config(server_url, tokens, port, tmp_path, **extra)).start()
        started.append(gw)
        assert gw.wait_synced(20), "gateway never received the hall snapshot"
        return gw

    yield make
    for gw in started:
        gw.stop()


class TcpProxy:
    """Forwards 127.0.0.1:port to the server; ``cut()`` drops every connection and refuses new ones
    (a network outage between the hall and the server), ``restore()`` lets them through again."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        with self._lock:
            self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not ls:  # cut while this one was being connected: it must not survive
                    client.close()
                    upstream.close()
                    return
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            socks, self._socks = self._socks, []
        if listener is not None:
            listener.close()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.cut()


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[TcpProxy]:
    p = TcpProxy(server.port)
    yield p
    p.close()

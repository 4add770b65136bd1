"""A real `hall serve` process, the SAM reader simulator on a pty, the printer simulator over TCP and
the kiosk client between them, for the kiosk's browser tests."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from kiosk_client.app import KioskProcess, start_kiosk
from kiosk_client.config import make_config
from simulators.base import SimulatorServer
from simulators.escpos_sim import EscPosPrinterSimulator
from simulators.sam_sim import SamReaderSimulator
from tests.hall_server.conftest import db_url  # noqa: F401  (SQLite and PostgreSQL)
from tests.hall_server.server_proc import ServerProcess

HERE = Path(__file__).parent
PASSWORD = "kiosk-test-pw-1"


class Hall:
    """The running server with the helpers the tests need."""

    def __init__(self, proc: ServerProcess) -> None:
        self.proc = proc
        self.url = proc.url
        self.tokens: dict[str, str] = {}

    def api(self, method: str, path: str, who: str | None = None, expect: int | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        r = requests.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kw)
        if expect is not None:
            assert r.status_code == expect, (path, r.status_code, r.text)
        return r.json()

    def login(self, username: str) -> str:
        self.proc.hall("user", username, "--password", PASSWORD)
        return self.sign_in(username)

    def sign_in(self, username: str) -> str:
        """Sign in through the API as a user whose password is PASSWORD already."""
        self.tokens[username] = self.api("POST", "/auth/login", json={"username": username, "password": PASSWORD},
                                         expect=200)["token"]
        return self.tokens[username]

    def kiosk_and_clerk(self) -> None:
        """kiosk1's token and clerk1 signed in (one ``hall`` process for both commands)."""
        token, _ = self.proc.hall_all(("device-token", "k", "kiosk1"), ("user", "clerk1", "--password", PASSWORD))
        self.tokens["kiosk1"] = token.strip().splitlines()[-1].strip()
        self.sign_in("clerk1")

    def queues(self) -> dict[str, dict[str, Any]]:
        return {q["id"]: q for q in self.api("GET", "/halls/k/snapshot", expect=200)["queues"]}

    def device(self, device: str = "kiosk1") -> dict[str, Any]:
        devs = self.api("GET", "/halls/k/devices", "clerk1", expect=200)["devices"]
        return next(d for d in devs if d["device"] == device)


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def hall(db_url: str, tmp_path: Path) -> Iterator[Hall]:  # noqa: F811
    proc = ServerProcess(db_url, tmp_path)
    cfg = tmp_path / "hall.toml"
    cfg.write_text((HERE / "kiosk_hall.toml").read_text(encoding="utf-8").replace("{base}", proc.url), encoding="utf-8")
    proc.config = cfg
    proc.start()
    h = Hall(proc)
    h.kiosk_and_clerk()
    yield h
    proc.stop()


@pytest.fixture
def sqlite_hall(tmp_path: Path) -> Iterator[Hall]:
    """The same on SQLite only, for the paths that need not run twice."""
    proc = ServerProcess(f"sqlite:///{tmp_path}/hall.db", tmp_path)
    cfg = tmp_path / "hall.toml"
    cfg.write_text((HERE / "kiosk_hall.toml").read_text(encoding="utf-8").replace("{base}", proc.url), encoding="utf-8")
    proc.config = cfg
    proc.start()
    h = Hall(proc)
    h.kiosk_and_clerk()
    yield h
    proc.stop()


@pytest.fixture
def reader() -> Iterator[tuple[SamReaderSimulator, SimulatorServer]]:
    sim = SamReaderSimulator()
    server = SimulatorServer(sim, name="kiosk1.reader").start()
    yield sim, server
    server.stop()


@pytest.fixture
def printer() -> Iterator[tuple[EscPosPrinterSimulator, SimulatorServer]]:
    sim = EscPosPrinterSimulator()
    server = SimulatorServer(sim, name="kiosk1.printer", pty=False).start()
    yield sim, server
    server.stop()


KioskFactory = Callable[..., KioskProcess]


@pytest.fixture
def make_kiosk(reader, printer, tmp_path: Path) -> Iterator[KioskFactory]:  # type: ignore[no-untyped-def]
    started: list[KioskProcess] = []

    def factory(h: Hall, **over: Any) -> KioskProcess:
        printer_poll = over.pop("printer_poll", 0.3)
        cfg = make_config({
            "server": h.url, "hall": "k", "device": "kiosk1", "token": h.tokens["kiosk1"], "port": 0,
            "reader": {"kind": "sam", "url": reader[1].pty_path, "options": {"poll_interval_ms": 100}},
            "printer": {"url": printer[1].tcp_url, "poll_seconds": printer_poll},
            "health_seconds": 0.5, "issue_retry_seconds": 2.0, "status_seconds": 5.0,
            "state_dir": str(tmp_path / "kiosk-state"), **over,
        })
        k = start_kiosk(cfg)
        started.append(k)
        wait_for(lambda: k.kiosk.catalogue is not None and k.devices.printer_ready() and k.devices.reader_ready(),
                 15, "the kiosk to reach its server, printer and reader")
        return k

    yield factory
    for k in started:
        k.stop()

"""A real `hall serve` process for the page tests, with the accounts the tests act as.

Import the fixtures into a test module: ``from tests.display_board.live import live_hall, screen_page``
(together with ``db_url`` from tests/hall_server/conftest.py)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from tests.hall_server.server_proc import ServerProcess

HERE = Path(__file__).parent
CONFIG = HERE / "screen_hall.toml"
PASSWORD = "page-test-pass-1"
CLERKS = [f"clerk{i}" for i in range(1, 11)]


def id_number(birth: str = "19800101", seq: str = "123") -> str:
    """A well-formed 18-digit ID number (ISO 7064 MOD 11-2 check character)."""
    body = "320101" + birth + seq
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]


def prepare(db_url: str) -> str:
    """Schema, users with known passwords and a kiosk token, made as `hall db upgrade` / `hall user`
    make them (in this process: one start-up instead of a dozen CLI runs). Returns the kiosk token."""
    from hall_server.app import create_app, prepare_database
    from hall_server.config import load_config

    app, _ = create_app(load_config(CONFIG), database_url=db_url, redis_url="", secret=b"test-secret-shared")
    prepare_database(app)
    auth = app.extensions["hall"]["auth"]
    for user in [*CLERKS, "boss"]:
        auth.set_password(user, PASSWORD, one_time=False)
    token = auth.device_token("t", "kiosk1")
    app.extensions["hall"]["db"].dispose()
    return token


class LiveHall:
    """The server under test and REST helpers acting as the kiosk, clerks and the manager."""

    def __init__(self, db_url: str, workdir: Path) -> None:
        self.db_url = db_url
        self.kiosk = prepare(db_url)
        self.server = ServerProcess(db_url, workdir, config=CONFIG).start()
        self.http = requests.Session()
        self.tokens: dict[str, str] = {}
        self.n = 0

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, user: str, base: str | None = None) -> str:
        if user not in self.tokens:
            r = self.http.post(f"{base or self.url}/api/v1/auth/login", json={"username": user, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.tokens[user] = r.json()["token"]
        return self.tokens[user]

    def request(self, method: str, path: str, who: str | None = None, base: str | None = None,
                expect: int | None = 200, **body: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token(who, base) if who != 'kiosk' else self.kiosk}"} if who else {}
        r = self.http.request(method, f"{base or self.url}/api/v1{path}", json=body if body else None,
                              headers=headers, timeout=10)
        if expect is not None:
            assert r.status_code == expect, (path, r.status_code, r.text)
        return r.json()

    def issue(self, queue: str = "biz", base: str | None = None, **body: Any) -> dict[str, Any]:
        self.n += 1
        body.setdefault("request_id", f"page-{self.n:05d}-{time.time_ns()}")
        if "matter" not in body:
            body["queue"] = queue
        return self.request("POST", "/halls/t/tickets", "kiosk", base=base, expect=201, **body)["ticket"]

    def act(self, window: int | str, action: str, who: str | None = None, base: str | None = None,
            expect: int | None = 200, **body: Any) -> Any:
        who = who or f"clerk{window}"
        return self.request("POST", f"/halls/t/windows/{window}/{action}", who, base=base, expect=expect, **body)

    def stop(self) -> None:
        self.server.stop()
        self.http.close()


@pytest.fixture
def live_hall(db_url: str, tmp_path: Path) -> Iterator[LiveHall]:
    hall = LiveHall(db_url, tmp_path)
    yield hall
    hall.stop()


@pytest.fixture
def screen_page(browser, live_hall: LiveHall):  # type: ignore[no-untyped-def]
    """The hall screen of hall "t" at its design size, 1920x1080, showing the first snapshot."""
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai",
                                  viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.goto(f"{live_hall.url}/screen/t")
    page.wait_for_function("document.getElementById('offline').hidden && "
                           "document.querySelector('#queues tbody tr') !== null")
    yield page
    context.close()


RECORD_SHOWN = """() => {
  // every number the big panel shows, in the order it shows them
  window.__shown = [];
  new MutationObserver(() => {
    const n = document.getElementById('now').dataset.number;
    if (n) window.__shown.push(n);
  }).observe(document.getElementById('now'), {attributes: true, attributeFilter: ['data-number']});
}"""


def recent_numbers(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all("#recent li", "els => els.map(e => e.dataset.number)")

"""The manager dashboard in Chromium against a real `hall serve` process: a manager signs in, sees
the figures, an alert appears live when a real wait crosses its (3-second) target, and the controls
work (hall notice, pausing a window)."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.hall_server.server_proc import ServerProcess

HERE = Path(__file__).parent


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(db_url, tmp_path, config=HERE / "live_hall.toml")
    *_, kiosk = srv.hall_all(("db", "upgrade"), ("user", "boss", "--password", "boss-pass-1"),
                             ("user", "clerk1", "--password", "clerk-pass-1"), ("device-token", "t", "kiosk1"))
    srv.kiosk = kiosk.strip()  # type: ignore[attr-defined]
    srv.start()
    yield srv
    srv.stop()


def api(srv: ServerProcess, method: str, path: str, token: str, **body: object) -> dict:  # type: ignore[type-arg]
    r = requests.request(method, f"{srv.url}/api/v1{path}", json=body or None,
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code < 300, r.text
    return r.json()


def login(srv: ServerProcess, user: str, password: str) -> str:
    r = requests.post(f"{srv.url}/api/v1/auth/login", json={"username": user, "password": password}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["token"]


@pytest.mark.browser
def test_manager_sees_figures_and_a_live_alert_and_sets_the_notice(server: ServerProcess, utc_page) -> None:  # type: ignore[no-untyped-def]
    page = utc_page  # a manager's PC set to UTC: alert times are still shown on the hall's clock
    page.goto(f"{server.url}/manager/")
    page.fill("#username", "boss")
    page.fill("#password", "boss-pass-1")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#dash-view:not([hidden])")
    assert page.inner_text("#hall-name") == "测试政务服务中心"
    assert page.inner_text("#who") == "赵主任"
    page.wait_for_selector("#conn.on")
    # the figures arrive by their own request, which may answer after the live connection is up
    page.wait_for_function("document.querySelector('#t-issued').textContent === '0'", timeout=10_000)
    assert page.inner_text("#no-alerts") == "暂无告警"
    hall_now = dt.datetime.now(ZoneInfo("Asia/Shanghai"))  # "更新于 HH:MM:SS" on the hall's clock
    assert page.inner_text("#updated")[4:9] in {f"{hall_now - dt.timedelta(minutes=1):%H:%M}", f"{hall_now:%H:%M}"}

    # a citizen takes a 企业开办 number: the figures follow live
    api(server, "POST", "/halls/t/tickets", server.kiosk, queue="biz",  # type: ignore[attr-defined]
        request_id=f"page-{time.time_ns()}")
    page.wait_for_function("document.querySelector('#t-issued').textContent === '1'", timeout=10_000)
    assert page.inner_text("#t-waiting") == "1"
    row = page.locator("#queue-table tr[data-queue=biz]")
    assert row.locator("td").nth(1).inner_text() == "1"

    # nobody serves it; after 3 seconds the wait is over target and the alert is pushed, not polled
    alert = page.locator("#alert-list li[data-kind=wait_over_target]")
    alert.wait_for(timeout=15_000)
    assert "企业开办（A）最长等候已达" in alert.inner_text()
    assert page.inner_text("#alert-count") == "1"
    boss = login(server, "boss", "boss-pass-1")
    opened = next(a["opened_at"] for a in api(server, "GET", "/halls/t/alerts", boss)["alerts"]
                  if a["kind"] == "wait_over_target")
    local = dt.datetime.fromisoformat(opened).astimezone(ZoneInfo("Asia/Shanghai"))
    assert alert.locator(".meta").inner_text().startswith(f"{local:%H:%M} 发生")
    page.wait_for_selector(".toast")
    page.wait_for_selector("#queue-table tr[data-queue=biz].over", timeout=20_000)

    # the manager acknowledges it
    alert.locator("button[data-ack]").click()
    page.wait_for_function(
        "document.querySelector('#alert-list li[data-kind=wait_over_target] .meta').textContent.includes('赵主任 已确认')",
        timeout=10_000)

    # a clerk opens window 1 and calls the ticket: the alert closes by itself
    clerk = login(server, "clerk1", "clerk-pass-1")
    api(server, "POST", "/halls/t/windows/1/sign-in", clerk)
    api(server, "POST", "/halls/t/windows/1/call-next", clerk)
    page.wait_for_selector("#alert-list li.closed[data-kind=wait_over_target]", timeout=15_000)
    assert page.inner_text("#alert-count") == "0"
    w1 = page.locator("#window-table tr[data-window='1']")
    page.wait_for_function(
        "document.querySelector(\"#window-table tr[data-window='1']\").textContent.includes('A001')", timeout=10_000)
    assert "王小明" in w1.inner_text() and "叫号中" in w1.inner_text()

    # controls: the hall screen notice ...
    page.fill("#notice-text", "今天下午三点起社保窗口系统升级，请提前办理")
    page.click("#notice-form button[type=submit]")
    page.wait_for_function("document.querySelector('#notice-status').textContent.startsWith('已发布')", timeout=10_000)
    r = requests.get(f"{server.url}/api/v1/halls/t/notice", timeout=10)
    assert r.json()["text"] == "今天下午三点起社保窗口系统升级，请提前办理"

    # ... and pausing a window once its clerk has finished
    api(server, "POST", "/halls/t/windows/1/start", clerk)
    api(server, "POST", "/halls/t/windows/1/finish", clerk, outcome="instant")
    pause = w1.locator("button[data-act=pause]")
    pause.wait_for(timeout=10_000)
    page.once("dialog", lambda d: d.accept("临时会议"))
    pause.click()
    page.wait_for_function(
        "document.querySelector(\"#window-table tr[data-window='1'] .status\").textContent.startsWith('暂停服务（临时会议')",
        timeout=10_000)
    assert api(server, "GET", "/halls/t/windows/1", clerk)["pause_reason"] == "临时会议"

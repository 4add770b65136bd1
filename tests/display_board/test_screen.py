"""The hall screen in headless Chromium against a real `hall serve` process (SQLite and PostgreSQL)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.display_board.live import RECORD_SHOWN, LiveHall, id_number, live_hall, recent_numbers, screen_page  # noqa: F401
from tests.hall_server.conftest import db_url  # noqa: F401
from tests.hall_server.server_proc import ServerProcess

pytestmark = pytest.mark.browser


def test_a_call_made_through_the_api_appears_large_with_the_waiting_figures(live_hall: LiveHall, screen_page) -> None:  # type: ignore[no-untyped-def]
    page = screen_page
    for _ in range(3):
        live_hall.issue("biz")
    live_hall.act(3, "sign-in")
    called = live_hall.act(3, "call-next")["ticket"]
    assert called["number"] == "A001"

    page.wait_for_function("document.getElementById('now-number').textContent === 'A001'")
    assert page.inner_text("#now-window") == "综合受理窗口"  # the window's configured name
    assert recent_numbers(page) == ["A001"]
    # two still waiting in 企业开办, with an estimate; nobody in 社保医保
    page.wait_for_function("document.querySelector('#queues tr[data-queue=biz] td.n').textContent === '2 人'")
    biz = page.inner_text("#queues tr[data-queue=biz]")
    assert "企业开办" in biz and re.search(r"约 \d+ 分钟", biz), biz
    assert "无需等候" in page.inner_text("#queues tr[data-queue=soc]")
    assert re.fullmatch(r"\d\d:\d\d:\d\d", page.inner_text("#time"))


def test_a_burst_of_ten_calls_is_shown_all_ten_in_order(live_hall: LiveHall, screen_page) -> None:  # type: ignore[no-untyped-def]
    page = screen_page
    for _ in range(10):
        live_hall.issue("biz")
    for w in range(1, 11):
        live_hall.act(w, "sign-in")
    page.evaluate(RECORD_SHOWN)

    started = time.monotonic()
    numbers = [live_hall.act(w, "call-next")["ticket"]["number"] for w in range(1, 11)]
    burst = time.monotonic() - started
    assert numbers == [f"A{i:03d}" for i in range(1, 11)]

    # the list is complete at once: the newest eight, newest first
    page.wait_for_function("document.querySelector('#recent li') && document.querySelector('#recent li').dataset.number === 'A010'")
    assert recent_numbers(page) == numbers[::-1][:8]
    # the big panel shows every one of them, once, in call order (one at a time, so this takes a while)
    page.wait_for_function("window.__shown.length >= 10", timeout=30_000)
    time.sleep(0.5)
    assert page.evaluate("window.__shown") == numbers, f"burst took {burst:.2f} s"
    assert page.inner_text("#now-number") == "A010"


def test_after_a_server_outage_the_screen_shows_the_true_state_without_losing_or_repeating_calls(
        live_hall: LiveHall, screen_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The outage lasts a few seconds, not 30: the page's reconnect does not depend on the length of
    the outage (Socket.IO retries every 0.5-3 s, capped), and what it must get right (resync from the
    snapshot, no call lost or repeated) is the same after 5 s as after 30 s."""
    page = screen_page
    for _ in range(4):
        live_hall.issue("biz")
    for w in (1, 2, 3):
        live_hall.act(w, "sign-in")
    live_hall.act(1, "call-next")
    page.wait_for_function("document.getElementById('now-number').textContent === 'A001'")
    page.evaluate(RECORD_SHOWN)

    live_hall.server.stop()
    page.wait_for_selector("#offline", state="visible")
    # While this screen's server is down, the hall goes on through another server on the same database.
    other = ServerProcess(live_hall.db_url, tmp_path / "other", config=live_hall.server.config)
    (tmp_path / "other").mkdir()
    other.start()
    try:
        live_hall.act(2, "call-next", base=other.url)
        live_hall.act(3, "call-next", base=other.url)
        live_hall.act(3, "recall", base=other.url)
    finally:
        other.stop()
    live_hall.server.start()  # the same address as before

    page.wait_for_selector("#offline", state="hidden", timeout=20_000)
    page.wait_for_function("window.__shown.length >= 3", timeout=20_000)
    time.sleep(1.5)
    # A002 and A003 (then its recall) were missed: each is shown once; A001 is not shown again
    assert page.evaluate("window.__shown") == ["A002", "A003", "A003"]
    assert recent_numbers(page) == ["A003", "A002", "A001"]
    assert "重呼" in page.inner_text("#recent li[data-number=A003]")
    # the waiting figures come with the queues snapshot, every half second
    page.wait_for_function("document.querySelector('#queues tr[data-queue=biz] td.n').textContent === '1 人'",
                           timeout=10_000)


def test_the_managers_notice_scrolls_and_survives_a_restart(live_hall: LiveHall, screen_page) -> None:  # type: ignore[no-untyped-def]
    page = screen_page
    text = "今天下午三点起社保业务系统升级，请提前取号。"
    live_hall.request("PUT", "/halls/t/notice", "boss", text=text)
    page.wait_for_function(f"document.getElementById('notice').textContent === {text!r}")
    x1 = page.eval_on_selector("#notice", "e => e.getBoundingClientRect().x")
    page.wait_for_timeout(500)
    x2 = page.eval_on_selector("#notice", "e => e.getBoundingClientRect().x")
    assert x2 < x1, "the notice should move from right to left"

    live_hall.server.stop()
    live_hall.server.start()
    assert live_hall.request("GET", "/halls/t/notice")["text"] == text
    page.reload()
    page.wait_for_function(f"document.getElementById('notice').textContent === {text!r}")


def test_no_personal_data_on_the_screen(live_hall: LiveHall, screen_page) -> None:  # type: ignore[no-untyped-def]
    page = screen_page
    idn = id_number()
    issued = live_hall.request("POST", "/halls/t/tickets", "kiosk", expect=201, matter="licence", id_number=idn,
                               request_id="pii-test-0001")
    assert issued["person_masked"]
    live_hall.act(1, "sign-in")
    live_hall.act(1, "call-next")
    page.wait_for_function("document.getElementById('now-number').textContent === 'A001'")
    html = page.content()
    text = page.inner_text("body")
    for secret in (idn, issued["person_masked"], "王小明", "clerk1"):
        assert secret not in html and secret not in text, secret
    assert not re.search(r"\d{6,}", text), "no long digit runs (ID or phone numbers) on the screen"

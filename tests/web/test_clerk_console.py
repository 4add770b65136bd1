"""The clerk console in headless Chromium against a real `hall serve` process (SQLite and PostgreSQL):
a clerk works a window with the keyboard and sees what the server holds."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.display_board.live import PASSWORD, LiveHall, live_hall  # noqa: F401
from tests.hall_server.conftest import db_url  # noqa: F401
from tests.hall_server.server_proc import ServerProcess

pytestmark = pytest.mark.browser


def open_console(page, live: LiveHall, user: str = "clerk1", window: str = "1") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live.url}/clerk/")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.click(f".window-choice[data-window='{window}']")
    page.wait_for_selector("#console-view", state="visible")
    page.wait_for_selector("#conn.on")


def wait_text(page, selector: str, pattern: str) -> None:  # type: ignore[no-untyped-def]
    """Until the text shows and the console has its answer: a live event can show a call before the
    clerk's own request is answered, and the console takes no new key until then (as for a clerk). The
    element may not be there yet: the waiting list is fetched after the connection's snapshot."""
    page.wait_for_function("([s, p]) => { const e = document.querySelector(s); "
                           "return !!e && new RegExp(p).test(e.textContent); }", arg=[selector, pattern])
    page.wait_for_function("() => !document.body.classList.contains('busy')")


def test_clerk_calls_with_the_keyboard_sees_the_timer_and_finishes_with_an_outcome(page, live_hall: LiveHall) -> None:  # type: ignore[no-untyped-def]
    live_hall.issue("biz")
    live_hall.issue("biz")
    open_console(page, live_hall)
    assert "王小明" in page.inner_text("#who")
    # own queues: waiting count and the next numbers
    wait_text(page, ".queue[data-queue=biz] .waiting-count", "^2$")
    assert page.eval_on_selector_all(".queue[data-queue=biz] .chip", "cs => cs.map(c => c.textContent)") == ["A001", "A002"]
    assert "F1" in page.inner_text("#actions") and "叫下一位" in page.inner_text("#actions")

    page.keyboard.press("F1")
    wait_text(page, "#cur-number", "^A001$")
    wait_text(page, "#msg", "请A001号到1号窗口办理")
    wait_text(page, ".queue[data-queue=biz] .waiting-count", "^1$")
    # the timer runs
    assert re.fullmatch(r"\d\d:\d\d", page.inner_text("#timer"))
    first = page.inner_text("#timer")
    page.wait_for_function("t => document.getElementById('timer').textContent !== t", arg=first)

    page.keyboard.press("F3")
    wait_text(page, "#cur-detail", "办理中")
    assert page.inner_text("#timer-label") == "办理用时"

    page.keyboard.press("F4")
    page.wait_for_selector("#finish-dialog[open]")
    page.keyboard.press("2")  # 承诺件
    page.fill("#finish-dialog input[name=case_no]", "JH-2026-0001")
    finishes: list[str] = []
    page.on("request", lambda r: finishes.append(r.url) if r.url.endswith("/finish") else None)
    # a slow line: the finish request leaves 300 ms late, so the second Enter comes while it is on its way
    page.evaluate("""() => { const f = window.fetch; window.fetch = (u, o) => String(u).endsWith('/finish')
        ? new Promise((r) => setTimeout(r, 300)).then(() => f(u, o)) : f(u, o); }""")
    page.press("#finish-dialog input[name=case_no]", "Enter")
    page.press("#finish-dialog input[name=case_no]", "Enter")  # pressed twice: still one request
    page.wait_for_selector("#finish-dialog", state="hidden")
    wait_text(page, "#msg", "A001 已办结（承诺件，办件编号 JH-2026-0001）")
    wait_text(page, "#cur-number", "^—$")
    wait_text(page, "#win-status", "^空闲$")  # the window event may come after the ticket event
    assert len(finishes) == 1

    engine = sa.create_engine(live_hall.db_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, outcome, case_no FROM tickets WHERE display = 'A001'")).one()
    engine.dispose()
    assert tuple(row) == ("finished", "promised", "JH-2026-0001")


def test_pause_needs_a_reason_and_resume_reopens_the_window(page, live_hall: LiveHall) -> None:  # type: ignore[no-untyped-def]
    live_hall.issue("biz")
    open_console(page, live_hall)
    page.keyboard.press("F8")
    page.wait_for_selector("#pause-dialog[open]")
    page.keyboard.press("Enter")  # no reason chosen: the dialog stays open and says why
    wait_text(page, "#pause-dialog .dlg-error", "请选择暂停原因")
    page.keyboard.press("2")  # 临时离开
    page.keyboard.press("Enter")
    page.wait_for_selector("#pause-dialog", state="hidden")
    wait_text(page, "#win-status", "暂停.*临时离开")
    w = live_hall.request("GET", "/halls/t/windows/1", "boss")
    assert (w["status"], w["pause_reason"]) == ("paused", "临时离开")

    page.keyboard.press("F1")  # calling is not possible while paused
    wait_text(page, "#msg", "当前状态不能叫下一位")
    assert page.inner_text("#cur-number") == "—"

    page.keyboard.press("F8")  # F8 again resumes
    wait_text(page, "#msg", "已恢复服务")
    wait_text(page, "#win-status", "^空闲$")
    assert live_hall.request("GET", "/halls/t/windows/1", "boss")["status"] == "idle"


def test_no_show_reactivate_and_transfer_with_server_errors_in_chinese(page, live_hall: LiveHall) -> None:  # type: ignore[no-untyped-def]
    live_hall.issue("biz")
    live_hall.issue("biz")
    open_console(page, live_hall)
    page.keyboard.press("F1")
    wait_text(page, "#cur-number", "^A001$")

    page.keyboard.press("F6")  # the hall's rule: recall once before a no-show; the server says so
    wait_text(page, "#msg", "过号失败：请先重呼1次再标记过号")
    page.keyboard.press("F2")
    wait_text(page, "#msg", "已重呼 A001（第1次）")
    page.keyboard.press("F6")
    wait_text(page, "#msg", "A001 已标记过号")
    wait_text(page, "#cur-number", "^—$")

    page.keyboard.press("F10")  # the citizen came back
    page.wait_for_selector("#pick-dialog[open]")
    assert "A001" in page.inner_text("#pick-dialog .pick-list")
    page.keyboard.press("Enter")
    wait_text(page, "#msg", "A001 已重新排队")

    page.keyboard.press("F1")  # A001 waits behind the others again
    wait_text(page, "#cur-number", "^A002$")
    page.keyboard.press("F7")
    page.wait_for_selector("#transfer-dialog[open]")
    page.select_option("#transfer-dialog select[name=to_queue]", "soc")
    page.click("#transfer-dialog button[value=ok]")
    wait_text(page, "#msg", "A002 已转到社保医保（B）")
    wait_text(page, ".queue[data-queue=soc] .waiting-count", "^1$")
    waiting = live_hall.request("GET", "/halls/t/windows/1/waiting", "boss")
    assert [t["number"] for q in waiting["queues"] if q["id"] == "soc" for t in q["next"]] == ["A002"]


def test_call_a_specific_ticket_by_typing_its_number(page, live_hall: LiveHall) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        live_hall.issue("biz")
    open_console(page, live_hall)
    page.keyboard.press("F9")
    page.wait_for_selector("#pick-dialog[open]")
    page.keyboard.type("A003")
    page.keyboard.press("Enter")
    wait_text(page, "#cur-number", "^A003$")
    # the live event can show A003 before the console has the answer to its own request
    wait_text(page, "#msg", "请A003号到1号窗口办理")


def test_console_reconnects_and_resyncs_after_a_server_outage(page, live_hall: LiveHall, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    live_hall.issue("biz")
    open_console(page, live_hall)
    page.keyboard.press("F1")
    wait_text(page, "#cur-number", "^A001$")

    live_hall.server.stop()
    page.wait_for_selector("#conn.off")
    # meanwhile the ticket is started from the clerk's caller pad through another server process
    (tmp_path / "other").mkdir()
    other = ServerProcess(live_hall.db_url, tmp_path / "other", config=live_hall.server.config).start()
    try:
        live_hall.act(1, "start", base=other.url)
    finally:
        other.stop()
    live_hall.server.start()

    page.wait_for_selector("#conn.on", timeout=20_000)
    wait_text(page, "#cur-detail", "办理中")
    assert page.inner_text("#timer-label") == "办理用时"

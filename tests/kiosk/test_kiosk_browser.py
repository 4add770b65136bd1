"""The kiosk end to end in headless Chromium: the touch UI served by kiosk_client, the real hall server
process, the SAM reader simulator on a pty and the printer simulator over TCP. Every slip is read back
from the printer simulator."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import re
import time
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest
import requests
from playwright.sync_api import Page, expect

from simulators.escpos_sim import PaperState

from .conftest import Hall, wait_for

pytestmark = pytest.mark.browser

ZHAXI_MASKED = "5401**********0031"


def open_kiosk(page: Page, kiosk) -> None:  # type: ignore[no-untyped-def]
    page.goto(kiosk.url)
    expect(page.get_by_test_id("tab-zones")).to_be_visible()
    expect(page.get_by_test_id("zone-qiye")).to_be_visible(timeout=10_000)


def choose(page: Page, zone: str, matter: str) -> None:
    page.get_by_test_id("tab-zones").click()
    page.get_by_test_id(f"zone-{zone}").click()
    page.get_by_test_id(f"matter-{matter}").click()


def slip_text(printer, index: int = -1) -> str:  # type: ignore[no-untyped-def]
    return printer[0].printed[index].text


@pytest.fixture
def kiosk_pc_in_another_zone() -> Iterator[None]:
    """The kiosk PC's clock set to another time zone than the hall's (the kiosk runs in this process)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_matter_card_ticket_slip_and_live_mobile_page(hall: Hall, make_kiosk, reader, printer, page: Page,
                                                      browser, kiosk_pc_in_another_zone) -> None:  # type: ignore[no-untyped-def]
    kiosk = make_kiosk(hall)
    hall.api("POST", "/halls/k/tickets", "clerk1", expect=201,
             json={"request_id": "guide-before-0001", "channel": "guide", "matter": "seal", "note": "未带身份证"})
    open_kiosk(page, kiosk)
    choose(page, "qiye", "licence")
    expect(page.get_by_test_id("card-box")).to_contain_text("须刷身份证")
    expect(page.get_by_test_id("issue")).to_be_disabled()
    reader[0].place_card("zhaxi")
    expect(page.get_by_test_id("card-box").get_by_test_id("card-name")).to_have_text("扎**试")
    expect(page.get_by_test_id("card-box").get_by_test_id("card-id")).to_have_text(ZHAXI_MASKED)
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("result-number")).to_have_text("A002", timeout=15_000)
    expect(page.get_by_test_id("result-ahead")).to_contain_text("前面还有 1 人")

    # the slip, read back from the printer simulator
    assert printer[0].wait_for_tickets(1, 5)
    slip = printer[0].printed[0]
    text = slip.text
    assert "测试县政务服务中心" in text and "企业开办" in text
    number_line = next(line for line in slip.lines if line.text == "A002")
    assert number_line.width == 4 and number_line.height == 4
    assert "您前面还有 1 人等候" in text
    assert "扎" not in text and "0031" not in text  # no personal data on the slip
    (link,) = slip.qr_payloads
    assert re.fullmatch(re.escape(hall.url) + r"/t/[A-Za-z0-9_\-]{24}", link)
    public = requests.get(hall.url + "/api/v1" + link[len(hall.url):], timeout=5).json()
    assert public["ticket"]["number"] == "A002" and public["people_ahead"] == 1
    issued = dt.datetime.fromisoformat(public["ticket"]["issued_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"取号时间：{issued:%Y-%m-%d %H:%M:%S}" in text  # the hall's clock, not the PC's
    assert hall.queues()["biz"]["waiting"] == 2

    # scanning the QR code: the mobile page, updated live, alerting when called
    phone = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True,
                                has_touch=True, timezone_id="UTC")  # a phone left on UTC
    mobile = phone.new_page()
    try:
        mobile.goto(link)
        expect(mobile.get_by_test_id("number")).to_have_text("A002")
        shown = re.search(r"更新于 (\d+):(\d\d)", mobile.get_by_test_id("updated").inner_text())
        assert shown, mobile.get_by_test_id("updated").inner_text()
        now = dt.datetime.now(ZoneInfo("Asia/Shanghai"))  # the hall's clock, not the phone's
        assert (int(shown[1]), int(shown[2])) in {(t.hour, t.minute) for t in (now, now - dt.timedelta(minutes=1))}
        expect(mobile.get_by_test_id("ahead")).to_have_text("您前面还有 1 人")
        expect(mobile.get_by_test_id("conn")).to_contain_text("实时", timeout=10_000)
        body = mobile.locator("body").inner_text()
        assert "扎" not in body and "5401" not in body
        hall.api("POST", "/halls/k/windows/1/sign-in", "clerk1", expect=200)
        assert hall.api("POST", "/halls/k/windows/1/call-next", "clerk1", expect=200)["ticket"]["number"] == "A001"
        expect(mobile.get_by_test_id("ahead")).to_have_text("您前面还有 0 人", timeout=10_000)
        expect(mobile.get_by_test_id("alert")).to_be_hidden()
        hall.api("POST", "/halls/k/windows/1/start", "clerk1", expect=200)
        hall.api("POST", "/halls/k/windows/1/finish", "clerk1", expect=200, json={"outcome": "instant"})
        assert hall.api("POST", "/halls/k/windows/1/call-next", "clerk1", expect=200)["ticket"]["number"] == "A002"
        expect(mobile.get_by_test_id("alert")).to_have_text("请 A002 号到 1 号窗口办理", timeout=10_000)
        expect(mobile.get_by_test_id("status")).to_contain_text("1号窗口")
    finally:
        phone.close()
    # the guessed link of a ticket that does not exist shows nothing
    assert requests.get(hall.url + "/api/v1/t/AAAAAAAAAAAAAAAAAAAAAAAA", timeout=5).status_code == 404
    wait_for(lambda: hall.device()["state"] == "online", 10, "the kiosk to report itself online")


def test_paper_out_stops_tickets_degrades_the_kiosk_and_recovers(sqlite_hall: Hall, make_kiosk, printer,
                                                                 page: Page) -> None:  # type: ignore[no-untyped-def]
    hall = sqlite_hall
    kiosk = make_kiosk(hall)
    open_kiosk(page, kiosk)
    wait_for(lambda: hall.device()["state"] == "online", 10, "online")
    printer[0].paper = PaperState.OUT
    expect(page.get_by_test_id("notice")).to_contain_text("请到导服台取号", timeout=10_000)
    expect(page.get_by_test_id("notice")).to_contain_text("打印机缺纸")
    choose(page, "shebao", "pension")
    expect(page.get_by_test_id("issue")).to_be_disabled()
    dev = wait_for(lambda: (d := hall.device())["state"] == "degraded" and d, 10, "the kiosk to report degraded")
    assert dev["detail"] == "打印机缺纸" and dev["parts"]["printer"] == "paper_out"
    assert hall.queues()["soc"]["issued_today"] == 0
    printer[0].paper = PaperState.OK  # the roll is changed
    expect(page.get_by_test_id("notice")).to_be_hidden(timeout=10_000)
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("result-number")).to_have_text("B001", timeout=15_000)
    wait_for(lambda: hall.device()["state"] == "online", 10, "back online")


def test_paper_running_out_between_checks_voids_the_ticket(sqlite_hall: Hall, make_kiosk, printer,
                                                           page: Page) -> None:  # type: ignore[no-untyped-def]
    hall = sqlite_hall
    kiosk = make_kiosk(hall, printer_poll=60)  # the kiosk will not notice the empty roll before printing
    open_kiosk(page, kiosk)
    choose(page, "shebao", "pension")
    printer[0].paper = PaperState.OUT
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("error-text")).to_have_text("打印机缺纸，本次取号已作废，请到导服台取号", timeout=15_000)
    expect(page.get_by_test_id("retry")).to_be_hidden()
    expect(page.get_by_test_id("notice")).to_contain_text("请到导服台取号")
    q = hall.queues()["soc"]
    assert q["issued_today"] == 1 and q["waiting"] == 0  # issued, then voided: nobody will be called for it
    assert printer[0].printed == []
    dev = wait_for(lambda: (d := hall.device())["state"] == "degraded" and d, 10, "degraded")
    assert dev["parts"]["printer"] == "paper_out"


def test_elderly_priority_from_the_card_in_large_text_mode(sqlite_hall: Hall, make_kiosk, reader, printer,
                                                           page: Page) -> None:  # type: ignore[no-untyped-def]
    hall = sqlite_hall
    kiosk = make_kiosk(hall)
    hall.api("POST", "/halls/k/tickets", "kiosk1", expect=201, json={"request_id": "walkin-0000001", "matter": "pension"})
    open_kiosk(page, kiosk)
    page.get_by_test_id("large-toggle").click()
    assert page.evaluate("document.body.classList.contains('large')")
    assert page.evaluate("getComputedStyle(document.body).fontSize") == "34px"
    choose(page, "shebao", "pension")
    expect(page.get_by_test_id("card-box")).to_contain_text("60周岁以上的老人")
    reader[0].place_card("wang")  # born 1958
    expect(page.get_by_test_id("card-box").get_by_test_id("elderly")).to_have_text("老年人优先")
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("result-number")).to_have_text("B002", timeout=15_000)
    expect(page.get_by_test_id("result-ahead")).to_contain_text("前面还有 0 人")  # ahead of the walk-in
    spoken = page.evaluate("window.__spoken")
    assert any("请选择办理方式" in s or "长辈模式" in s for s in spoken)
    assert any("您可优先办理" in s for s in spoken) and any("B 0 0 2" in s for s in spoken)
    assert printer[0].wait_for_tickets(1, 5)
    slip = printer[0].printed[0]
    prio = [line for line in slip.lines if "老年人优先" in line.text]
    assert prio and prio[0].inverted
    assert "您前面还有 0 人等候" in slip.text


def test_appointment_booked_online_then_checked_in_by_code_and_by_card(sqlite_hall: Hall, make_kiosk, reader, printer,
                                                                       page: Page, browser) -> None:  # type: ignore[no-untyped-def]
    hall = sqlite_hall
    kiosk = make_kiosk(hall)
    # book on the web page
    web = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai").new_page()
    web.goto(f"{hall.url}/book/k")
    web.get_by_test_id("matter").select_option("pension")
    web.get_by_test_id("slot").first.click()
    web.get_by_test_id("id-number").fill("650102199007080040")
    web.get_by_test_id("book").click()
    expect(web.get_by_test_id("code")).to_have_text(re.compile(r"^\d{8}$"))
    code = web.get_by_test_id("code").inner_text()
    expect(web.get_by_test_id("done-detail")).to_contain_text("6501**********0040")
    web.context.close()

    open_kiosk(page, kiosk)
    page.get_by_test_id("tab-checkin").click()
    for digit in code:
        page.locator(f"[data-code='{digit}']").click()
    expect(page.get_by_test_id("code-display")).to_have_text(code)
    page.get_by_test_id("checkin").click()
    expect(page.get_by_test_id("result-number")).to_have_text("B001", timeout=15_000)
    assert printer[0].wait_for_tickets(1, 5)
    assert "预约" in slip_text(printer) and "预约签到" in slip_text(printer)
    page.get_by_text("完 成").click()

    # by ID card: a booking made for zhaxi's card, checked in by swiping it
    slot = hall.api("GET", "/halls/k/appointment-slots?matter=licence", expect=200)["slots"][0]["start"]
    hall.api("POST", "/halls/k/appointments", expect=201,
             json={"matter": "licence", "slot_start": slot, "id_number": "540102198502280031"})
    page.get_by_test_id("tab-checkin").click()
    reader[0].place_card("zhaxi")
    expect(page.get_by_test_id("checkin-card")).to_contain_text(ZHAXI_MASKED)
    page.get_by_test_id("checkin").click()
    expect(page.get_by_test_id("result-number")).to_have_text("A001", timeout=15_000)
    assert printer[0].wait_for_tickets(2, 5)
    public = requests.get(printer[0].printed[1].qr_payloads[0].replace("/t/", "/api/v1/t/"), timeout=5).json()
    assert public["ticket"]["priority_class"] == "appointment" and public["ticket"]["priority"]
    # a second check-in of the same booking prints the same number again, never a new ticket
    page.get_by_text("完 成").click()
    page.get_by_test_id("tab-checkin").click()
    reader[0].remove_card()
    time.sleep(0.5)
    reader[0].place_card("zhaxi")
    expect(page.get_by_test_id("checkin-card")).to_contain_text(ZHAXI_MASKED)
    page.get_by_test_id("checkin").click()
    expect(page.get_by_test_id("result-number")).to_have_text("A001", timeout=15_000)
    assert hall.queues()["biz"]["issued_today"] == 1


def test_server_unreachable_then_back_never_two_tickets(sqlite_hall: Hall, make_kiosk, printer,
                                                        page: Page) -> None:  # type: ignore[no-untyped-def]
    hall = sqlite_hall
    kiosk = make_kiosk(hall)
    open_kiosk(page, kiosk)
    choose(page, "shebao", "pension")
    hall.proc.stop()
    expect(page.get_by_test_id("notice")).to_have_text(re.compile("服务器连接中断"), timeout=10_000)
    page.get_by_test_id("issue").dblclick()
    expect(page.get_by_test_id("error")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("error-text")).to_contain_text("服务器连接中断")
    expect(page.get_by_test_id("retry")).to_be_visible()
    page.get_by_test_id("retry").click()  # still down: the same tap is tried again, and fails again
    expect(page.get_by_test_id("error")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("error-text")).to_contain_text("服务器连接中断")
    hall.proc.start()  # back on the same port
    expect(page.get_by_test_id("notice")).to_be_hidden(timeout=15_000)
    page.get_by_test_id("retry").click()
    expect(page.get_by_test_id("result-number")).to_have_text("B001", timeout=15_000)
    assert printer[0].wait_for_tickets(1, 5)

    # a tap sent twice at once (double tap racing itself): one ticket, one slip
    body = {"tap_id": "tap-double-000001", "matter": "pension"}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: requests.post(kiosk.url + "api/ticket", json=body, timeout=30).json(), range(2)))
    assert answers[0]["ticket"]["number"] == answers[1]["ticket"]["number"] == "B002"
    q = hall.queues()["soc"]
    assert q["issued_today"] == 2 and q["waiting"] == 2
    time.sleep(0.5)
    assert len(printer[0].printed) == 2


def test_reader_error_prompts_a_retry(sqlite_hall: Hall, make_kiosk, reader, page: Page) -> None:  # type: ignore[no-untyped-def]
    hall = sqlite_hall
    kiosk = make_kiosk(hall)
    open_kiosk(page, kiosk)
    choose(page, "shebao", "ssc")
    reader[0].read_failure = True
    reader[0].place_card("zhaxi")
    expect(page.get_by_test_id("card-box").get_by_test_id("card-error")).to_have_text("读取身份证失败，请重新放置身份证", timeout=10_000)
    expect(page.get_by_test_id("card-box")).to_contain_text("重新放在感应区")
    expect(page.get_by_test_id("issue")).to_be_disabled()
    reader[0].read_failure = False
    reader[0].remove_card()
    time.sleep(0.5)
    reader[0].place_card("zhaxi")
    expect(page.get_by_test_id("card-box").get_by_test_id("card-id")).to_have_text(ZHAXI_MASKED, timeout=10_000)
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("result-number")).to_have_text("B001", timeout=15_000)
    assert kiosk.devices.reader_ready()


def test_kiosk_clock_shows_the_halls_time_on_a_pc_set_to_utc(sqlite_hall: Hall, make_kiosk, utc_page: Page) -> None:  # type: ignore[no-untyped-def]
    kiosk = make_kiosk(sqlite_hall)
    page = utc_page
    open_kiosk(page, kiosk)
    expect(page.locator("#clock")).not_to_be_empty(timeout=5_000)
    shown = page.locator("#clock").inner_text()[:5]  # HH:MM
    hall_now = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
    assert shown in {f"{hall_now - dt.timedelta(minutes=1):%H:%M}", f"{hall_now:%H:%M}"}, shown


def test_search_by_pinyin_initials_and_a_bundle_with_optional_matters(sqlite_hall: Hall, make_kiosk, printer,
                                                                      page: Page) -> None:  # type: ignore[no-untyped-def]
    hall = sqlite_hall
    kiosk = make_kiosk(hall)
    open_kiosk(page, kiosk)
    page.get_by_test_id("tab-search").click()
    for key in "SHBZK":  # 社会保障卡
        page.locator(f"[data-key='{key}']").click()
    results = page.get_by_test_id("search-results")
    expect(results).to_contain_text("社会保障卡申领")
    expect(results).not_to_contain_text("营业执照")
    page.get_by_test_id("search").fill("开店")
    page.get_by_test_id("bundle-kaidian").click()
    expect(page.locator("#confirm-detail")).to_contain_text("营业执照办理")
    page.locator("[data-optional='seal']").check()
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("result-number")).to_have_text("M001", timeout=15_000)
    assert printer[0].wait_for_tickets(1, 5)
    assert "一件事：开店一件事" in slip_text(printer) and "选办：印章刻制备案" in slip_text(printer)


def test_guide_desk_issues_with_the_reason_recorded(sqlite_hall: Hall, utc_page: Page) -> None:
    hall = sqlite_hall
    page = utc_page  # a desk PC whose clock is set to UTC: the slip still shows the hall's time
    hall.proc.hall("user", "guide1", "--password", "guide-pass-001")
    # the desk PC's print dialog: counted instead of opened
    page.add_init_script("window.__prints = 0; window.print = () => { window.__prints += 1;"
                         " window.__qrAtPrint = document.getElementById('r-qr').naturalWidth; };")
    page.goto(f"{hall.url}/guide/k")
    page.get_by_test_id("username").fill("guide1")
    page.get_by_test_id("password").fill("guide-pass-001")
    page.get_by_test_id("login").click()
    page.get_by_test_id("matter").select_option("matter:licence")
    page.get_by_test_id("priority").select_option("green")
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("issue-error")).to_have_text("请填写代取号原因")
    page.get_by_test_id("reason-pick").select_option("未带身份证")
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("result-number")).to_have_text("A001")
    expect(page.get_by_test_id("log")).to_contain_text("未带身份证")
    link = page.get_by_test_id("result-link").inner_text()
    t = requests.get(link.replace("/t/", "/api/v1/t/"), timeout=5).json()["ticket"]
    assert t["priority"] and t["priority_class"] == "green"
    import sqlalchemy as sa

    engine = sa.create_engine(hall.proc.env["HALL_DATABASE_URL"])
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT channel, note FROM tickets WHERE id = :id"), {"id": t["id"]}).one()
    engine.dispose()
    assert tuple(row) == ("guide", "未带身份证")
    issued = dt.datetime.fromisoformat(t["issued_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    expect(page.get_by_test_id("result-time")).to_contain_text(issued.strftime("%H:%M:%S"))
    expect(page.get_by_test_id("log")).to_contain_text(issued.strftime("%H:%M:%S"))
    assert requests.get(f"{hall.url}/t/no-such-ticket-link-000/qr.svg", timeout=5).status_code == 404
    check_guide_slip(page, link)


def check_guide_slip(page: Page, link: str) -> None:
    """The slip printed at the guide desk: printed once the QR code is there, the QR code opens the
    ticket's mobile page, and the printout holds the slip and nothing else of the page."""
    import io

    import zxingcpp
    from PIL import Image

    page.wait_for_function("window.__prints === 1")
    assert page.evaluate("window.__qrAtPrint") > 0, "printed before the QR code was loaded"
    shot = Image.open(io.BytesIO(page.get_by_test_id("result-qr").screenshot()))
    assert [b.text for b in zxingcpp.read_barcodes(shot)] == [link]
    expect(page.get_by_test_id("result-time")).to_contain_text("取号时间")
    page.emulate_media(media="print")
    try:
        expect(page.get_by_test_id("result-number")).to_be_visible()
        expect(page.get_by_test_id("result-qr")).to_be_visible()
        expect(page.get_by_text("请留意大屏及语音叫号")).to_be_visible()
        for hidden in ("issue", "log", "print", "username"):
            expect(page.get_by_test_id(hidden)).to_be_hidden()
    finally:
        page.emulate_media(media="screen")
    expect(page.get_by_text("请留意大屏及语音叫号")).to_be_hidden()
    page.get_by_test_id("print").click()  # a second copy
    page.wait_for_function("window.__prints === 2")
    # automatic printing off (remembered by the desk's browser): the next ticket waits for the button
    page.get_by_test_id("auto-print").uncheck()
    page.get_by_test_id("reason-pick").select_option("老年人帮办")
    page.get_by_test_id("issue").click()
    expect(page.get_by_test_id("result-number")).to_have_text("A002")
    expect(page.get_by_test_id("result-qr")).to_have_attribute("src", re.compile(r"/qr\.svg$"))
    assert page.evaluate("window.__prints") == 2
    page.reload()
    expect(page.get_by_test_id("auto-print")).not_to_be_checked()
    assert page.evaluate("window.__prints") == 0  # a fresh page: nothing printed on its own

"""Against a real `hall serve` process: the window's room gets the pad's prompt over Socket.IO after the
clerk finishes, the pad grades with its device token, a 差评 opens a follow-up case that the manager
works through, and the printable report page shows the day in Chromium."""
from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import socketio

from tests.evaluation.conftest import EVAL_HALL
from tests.hall_server.server_proc import ServerProcess


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(db_url, tmp_path, config=EVAL_HALL)
    devices = ("kiosk1", "evalpad-1")
    users = (("user", u, "--password", f"{u}-pass-1") for u in ("clerk1", "boss"))
    *_, kiosk, pad = srv.hall_all(("db", "upgrade"), *users, *(("device-token", "t", d) for d in devices))
    srv.tokens = {d: out.strip() for d, out in zip(devices, (kiosk, pad))}  # type: ignore[attr-defined]
    srv.start()
    yield srv
    srv.stop()


def login(srv: ServerProcess, user: str) -> str:
    r = requests.post(f"{srv.url}/api/v1/auth/login", json={"username": user, "password": f"{user}-pass-1"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def post(srv: ServerProcess, path: str, token: str, expect: int = 200, **body: Any) -> dict[str, Any]:
    r = requests.post(f"{srv.url}/api/v1{path}", json=body or None, headers={"Authorization": f"Bearer {token}"},
                      timeout=10)
    assert r.status_code == expect, r.text
    return r.json()


def test_pad_prompt_grade_and_follow_up_through_a_real_server(server: ServerProcess) -> None:
    clerk, boss = login(server, "clerk1"), login(server, "boss")
    pad = server.tokens["evalpad-1"]  # type: ignore[attr-defined]
    prompts: "queue.Queue[dict[str, Any]]" = queue.Queue()
    alerts: "queue.Queue[tuple[str, dict[str, Any]]]" = queue.Queue()
    console = socketio.Client(reconnection=False)
    console.on("evaluation_request", prompts.put)
    console.connect(server.url, auth={"hall": "t", "token": clerk, "window": "1"}, transports=["websocket"],
                    wait_timeout=10)
    managers = socketio.Client(reconnection=False)
    managers.on("evaluation", lambda d: alerts.put(("evaluation", d)))
    managers.on("followup", lambda d: alerts.put(("followup", d)))
    managers.connect(server.url, auth={"hall": "t", "token": boss}, transports=["websocket"], wait_timeout=10)
    try:
        t = post(server, "/halls/t/tickets", server.tokens["kiosk1"], 201,  # type: ignore[attr-defined]
                 matter="licence", request_id=f"e2e-{time.time_ns()}")
        for action, body in (("sign-in", {}), ("call-next", {}), ("start", {}), ("finish", {"outcome": "promised"})):
            post(server, f"/halls/t/windows/1/{action}", clerk, **body)
        prompt = prompts.get(timeout=10)
        assert (prompt["ticket_number"], prompt["clerk_name"], prompt["staff_no"], prompt["matter_name"]) == (
            t["ticket"]["number"], "王小明", "1001", "营业执照办理")

        assert post(server, "/halls/t/evaluations", clerk, 403, window="1", grade=5)["error"]["code"] == "forbidden"
        ev = post(server, "/halls/t/evaluations", pad, 201, window="1", grade=2, comment="等太久",
                  sub_scores={"efficiency": 1, "attitude": 4})
        assert ev["ticket_id"] == prompt["ticket_id"] and ev["followup_id"]
        post(server, "/halls/t/evaluations", pad, 409, window="1", grade=5)

        seen = [alerts.get(timeout=10) for _ in range(2)]
        assert {name for name, _ in seen} == {"evaluation", "followup"}
        case = f"/halls/t/followups/{ev['followup_id']}"
        post(server, case + "/callback", boss, note="已回访，系材料不齐反复补正")
        post(server, case + "/fix", boss, note="窗口增设一次性告知")
        closed = post(server, case + "/close", boss)
        assert closed["status"] == "closed"
        r = requests.get(f"{server.url}/api/v1/halls/t/followups", params={"status": "open"},
                         headers={"Authorization": f"Bearer {boss}"}, timeout=10)
        assert r.json()["cases"] == []
    finally:
        console.disconnect()
        managers.disconnect()


@pytest.mark.browser
def test_printable_report_page(server: ServerProcess, page: Any, db_url: str) -> None:
    if "postgresql" in db_url:
        pytest.skip("the page is the same on both databases")
    clerk = login(server, "clerk1")
    t = post(server, "/halls/t/tickets", server.tokens["kiosk1"], 201,  # type: ignore[attr-defined]
             matter="pension", request_id=f"page-{time.time_ns()}")
    for action, body in (("sign-in", {}), ("call-next", {}), ("start", {}), ("finish", {"outcome": "instant"})):
        post(server, f"/halls/t/windows/1/{action}", clerk, **body)
    assert t["ticket"]["number"] == "B001"
    page.goto(f"{server.url}/reports/t")
    page.fill("#username", "boss")
    page.fill("#password", "boss-pass-1")
    page.click("#login button")
    page.wait_for_selector("table")
    assert "服务日报" in page.inner_text("h1")
    first = page.locator("tbody tr").first
    cells = first.locator("td").all_inner_texts()
    assert cells[:5] == ["全厅", "t", "评价测试政务服务中心", "1", "1"]
    assert page.locator("td[data-col='instant_share']").first.inner_text() == "100.0"
    page.emulate_media(media="print")
    assert not page.is_visible("#controls")  # only the report is printed
    pdf_path = Path(server.workdir) / "report.pdf"
    page.pdf(path=str(pdf_path), landscape=True)
    assert pdf_path.stat().st_size > 1000

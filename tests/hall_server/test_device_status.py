"""Device health reports: kiosks report themselves, the gateway reports its boards and pads; managers
see the list and a live `device` event on each change."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from hall_server.config import load_config
from tests.hall_server.conftest import HERE, FakeClock, make_client

EXTRA_DEVICES = """
[[halls.devices]]
id = "gw"
kind = "gateway"

[[halls.devices]]
id = "led1"
kind = "led"
window = 1
"""


@pytest.fixture
def hall(tmp_path: Path, db_url: str, clock: FakeClock):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "hall.toml"
    cfg.write_text((HERE / "small_hall.toml").read_text(encoding="utf-8") + EXTRA_DEVICES, encoding="utf-8")
    hc = make_client(load_config(cfg), db_url, clock)
    hc.login("boss")
    hc.login("clerk1")
    hc.device("kiosk1")
    hc.device("gw")
    yield hc
    hc.db.dispose()


def devices(hc, who="boss"):  # type: ignore[no-untyped-def]
    r = hc.req("GET", "/api/v1/halls/t/devices", who)
    assert r.status_code == 200, r.get_json()
    return {d["device"]: d for d in r.get_json()["devices"]}


def report(hc, who, *reports, expect=200):  # type: ignore[no-untyped-def]
    r = hc.req("POST", "/api/v1/halls/t/devices/status", who, json={"devices": list(reports)})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def test_every_configured_device_is_listed_unknown_until_it_reports(hall) -> None:  # type: ignore[no-untyped-def]
    listed = devices(hall)
    assert set(listed) == {"kiosk1", "pad1", "gw", "led1"}
    assert listed["led1"]["state"] == "unknown" and listed["led1"]["state_label"] == "未上报"
    assert listed["led1"]["window"] == "1"


def test_kiosk_reports_paper_out_and_recovery(hall, clock) -> None:  # type: ignore[no-untyped-def]
    report(hall, "kiosk1", {"device": "kiosk1", "state": "degraded", "detail": "打印机缺纸",
                            "parts": {"printer": "paper_out", "reader": "ok"}})
    k = devices(hall, "clerk1")["kiosk1"]
    assert (k["state"], k["detail"], k["parts"]["printer"], k["reporter"]) == ("degraded", "打印机缺纸", "paper_out", "kiosk1")
    clock.advance(minutes=5)
    assert devices(hall)["kiosk1"]["stale"] is True  # not heard of for 5 minutes
    report(hall, "kiosk1", {"device": "kiosk1", "state": "online"})
    k = devices(hall)["kiosk1"]
    assert (k["state"], k["stale"], k["detail"]) == ("online", False, None)


def test_gateway_reports_its_boards_but_a_kiosk_only_itself(hall) -> None:  # type: ignore[no-untyped-def]
    report(hall, "gw", {"device": "led1", "state": "offline", "detail": "LED屏无应答"},
           {"device": "pad1", "state": "online"})
    listed = devices(hall)
    assert listed["led1"]["state"] == "offline" and listed["pad1"]["state"] == "online"
    body = report(hall, "kiosk1", {"device": "led1", "state": "online"}, expect=403)
    assert "只能上报自身状态" in body["error"]["message"]
    assert devices(hall)["led1"]["state"] == "offline"  # nothing changed


def test_bad_reports_are_refused_with_a_clear_error(hall) -> None:  # type: ignore[no-untyped-def]
    body = report(hall, "gw", {"device": "nope", "state": "online"}, expect=400)
    assert body["error"]["code"] == "unknown_device"
    body = report(hall, "gw", {"device": "led1", "state": "on fire"}, expect=422)
    assert "state" in str(body)
    report(hall, "clerk1", {"device": "led1", "state": "online"}, expect=403)  # clerks cannot report
    r = hall.req("POST", "/api/v1/halls/t/devices/status", None, json={"devices": [{"device": "led1", "state": "online"}]})
    assert r.status_code == 401


def test_a_change_is_pushed_live_to_managers_once(hall) -> None:  # type: ignore[no-untyped-def]
    sio = hall.socketio.test_client(hall.app, auth={"hall": "t", "token": hall.tokens["boss"]})
    assert sio.is_connected()
    sio.get_received()  # the snapshot
    report(hall, "gw", {"device": "led1", "state": "offline", "detail": "LED屏无应答"})
    report(hall, "gw", {"device": "led1", "state": "offline", "detail": "LED屏无应答"})  # heartbeat, no change
    report(hall, "gw", {"device": "led1", "state": "online"})
    got: list[dict] = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        got += [e["args"][0] for e in sio.get_received() if e["name"] == "device"]
        time.sleep(0.05)
    time.sleep(0.3)
    got += [e["args"][0] for e in sio.get_received() if e["name"] == "device"]
    assert [(e["device"], e["state"]) for e in got] == [("led1", "offline"), ("led1", "online")]
    sio.disconnect()

"""Online appointments: slots with a capacity per queue, booking by ID number, cancellation, and
check-in at a kiosk within the hall's window; plus the kiosk catalogue and voiding an unprinted ticket."""
from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, Iterator

import pytest

from hall_server.config import HallConfig

from .conftest import FakeClock, HallClient, make_client

WANG = "110101195804120017"  # born 1958: elderly
ZHAXI = "540102198502280031"
AYGULI = "650102199007080040"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def with_appointments(cfg: HallConfig, **appts: Any) -> HallConfig:
    hall = cfg.halls[0]
    new = hall.model_copy(update={"appointments": hall.appointments.model_copy(update=appts)})
    return cfg.model_copy(update={"halls": [new]})


@pytest.fixture
def appt_hall(small_config: HallConfig, db_url: str, clock: FakeClock) -> Iterator[HallClient]:
    cfg = with_appointments(small_config, slot_capacity=2, queue_capacity={"out": 0}, late_policy="refuse")
    hc = make_client(cfg, db_url, clock)
    hc.login("clerk1")
    hc.device("kiosk1")
    yield hc
    hc.db.dispose()


_rids = itertools.count()


def book(hc: HallClient, slot: str, id_number: str, expect: int = 201, **body: Any) -> dict[str, Any]:
    body.setdefault("matter", "pension")
    r = hc.req("POST", "/api/v1/halls/t/appointments", json={"slot_start": slot, "id_number": id_number, **body})
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def check_in(hc: HallClient, expect: int = 201, **body: Any) -> dict[str, Any]:
    r = hc.req("POST", "/api/v1/halls/t/appointments/check-in", "kiosk1", json=body)
    assert r.status_code == expect, r.get_json()
    return r.get_json()


def test_slots_fill_up_per_queue_and_cancellation_frees_a_place(appt_hall: HallClient) -> None:
    hc = appt_hall
    slots = hc.req("GET", "/api/v1/halls/t/appointment-slots?matter=pension").get_json()
    assert slots["queue"] == "soc"
    first = slots["slots"][0]
    # the clock says 10:00 Shanghai: slots that have ended are not offered
    assert first["label"].endswith("10:00-10:30") and first["left"] == 2
    a = book(hc, first["start"], WANG)
    assert len(a["code"]) == 8 and a["person_masked"] == "1101**********0017" and a["status"] == "booked"
    book(hc, first["start"], ZHAXI)
    full = book(hc, first["start"], AYGULI, expect=409)
    assert full["error"]["code"] == "slot_full" and "已满" in full["error"]["message"]
    # the same slot of another queue has its own capacity
    book(hc, first["start"], AYGULI, matter="licence")
    again = hc.req("GET", "/api/v1/halls/t/appointment-slots?matter=pension").get_json()["slots"][0]
    assert again["left"] == 0
    wrong = hc.req("POST", "/api/v1/halls/t/appointments/cancel", json={"code": a["code"], "id_number": ZHAXI})
    assert wrong.status_code == 404  # a code alone (or with someone else's ID) cancels nothing
    ok = hc.req("POST", "/api/v1/halls/t/appointments/cancel", json={"code": a["code"], "id_number": WANG})
    assert ok.status_code == 200 and ok.get_json()["status"] == "cancelled"
    assert hc.req("GET", "/api/v1/halls/t/appointment-slots?matter=pension").get_json()["slots"][0]["left"] == 1
    book(hc, first["start"], AYGULI)


def test_booking_refuses_bad_input_and_a_second_booking_of_the_day(appt_hall: HallClient) -> None:
    hc = appt_hall
    slot = hc.req("GET", "/api/v1/halls/t/appointment-slots?matter=pension").get_json()["slots"][1]["start"]
    bad = book(hc, slot, "110101195804120018", expect=400)
    assert bad["error"]["code"] == "invalid_id_number"
    assert book(hc, "2026-11-20T10:10:00+08:00", WANG, expect=400)["error"]["code"] == "not_a_slot"
    assert book(hc, "2026-11-20T08:30:00+08:00", WANG, expect=409)["error"]["code"] == "slot_over"
    assert book(hc, "2026-12-20T09:00:00+08:00", WANG, expect=400)["error"]["code"] == "date_too_far"
    assert book(hc, slot, WANG, queue="out", matter=None, expect=409)["error"]["code"] == "no_booking"
    a = book(hc, slot, WANG, request_id="form-0001")
    assert book(hc, slot, WANG, request_id="form-0001")["code"] == a["code"]  # a resubmitted form
    twice = book(hc, slot, WANG, expect=409)
    assert twice["error"]["code"] == "person_limit_appointment" and "每人每天限约1次" in twice["error"]["message"]


def test_check_in_by_code_gives_a_priority_ticket_once(appt_hall: HallClient, clock: FakeClock) -> None:
    hc = appt_hall
    walk_in = hc.issue(matter="pension")
    a = book(hc, "2026-11-20T10:30:00+08:00", ZHAXI)
    first = check_in(hc, code=a["code"])
    assert first["ticket"]["priority_class"] == "appointment" and first["ticket"]["priority"]
    assert first["appointment"]["status"] == "checked_in" and first["people_ahead"] == 0
    assert first["status_url"].split("/t/")[1]  # the mobile page link
    again = check_in(hc, expect=200, code=a["code"])
    assert again["replayed"] and again["ticket"]["id"] == first["ticket"]["id"]
    # the appointment is called before the walk-in who came earlier once its slot has begun
    clock.advance(minutes=31)
    hc.act("1", "sign-in")
    called = hc.act("1", "call-next")
    assert called["ticket"]["id"] == first["ticket"]["id"] != walk_in["ticket"]["id"]


def test_check_in_window_early_and_late(appt_hall: HallClient, clock: FakeClock) -> None:
    hc = appt_hall
    a = book(hc, "2026-11-20T11:30:00+08:00", ZHAXI)  # 90 minutes ahead; early window is 30
    early = check_in(hc, expect=409, code=a["code"])
    assert early["error"]["code"] == "appointment_too_early" and "11:30" in early["error"]["message"]
    clock.advance(minutes=95 + 15)  # 11:50: over the 15 late minutes, and this hall refuses
    late = check_in(hc, expect=409, code=a["code"])
    assert late["error"]["code"] == "appointment_missed"
    assert check_in(hc, expect=404, code="00000000")["error"]["code"] == "appointment_not_found"


def test_late_arrival_becomes_a_normal_ticket_where_the_hall_says_so(small_config: HallConfig, db_url: str,
                                                                      clock: FakeClock) -> None:
    hc = make_client(with_appointments(small_config, late_policy="normal"), db_url, clock)
    try:
        hc.device("kiosk1")
        a = book(hc, "2026-11-20T10:00:00+08:00", ZHAXI)
        clock.advance(minutes=20)
        t = check_in(hc, code=a["code"])
        assert not t["ticket"]["priority"] and t["ticket"]["priority_class"] is None
    finally:
        hc.db.dispose()


def test_check_in_by_id_card_and_void_issues_anew(appt_hall: HallClient) -> None:
    hc = appt_hall
    a = book(hc, "2026-11-20T10:00:00+08:00", WANG, matter="licence")  # a matter that needs the ID card
    assert check_in(hc, expect=404, id_number=ZHAXI)["error"]["code"] == "appointment_not_found"
    t = check_in(hc, id_number=WANG)
    assert t["appointment"]["code"] == a["code"] and t["person_masked"] == "1101**********0017"
    # the kiosk could not print it: it voids the ticket; checking in again gives a new one
    rid = f"appt-{t['appointment']['code']}"  # not the request id: voiding by a wrong id voids nothing
    none = hc.req("POST", "/api/v1/halls/t/tickets/void", "kiosk1", json={"request_id": rid})
    assert none.get_json() == {"voided": False, "ticket": None}
    snap = hc.req("GET", "/api/v1/halls/t/snapshot").get_json()
    assert {q["id"]: q["waiting"] for q in snap["queues"]}["biz"] == 1
    void = hc.req("POST", "/api/v1/halls/t/tickets/void", "kiosk1", json={"ticket_id": t["ticket"]["id"]})
    assert void.get_json()["voided"]
    t2 = check_in(hc, id_number=WANG)
    assert t2["ticket"]["id"] != t["ticket"]["id"] and not t2["replayed"]


def test_kiosk_voids_only_its_own_waiting_ticket(appt_hall: HallClient) -> None:
    hc = appt_hall
    hc.device("pad1")
    t = hc.issue(matter="pension", request_id="kiosk1-tap-0001")
    other = hc.req("POST", "/api/v1/halls/t/tickets/void", "clerk1", json={"request_id": "kiosk1-tap-0001"})
    assert other.status_code == 403
    r = hc.req("POST", "/api/v1/halls/t/tickets/void", "kiosk1",
               json={"request_id": "kiosk1-tap-0001", "reason": "打印机缺纸"})
    assert r.status_code == 200 and r.get_json()["voided"] and r.get_json()["ticket"]["status"] == "cancelled"
    again = hc.req("POST", "/api/v1/halls/t/tickets/void", "kiosk1", json={"request_id": "kiosk1-tap-0001"})
    assert again.get_json()["voided"] is False
    snap = hc.req("GET", "/api/v1/halls/t/snapshot").get_json()
    assert {q["id"]: q["waiting"] for q in snap["queues"]}["soc"] == 0
    # a retry of the voided request does not bring the ticket back
    replay = hc.issue(matter="pension", request_id="kiosk1-tap-0001", expect=200)
    assert replay["ticket"]["id"] == t["ticket"]["id"] and replay["ticket"]["status"] == "cancelled"


def test_catalogue_offers_pinyin_initials_and_waiting_counts(appt_hall: HallClient) -> None:
    hc = appt_hall
    hc.issue(matter="pension")
    cat = hc.req("GET", "/api/v1/halls/t/catalogue").get_json()
    matters = {m["id"]: m for m in cat["matters"]}
    assert matters["licence"]["initials"] == "yyzzbl" and matters["licence"]["needs_identity"]
    assert matters["pension"]["pinyin"].startswith("shebao")
    assert cat["bundles"][0]["mandatory"][0] == {"id": "licence", "name": "营业执照办理"}
    assert {q["id"]: q["waiting"] for q in cat["queues"]}["soc"] == 1
    assert cat["hall"]["elderly_age"] == 60


def test_public_look_ups_are_rate_limited_per_address_but_kiosks_are_not(small_config: HallConfig, db_url: str,
                                                                        clock: FakeClock) -> None:
    cfg = small_config.model_copy(update={"server": small_config.server.model_copy(
        update={"public_rate_limit": "5 per minute"})})
    hc = make_client(cfg, db_url, clock)
    try:
        hc.device("kiosk1")
        guesses = [hc.req("POST", "/api/v1/halls/t/appointments/lookup",
                          json={"code": f"GUESS{i:03d}", "id_number": WANG}) for i in range(6)]
        assert [r.status_code for r in guesses] == [404] * 5 + [429]
        refused = guesses[-1]
        assert refused.get_json()["error"]["code"] == "too_many_requests"
        assert "请求过于频繁" in refused.get_json()["error"]["message"]
        assert int(refused.headers["Retry-After"]) > 0
        # cancelling counts on its own; a kiosk issuing tickets from the same address is never limited
        assert hc.req("POST", "/api/v1/halls/t/appointments/cancel",
                      json={"code": "GUESS999", "id_number": WANG}).status_code == 404
        for _ in range(8):
            hc.issue(matter="pension")
    finally:
        hc.db.dispose()


@pytest.mark.parametrize("trusted", [0, 1])
def test_behind_a_trusted_proxy_each_citizen_has_their_own_limit(small_config: HallConfig, db_url: str,
                                                               clock: FakeClock, trusted: int) -> None:
    """nginx in front: every request comes from the proxy's address. With ``trusted_proxies = 1`` the
    address it appends to X-Forwarded-For is the client's; without, the header is ignored (a client
    could forge it) and everyone behind the proxy shares one limit."""
    cfg = small_config.model_copy(update={"server": small_config.server.model_copy(
        update={"public_rate_limit": "3 per minute", "trusted_proxies": trusted})})
    hc = make_client(cfg, db_url, clock)

    def lookup(forwarded_for: str) -> int:
        return hc.req("POST", "/api/v1/halls/t/appointments/lookup", json={"code": "GUESS001", "id_number": WANG},
                      headers={"X-Forwarded-For": forwarded_for}, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code

    try:
        first = [lookup("203.0.113.7") for _ in range(4)]
        assert first == [404] * 3 + [429]
        # another citizen, and the first one forging an address in front of the one the proxy appended
        other, forged = lookup("198.51.100.9"), lookup("1.2.3.4, 203.0.113.7")
        if trusted:
            assert (other, forged) == (404, 429)
        else:
            assert (other, forged) == (429, 429)
    finally:
        hc.db.dispose()


def test_an_early_check_in_waits_from_its_slot_on_the_dashboard_and_in_reports(appt_hall: HallClient,
                                                                                clock: FakeClock) -> None:
    """Coming early is the citizen's choice: the hall's measured wait for an appointment starts at the
    slot it gave (or at check-in, when that is later), a walk-in's at its ticket."""
    hc = appt_hall
    hc.login("boss")
    a = book(hc, "2026-11-20T10:30:00+08:00", ZHAXI)
    clock.advance(minutes=10)  # 10:10, twenty minutes before the slot
    appt = check_in(hc, code=a["code"])
    walk_in = hc.issue(matter="pension")
    clock.advance(minutes=25)  # 10:35: the slot began five minutes ago
    hc.act("1", "sign-in")
    for expected in (appt, walk_in):
        assert hc.act("1", "call-next")["ticket"]["id"] == expected["ticket"]["id"]
        hc.act("1", "start")
        hc.act("1", "finish", outcome="instant")
    soc = {q["id"]: q for q in hc.req("GET", "/api/v1/halls/t/dashboard", "boss").get_json()["queues"]}["soc"]
    assert soc["avg_wait_last_hour_seconds"] == (5 * 60 + 25 * 60) / 2
    report = hc.req("GET", "/api/v1/halls/t/reports/daily?day=2026-11-20", "boss").get_json()
    row = {(r["level"], r["key"]): r for r in report["rows"]}[("queue", "soc")]
    assert row["wait_mean_min"] == 15.0

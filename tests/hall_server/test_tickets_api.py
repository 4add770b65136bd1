"""Issuing tickets over the REST API, on SQLite and PostgreSQL."""
from __future__ import annotations

from tests.hall_server.conftest import HallClient

ELDER_ID = "11010519491231002X"  # born 1949: elderly
YOUNG_ID = "110105199003071239"


def valid_id(prefix17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return prefix17 + "10X98765432"[sum(int(c) * w for c, w in zip(prefix17, weights)) % 11]


def test_numbers_are_sequential_per_queue_with_people_ahead_and_wait(hall: HallClient) -> None:
    a1 = hall.issue(queue="biz")
    a2 = hall.issue(queue="biz")
    b1 = hall.issue(queue="soc")
    a3 = hall.issue(queue="biz")
    assert [a1["ticket"]["number"], a2["ticket"]["number"], a3["ticket"]["number"]] == ["A001", "A002", "A003"]
    assert b1["ticket"]["number"] == "B001"
    assert [a1["people_ahead"], a2["people_ahead"], a3["people_ahead"]] == [0, 1, 2]
    assert a3["estimated_wait_seconds"] > a2["estimated_wait_seconds"] > 0
    assert a1["ticket"]["queue_name"] == "企业开办"
    assert a1["status_url"].startswith("http://") and "/t/" in a1["status_url"]


def test_retry_with_same_request_id_returns_the_same_ticket(hall: HallClient) -> None:
    first = hall.issue(queue="biz", request_id="kiosk1-0001-abc")
    again = hall.issue(queue="biz", request_id="kiosk1-0001-abc", expect=200)
    assert again["ticket"]["id"] == first["ticket"]["id"]
    assert again["replayed"] is True
    nxt = hall.issue(queue="biz")
    assert nxt["ticket"]["number"] == "A002"  # no number burnt by the retry


def test_identity_is_hashed_and_masked_never_stored_raw(hall: HallClient) -> None:
    r = hall.issue(queue="biz", id_number=YOUNG_ID)
    assert r["person_masked"] == "1101**********1239"
    with hall.db.engine.connect() as conn:
        import sqlalchemy as sa

        rows = conn.execute(sa.text("SELECT * FROM tickets")).all()
    assert YOUNG_ID not in repr(rows)


def test_elderly_citizen_gets_priority_from_birth_date(hall: HallClient) -> None:
    hall.issue(queue="biz")
    r = hall.issue(queue="biz", id_number=ELDER_ID)
    assert r["ticket"]["priority"] is True and r["ticket"]["priority_class"] == "elderly"
    assert r["people_ahead"] == 0  # priority goes ahead of normal tickets


def test_people_ahead_counts_every_priority_ticket_and_earlier_normal_ones(hall: HallClient) -> None:
    a1 = hall.issue(queue="biz")
    elder1 = hall.issue(queue="biz", id_number=ELDER_ID)
    a2 = hall.issue(queue="biz")
    elder2 = hall.issue(queue="biz", id_number=ELDER_ID)
    assert [a1["people_ahead"], elder1["people_ahead"], a2["people_ahead"], elder2["people_ahead"]] == [0, 0, 2, 1]
    now = hall.req("GET", f"/api/v1/halls/t/tickets/{a1['ticket']['id']}", "boss").get_json()
    assert now["people_ahead"] == 2  # both elderly citizens went ahead of A001


def test_per_person_daily_limit_refuses_with_reason(hall: HallClient) -> None:
    hall.issue(queue="biz", id_number=YOUNG_ID)
    hall.issue(queue="biz", id_number=YOUNG_ID)
    r = hall.issue(queue="biz", id_number=YOUNG_ID, expect=409)
    assert r["error"]["code"] == "person_limit_queue"
    assert "每日上限2次" in r["error"]["message"]
    assert hall.issue(queue="biz")["ticket"]["number"] == "A003"  # the refusal burnt no number


def test_invalid_id_number_is_a_clear_400(hall: HallClient) -> None:
    r = hall.issue(queue="biz", id_number="110105199003071234", expect=400)
    assert r["error"]["code"] == "invalid_id_number" and "校验位" in r["error"]["message"]


def test_matter_and_bundle_route_to_their_queue(hall: HallClient) -> None:
    r = hall.issue(matter="pension")
    assert r["ticket"]["queue"] == "soc"
    r = hall.issue(bundle="newborn")
    assert r["ticket"]["queue"] == "biz"
    r = hall.issue(matter="licence", expect=409)
    assert r["error"]["code"] == "identity_required"


def test_daily_cap(hall: HallClient, small_config) -> None:  # type: ignore[no-untyped-def]
    for _ in range(50):
        hall.issue(queue="soc")
    r = hall.issue(queue="soc", expect=409)
    assert r["error"]["code"] == "daily_cap_reached" and "号源已取完" in r["error"]["message"]


def test_unknown_queue_malformed_json_and_missing_fields_are_4xx(hall: HallClient) -> None:
    r = hall.issue(queue="nope", expect=404)
    assert r["error"]["code"] == "unknown_queue" and "biz" in r["error"]["message"]
    bad = hall.client.post("/api/v1/halls/t/tickets", data=b'{"queue": "biz",', content_type="application/json",
                           headers={"Authorization": f"Bearer {hall.tokens['kiosk1']}"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "malformed_json"
    r = hall.req("POST", "/api/v1/halls/t/tickets", "kiosk1", json={"queue": "biz"})
    assert r.status_code == 422 and "request_id" in r.get_json()["error"]["message"]
    r = hall.req("POST", "/api/v1/halls/nohall/tickets", "kiosk1", json={"queue": "biz", "request_id": "x" * 10})
    assert r.status_code in (403, 404)
    # nothing was issued by any of these
    assert hall.issue(queue="biz")["ticket"]["number"] == "A001"


def test_public_status_page_by_unguessable_token(hall: HallClient) -> None:
    r = hall.issue(queue="biz")
    hall.issue(queue="biz")
    token = r["status_url"].rsplit("/", 1)[1]
    assert len(token) >= 20
    page = hall.client.get(f"/api/v1/t/{token}").get_json()
    assert page["ticket"]["number"] == "A001" and page["hall_name"] == "测试政务服务中心"
    assert "person" not in str(page)
    assert hall.client.get("/api/v1/t/AAAAAAAAAAAAAAAAAAAAAAAA").status_code == 404


def test_openapi_document_and_healthz(hall: HallClient) -> None:
    doc = hall.client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/halls/{hall}/tickets" in doc["paths"]
    assert "/api/v1/halls/{hall}/windows/{window}/call-next" in doc["paths"]
    h = hall.client.get("/healthz")
    assert h.status_code == 200 and h.get_json()["status"] == "ok"


def test_appointment_enters_at_its_slot_time(hall: HallClient, clock) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    slot = clock.now + dt.timedelta(minutes=20)
    too_early = hall.issue(queue="biz", channel="appointment", appointment_at=(slot + dt.timedelta(hours=2)).isoformat(),
                           expect=409)
    assert too_early["error"]["code"] == "appointment_too_early"
    walk_in = hall.issue(queue="biz")
    appt = hall.issue(queue="biz", channel="appointment", appointment_at=slot.isoformat())
    assert appt["ticket"]["priority"] is True and appt["ticket"]["priority_class"] == "appointment"
    hall.act("1", "sign-in")
    # checked in 20 minutes early: not callable before its slot
    assert hall.act("1", "call-next")["ticket"]["id"] == walk_in["ticket"]["id"]
    hall.act("1", "start")
    hall.act("1", "finish", outcome="instant")
    assert hall.act("1", "call-next")["ticket"] is None
    clock.advance(minutes=21)
    assert hall.act("1", "call-next")["ticket"]["id"] == appt["ticket"]["id"]


def test_late_appointment_becomes_a_normal_ticket(hall: HallClient, clock) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    slot = clock.now - dt.timedelta(minutes=40)  # the hall allows 15 minutes late
    r = hall.issue(queue="biz", channel="appointment", appointment_at=slot.isoformat())
    assert r["ticket"]["priority"] is False

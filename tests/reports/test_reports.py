"""Reports: a day of real traffic through the API (calls, recalls, no-shows, next-stage transfers,
pauses, pad grades, unrated visits, a cancelled ticket); every figure of the daily report must equal
an independent recomputation from the raw ``ticket_events``, ``window_log`` and ``evaluations`` rows.
CSV, XLSX and the printable page show the same figures."""
from __future__ import annotations

import csv
import io
import math
import random
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from tests.hall_server.conftest import FakeClock, HallClient

DAY = "2026-11-20"


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = 0.9 * len(values)
    return values[int(k) - 1 if k == int(k) else int(k)]  # nearest rank, written differently


def run_day(hall: HallClient, clock: FakeClock, seed: int = 7) -> None:
    rng = random.Random(seed)
    clock.advance(minutes=-60)  # 09:00 Shanghai
    for w, c in (("1", "clerk1"), ("2", "clerk2"), ("3", "clerk3")):
        hall.act(w, "sign-in", c)
    clerks = {"1": "clerk1", "2": "clerk2", "3": "clerk3"}
    current: dict[str, str | None] = {"1": None, "2": None, "3": None}  # called | serving
    issued = 0
    paused = False
    for step in range(160):
        clock.advance(seconds=rng.randint(20, 150))
        if issued < 45 and rng.random() < 0.45:
            hall.issue(matter=rng.choice(["licence", "pension"]))
            issued += 1
            if issued == 20:
                t = hall.issue(queue="soc")
                hall.req("POST", f"/api/v1/halls/t/tickets/{t['ticket']['id']}/cancel", "boss", json={"reason": "不办了"})
            continue
        w = rng.choice(["1", "2", "3"])
        c = clerks[w]
        if w == "2" and step == 60 and current[w] is None:
            hall.act(w, "pause", c, reason="午间休息")
            clock.advance(minutes=15)
            hall.act(w, "resume", c)
            paused = True
            continue
        state = current[w]
        if state is None:
            r = hall.act(w, "call-next", c)
            if r["ticket"] is not None:
                current[w] = "called"
        elif state == "called":
            roll = rng.random()
            if roll < 0.12:
                hall.act(w, "recall", c)
                clock.advance(seconds=30)
                hall.act(w, "no-show", c)
                current[w] = None
            else:
                hall.act(w, "start", c)
                current[w] = "serving"
        else:
            view = hall.service.window_view("t", w)
            if view.ticket and view.ticket.queue == "biz" and rng.random() < 0.5:
                hall.act(w, "transfer", c, next_stage=True)
            else:
                hall.act(w, "finish", c, outcome=rng.choice(["instant", "promised"]))
            current[w] = None
            if w in ("1", "2"):
                roll = rng.random()
                if roll < 0.7:
                    grade = rng.choice([5, 5, 5, 4, 4, 3, 2, 1])
                    r = hall.req("POST", "/api/v1/halls/t/evaluations", f"evalpad-{w}", json={"window": w, "grade": grade})
                    assert r.status_code == 201, r.get_json()
                # else: nobody rates; the next steps move the clock past the timeout
    assert paused
    clock.advance(minutes=5)


def recompute(db_url: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The figures straight from the raw rows, without the report code."""
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        events = conn.execute(sa.text(
            "SELECT id, ticket_id, kind, at, queue_id, \"window\", data FROM ticket_events ORDER BY id")).all()
        log = conn.execute(sa.text("SELECT number, kind, at, clerk FROM window_log ORDER BY id")).all()
        evals = conn.execute(sa.text("SELECT queue_id, \"window\", clerk, grade FROM evaluations")).all()
    engine.dispose()
    import datetime as dt
    import json

    def ts(v: Any) -> float:
        if isinstance(v, str):
            v = dt.datetime.fromisoformat(v)
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return v.timestamp()

    def clerk_at(window: str, when: float) -> str | None:
        who = None
        for number, kind, at, clerk in log:
            if number == window and ts(at) <= when:
                who = None if kind == "sign_out" else clerk
        return who

    targets = {"biz": 15 * 60, "soc": 20 * 60, "out": 20 * 60}
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(list))
    by_ticket: dict[int, list[Any]] = defaultdict(list)
    for e in events:
        by_ticket[e.ticket_id].append(e)
    for e in events:
        data = e.data if isinstance(e.data, dict) else json.loads(e.data or "{}")
        groups = [("hall", "t"), ("queue", e.queue_id)]
        history = [x for x in by_ticket[e.ticket_id] if x.id < e.id]
        if e.kind == "issued":
            for g in groups:
                out[g]["issued"].append(1)
        elif e.kind in ("cancelled", "expired"):
            for g in groups:
                out[g]["cancelled"].append(1)
        elif e.kind == "called":
            start = [x for x in history if x.kind in ("issued", "transferred", "reactivated")][-1]
            wait = ts(e.at) - ts(start.at)
            for g in groups + [("window", e.window), ("clerk", clerk_at(e.window, ts(e.at)))]:
                out[g]["waits"].append(wait)
                out[g]["within"].append(wait <= targets[e.queue_id])
        elif e.kind in ("finished", "transferred"):
            called = [x for x in history if x.kind == "called"][-1]
            g2 = [("hall", "t"), ("queue", called.queue_id), ("window", called.window),
                  ("clerk", clerk_at(called.window, ts(called.at)))]
            for g in g2:
                out[g]["handlings"].append(ts(e.at) - ts(called.at))
                if e.kind == "finished":
                    out[g]["finished"].append(1)
                    out[g]["instant"].append(data.get("outcome") == "instant")
        elif e.kind == "no_show":
            for g in groups + [("window", e.window), ("clerk", clerk_at(e.window, ts(e.at)))]:
                out[g]["no_shows"].append(1)
    for q, w, c, grade in evals:
        for g in (("hall", "t"), ("queue", q), ("window", w), ("clerk", c)):
            out[g]["grades"].append(grade)
    pause_start: dict[str, float] = {}
    for number, kind, at, clerk in log:
        if kind == "pause":
            pause_start[number] = ts(at)
        elif kind == "resume":
            secs = ts(at) - pause_start.pop(number)
            for g in (("hall", "t"), ("window", number), ("clerk", clerk)):
                out[g]["pause"].append(secs)
    return out


def approx(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture
def day(hall: HallClient, clock: FakeClock, db_url: str) -> dict[str, Any]:
    run_day(hall, clock)
    r = hall.req("GET", f"/api/v1/halls/t/reports/daily?day={DAY}", "boss")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_daily_figures_equal_a_recomputation_from_raw_events(day: dict[str, Any], db_url: str) -> None:
    raw = recompute(db_url)
    rows = {(r["level"], r["key"]): r for r in day["rows"]}
    assert set(rows) >= {("hall", "t"), ("queue", "biz"), ("queue", "soc"), ("queue", "out"), ("window", "1"),
                         ("window", "2"), ("window", "3"), ("clerk", "clerk1"), ("clerk", "clerk2"), ("clerk", "clerk3")}
    assert rows[("hall", "t")]["issued"] >= 40 and rows[("hall", "t")]["no_shows"] >= 1
    assert rows[("hall", "t")]["bad"] >= 1 and rows[("hall", "t")]["unrated"] >= 1
    checked = 0
    for key, row in rows.items():
        f = raw[key]
        mean = lambda xs: sum(xs) / len(xs) / 60 if xs else None  # noqa: E731
        expect = {
            "served": len(f["handlings"]), "finished": len(f["finished"]), "no_shows": len(f["no_shows"]),
            "instant_share": (sum(f["instant"]) / len(f["instant"])) if f["instant"] else None,
            "wait_mean_min": mean(f["waits"]),
            "wait_p90_min": p90(f["waits"]) / 60 if f["waits"] else None,
            "handle_mean_min": mean(f["handlings"]),
            "handle_p90_min": p90(f["handlings"]) / 60 if f["handlings"] else None,
            "service_level": sum(f["within"]) / len(f["within"]) if f["within"] else None,
            "rated": sum(g is not None for g in f["grades"]),
            "good": sum(g is not None and g >= 4 for g in f["grades"]),
            "bad": sum(g is not None and g <= 2 for g in f["grades"]),
            "unrated": sum(g is None for g in f["grades"]),
        }
        rated = expect["rated"]
        expect["satisfaction_rate"] = expect["good"] / rated if rated else None
        if key[0] in ("hall", "queue"):
            expect["issued"] = len(f["issued"])
            expect["cancelled"] = len(f["cancelled"])
        if key[0] in ("hall", "window", "clerk"):
            expect["pause_min"] = sum(f["pause"]) / 60
        for name, value in expect.items():
            assert approx(row[name], value), (key, name, row[name], value)
            checked += 1
    assert checked > 150
    assert rows[("window", "2")]["pause_min"] == 15.0 and rows[("clerk", "clerk2")]["name"] == "李芳"


def test_monthly_report_adds_up_the_days(hall: HallClient, day: dict[str, Any]) -> None:
    month = hall.req("GET", "/api/v1/halls/t/reports/monthly?month=2026-11", "boss").get_json()
    top_d, top_m = day["rows"][0], month["rows"][0]
    for name in ("issued", "served", "no_shows", "wait_mean_min", "wait_p90_min", "rated", "bad", "pause_min"):
        assert top_m[name] == top_d[name], name
    days = [r for r in month["rows"] if r["level"] == "day"]
    assert [d["key"] for d in days] == [DAY] and days[0]["served"] == top_d["served"]
    other = hall.req("GET", "/api/v1/halls/t/reports/monthly?month=2026-10", "boss").get_json()
    assert other["rows"][0]["issued"] == 0 and other["rows"][0]["satisfaction_rate"] is None
    bad = hall.req("GET", "/api/v1/halls/t/reports/monthly?month=2026-13", "boss")
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_month"
    assert hall.req("GET", "/api/v1/halls/t/reports/daily", "clerk1").status_code == 403


def test_csv_and_xlsx_carry_the_same_figures(hall: HallClient, day: dict[str, Any]) -> None:
    from openpyxl import load_workbook

    r = hall.req("GET", f"/api/v1/halls/t/reports/daily?day={DAY}&format=csv", "boss")
    assert r.status_code == 200 and r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    text = r.data.decode("utf-8")
    assert text.startswith("\ufeff")  # Excel on Chinese Windows needs the BOM
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header = rows[0]
    assert header[:5] == ["维度", "编号", "名称", "取号数", "服务人次"] and "满意率 %" in header
    hall_row = dict(zip(header, rows[1]))
    top = day["rows"][0]
    assert int(hall_row["取号数"]) == top["issued"] and int(hall_row["服务人次"]) == top["served"]
    assert float(hall_row["满意率 %"]) == round(top["satisfaction_rate"] * 100, 1)

    x = hall.req("GET", f"/api/v1/halls/t/reports/daily?day={DAY}&format=xlsx", "boss")
    assert x.status_code == 200 and x.data[:2] == b"PK"
    ws = load_workbook(io.BytesIO(x.data)).active
    assert "日报 2026-11-20" in ws["A1"].value
    assert [c.value for c in ws[3]] == header
    assert [c.value for c in ws[4]][3:5] == [top["issued"], top["served"]]
    assert ws.max_row == 3 + len(day["rows"])

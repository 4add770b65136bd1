"""What SQLAlchemy's execution layer costs per statement on the call path, against psycopg alone.

    .venv/bin/python -m bench.statement_cost             # PostgreSQL database bench_statement_cost

The statements are the service's own, built as it builds them (the window's lock with its ticket, as
start and finish run it; the candidates of a window serving three queues, as call-next runs it): each
is run on one connection, in the process, through ``Connection.execute`` and then as the same SQL text
on the raw psycopg cursor (prepared), and the CPU per execution is printed. What a rewrite of the call
path without SQLAlchemy's execution layer would save per statement (docs/benchmarks.md, eleventh round).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .config import CLERKS, HALL
from .server import fresh_database, prepare

ROUNDS, N = 3, 2000


def _cpu_us(fn: Callable[[], object], n: int = N) -> float:
    for _ in range(n // 10):
        fn()
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    from hall_server.app import create_app

    from .config import bench_config

    url = fresh_database("postgres", Path(tempfile.mkdtemp(prefix="bench-statement-cost-")), "bench_statement_cost")
    prepare(url)
    app, _ = create_app(bench_config(url), database_url=url, redis_url="", secret=b"statement-cost")
    svc, db = app.extensions["hall"]["service"], app.extensions["hall"]["db"]
    hall = svc.hall(HALL)
    window = next(w for w in hall.windows if len(hall.window_queues(w.number)) == 3)
    queues = tuple(hall.window_queues(window.number))
    for i in range(40):  # tickets waiting in the window's queues, and one called to the window
        svc.issue(hall.id, request_id=f"statement-cost-{i}", channel="kiosk", queue=queues[i % len(queues)])
    svc.sign_in(hall.id, window.number, CLERKS[0])
    svc.call_next(hall.id, window.number)
    with db.write() as s:  # let the service build its statements once
        svc._lock_window_and_ticket(s, hall, window.number)
        s.rollback()
    cases: list[tuple[str, Any, dict[str, object]]] = [
        ("window and ticket lock (start, finish)", svc._statements["lock_window_ticket"],
         {"hall_id": hall.id, "number": window.number}),
        (f"candidates, {len(queues)} queues (call-next)", svc._statements[("candidates", queues, False)],
         {"hall_id": hall.id, "window": window.number, "now": time.time(), "limit": 4, "exclude": []}),
    ]
    print(f"CPU per execution, µs (one connection, in the process; best of {ROUNDS} rounds of {N})")
    print("| statement | rows | SQLAlchemy Core | psycopg alone | difference |\n|---|---:|---:|---:|---:|")
    for name, stmt, params in cases:
        compiled = stmt.compile(dialect=db.engine.dialect)
        raw_params = compiled.construct_params(params)
        core, raw = [], []
        for _ in range(ROUNDS):
            with db.engine.connect() as conn:
                cur = conn.connection.driver_connection.cursor()
                raw_rows = cur.execute(compiled.string, raw_params, prepare=True).fetchall()
                assert [tuple(r) for r in conn.execute(stmt, params)] == raw_rows, f"{name}: the two ways differ"
                rows = len(raw_rows)
                core.append(_cpu_us(lambda: conn.execute(stmt, params).all()))
                raw.append(_cpu_us(lambda: (cur.execute(compiled.string, raw_params, prepare=True), cur.fetchall())))
                conn.rollback()
        print(f"| {name} | {rows} | {min(core):.0f} | {min(raw):.0f} | {min(core) - min(raw):.0f} |")
    db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""PostgreSQL under gevent: the server's connections wait for PostgreSQL on gevent's loop
(``hall_server.pg_wait``), and every kind of wait still works: answers, big results and parameters
(several reads and writes), errors, a wait with a deadline, and other greenlets running meanwhile."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import PG_URL, ROOT, pg_available

pytestmark = pytest.mark.skipif(not pg_available(), reason="PostgreSQL not reachable")

SCRIPT = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import json, sys, time
    import gevent
    import sqlalchemy as sa
    from hall_server.db import make_engine

    engine = make_engine(sys.argv[1], pool_size=30)
    out = {}
    with engine.connect() as c:
        out["connection"] = type(c.connection.driver_connection).__name__

    # another greenlet keeps running while a statement waits for PostgreSQL
    ticks = []
    def tick():
        while True:
            gevent.sleep(0.01); ticks.append(time.monotonic())
    ticker = gevent.spawn(tick)
    with engine.connect() as c:
        t0 = time.monotonic(); c.execute(sa.text("SELECT pg_sleep(0.3)")); t1 = time.monotonic()
    ticker.kill()
    out["ticks_during_sleep"] = sum(1 for t in ticks if t0 < t < t1)

    # many greenlets, each on its own connection, each gets its own answers
    def work(g):
        with engine.connect() as c:
            return [c.execute(sa.text("SELECT :g * 1000 + :k"), {"g": g, "k": k}).scalar() for k in range(20)]
    jobs = [gevent.spawn(work, g) for g in range(20)]
    gevent.joinall(jobs, timeout=60, raise_error=True)
    out["answers_right"] = all(j.value == [g * 1000 + k for k in range(20)] for g, j in enumerate(jobs))

    # a 48 MB parameter (the send waits for the socket to drain) and a long result (several reads)
    big = "汉" * (16 << 20)
    with engine.connect() as c:
        out["big_echo"] = c.execute(sa.text("SELECT length(:s || repeat('x', 4194304))"), {"s": big}).scalar()
    out["big_expected"] = len(big) + 4194304

    # an error reaches the caller, and the pool's next connection works
    try:
        with engine.connect() as c:
            c.execute(sa.text("SELECT no_such_column FROM pg_class"))
        out["error"] = None
    except sa.exc.ProgrammingError as exc:
        out["error"] = type(exc.orig).__name__
    with engine.connect() as c:
        out["after_error"] = c.execute(sa.text("SELECT 7")).scalar()

    # a wait with a deadline (psycopg's own wait): no notification comes, so it returns at the deadline
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        pg.autocommit = True
        pg.execute("LISTEN hall_pg_wait_test")
        t0 = time.monotonic()
        got = list(pg.notifies(timeout=0.2))
        out["notifies"] = len(got); out["notifies_s"] = time.monotonic() - t0
    finally:
        raw.close()
    print(json.dumps(out))
""")


def test_connections_wait_on_gevents_loop_and_every_kind_of_wait_works() -> None:
    res = subprocess.run([sys.executable, "-c", SCRIPT, PG_URL], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["connection"] == "GeventConnection"
    assert out["ticks_during_sleep"] >= 10, out  # ~30 with a cooperative wait, none with a blocking one
    assert out["answers_right"]
    assert out["big_echo"] == out["big_expected"]
    assert out["error"] == "UndefinedColumn"
    assert out["after_error"] == 7
    assert out["notifies"] == 0 and 0.15 <= out["notifies_s"] < 2.0, out

"""Where a latency tail comes from: diagnostics for the server under test (gunicorn's gevent worker),
switched on by ``BENCH_DIAG=<file>`` in the environment of any benchmark.

Recorded in the server process, written to the file as JSON when the worker exits:

* per request: its time in the WSGI app and, of that, its time in the database (SQLAlchemy's cursor
  events, plus the one-message commit of event-writing transactions);
* per statement: how long it took, from send to result, as the request saw it;
* the garbage collector's pauses, by generation;
* event-loop stalls: a greenlet wakes every millisecond and a native thread watches its heartbeat;
  when the loop has not come round for ``STALL_MS``, it records the main thread's stack and how much of
  the stall that thread spent on a CPU and waiting for one (``/proc/.../schedstat``).

``BENCH_RECORDS=<file>`` makes the core benchmark write every paced or saturated call-next with its
client-side times (sending, sent, answer received, event received). Then::

    .venv/bin/python -m bench.lag /tmp/diag.json [--last 21] [--calls /tmp/calls.json]

prints the summary; with ``--calls`` it also splits each call-next into client send, waiting before
the server picked it up, time in the app, and the way back. The heartbeat and the watcher cost ~1 % of
a core: for finding tails, not for recorded figures.
"""
from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import statistics
import sys
import time
import traceback
from collections import Counter
from typing import Any, Callable, Iterable

STALL_MS = 8.0


def install(app: Any, path: str) -> None:
    import gevent
    from gevent.monkey import get_original
    from greenlet import getcurrent
    from sqlalchemy import event

    start_new_thread = get_original("_thread", "start_new_thread")  # a real OS thread, not a greenlet
    native_sleep = get_original("time", "sleep")
    main_ident = get_original("_thread", "get_ident")()
    requests: list[tuple[str, float, float, float, int]] = []  # path, start, end, s in the database, statements
    statements: list[tuple[str, float, float]] = []  # sql (start), when, seconds
    stalls: list[tuple[float, float, str, float, float]] = []  # when, ms late, stack, ms on CPU, ms waiting for one
    in_db: dict[int, list[float]] = {}  # greenlet -> [seconds, statements] of the request it serves

    # ---- the event loop's heartbeat and its watcher ----
    beat = [time.perf_counter()]
    schedstat_path = f"/proc/self/task/{os.getpid()}/schedstat"  # the main thread: ns on CPU, ns runnable

    def schedstat() -> tuple[int, int]:
        with open(schedstat_path) as f:
            on_cpu, waiting, _ = f.read().split()
        return int(on_cpu), int(waiting)

    def heartbeat() -> None:
        while True:
            beat[0] = time.perf_counter()
            gevent.sleep(0.001)

    def watch() -> None:
        reported = 0.0
        base = (beat[0], schedstat())
        while True:
            native_sleep(0.002)
            last, now = beat[0], schedstat()
            late = (time.perf_counter() - last) * 1000
            if late < STALL_MS:
                base = (last, now)  # the loop is coming round: a stall would start from here
                continue
            if last != reported:
                reported = last
                frame = sys._current_frames().get(main_ident)
                lines = traceback.format_stack(frame, limit=25) if frame is not None else []
                stack = "".join(ln for ln in lines if "site-packages/gevent" not in ln)[-3000:]
                stalls.append((last, late, stack, (now[0] - base[1][0]) / 1e6, (now[1] - base[1][1]) / 1e6))

    gevent.spawn(heartbeat)
    start_new_thread(watch, ())

    # ---- the garbage collector's pauses (nothing else runs meanwhile) ----
    collections: list[tuple[float, int, float]] = []  # when, generation, ms
    gc_t0 = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            collections.append((gc_t0[0], info["generation"], (time.perf_counter() - gc_t0[0]) * 1000))

    gc.callbacks.append(on_gc)

    # ---- time in the database ----
    def count(sql: str, t0: float) -> None:
        took = time.perf_counter() - t0
        statements.append((sql, t0, took))
        acc = in_db.get(id(getcurrent()))
        if acc is not None:
            acc[0] += took
            acc[1] += 1

    def before(conn: Any, *_: Any) -> None:
        conn.info["diag_t0"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        count(" ".join(sql.split())[:70], conn.info.pop("diag_t0", time.perf_counter()))

    hall = app.extensions["hall"]
    event.listen(hall["db"].engine, "before_cursor_execute", before)
    event.listen(hall["db"].engine, "after_cursor_execute", after)
    service = hall["service"]
    commit_events = service._commit_events  # PostgreSQL: bypasses the cursor events

    def timed_commit(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return commit_events(*a, **kw)
        finally:
            count("(hall lock + events + COMMIT, one message)", t0)

    service._commit_events = timed_commit
    from hall_server.pg_raw import RawStatement  # PostgreSQL's call path: psycopg directly, no cursor events

    raw_rows = RawStatement.rows

    def timed_rows(self: RawStatement, *a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return raw_rows(self, *a, **kw)
        finally:
            count(" ".join(self.sql.split())[:70], t0)

    RawStatement.rows = timed_rows  # type: ignore[method-assign]

    # ---- time in the app ----
    inner = app.wsgi_app

    def timed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        t0 = time.perf_counter()
        key = id(getcurrent())
        in_db[key] = [0.0, 0]
        try:
            return list(inner(environ, start_response))
        finally:
            db_s, n = in_db.pop(key)
            requests.append((environ.get("PATH_INFO", ""), t0, time.perf_counter(), db_s, int(n)))

    app.wsgi_app = timed

    # ---- statements prepared (a PREPARE is a round trip more, and the server plans the statement) ----
    from psycopg._cursor_base import BaseCursor

    prepares: list[tuple[float, str]] = []  # when, sql (start)
    send_prepare = BaseCursor._send_prepare

    def counted_prepare(self: Any, name: bytes, query: Any, *a: Any, **kw: Any) -> Any:
        prepares.append((time.perf_counter(), " ".join(bytes(query.query).decode(errors="replace").split())[:70]))
        return send_prepare(self, name, query, *a, **kw)

    BaseCursor._send_prepare = counted_prepare  # type: ignore[method-assign]

    def dump() -> None:
        with open(path, "w") as f:
            json.dump({"requests": requests, "stalls": stalls, "statements": statements, "gc": collections,
                       "prepares": prepares}, f)

    atexit.register(dump)


def install_if_asked(app: Any) -> None:
    """What every benchmark's server factory calls: the diagnostics when ``BENCH_DIAG`` is set."""
    path = os.environ.get("BENCH_DIAG")
    if not path:
        return
    from hall_server.offload import under_gevent

    if not under_gevent():
        raise SystemExit("BENCH_DIAG needs the server under gunicorn's gevent worker (--server gevent)")
    install(app, path)


def production_app():  # type: ignore[no-untyped-def]
    """gunicorn factory ``'bench.lag:production_app()'``: ``hall_server.wsgi:app()`` with the diagnostics
    (bench.server.server_command uses it when BENCH_DIAG is set)."""
    from hall_server.wsgi import app

    flask_app = app()
    install_if_asked(flask_app)
    return flask_app


# ---- reading a diagnostics file ----------------------------------------------------------------------
def _p(v: list[float], q: float) -> float:
    return v[min(len(v) - 1, int(len(v) * q))]


def report(path: str, last_s: float = 0.0, calls: str | None = None) -> str:
    """A text summary of a diagnostics file (only its last ``last_s`` seconds if given)."""
    with open(path) as f:
        d = json.load(f)
    since = max(r[2] for r in d["requests"]) - last_s if last_s else 0.0
    out = ["requests (ms): time in the app, and of it in the database"]
    by: dict[str, list[tuple[float, float, int]]] = {}
    for p, t0, t1, db_s, n in d["requests"]:
        if t0 >= since:
            kind = p.rsplit("/", 1)[-1] if "/windows/" in p or p.endswith("/tickets") else p
            by.setdefault(kind, []).append(((t1 - t0) * 1000, db_s * 1000, n))
    for kind, rows in sorted(by.items(), key=lambda kv: -len(kv[1])):
        v = sorted(r[0] for r in rows)
        out.append(f"  {kind:>22}: n={len(v)} p50={_p(v, .5):.1f} p90={_p(v, .9):.1f} p99={_p(v, .99):.1f} "
                   f"max={v[-1]:.1f}; database {sum(r[1] for r in rows) / len(v):.1f} ms in "
                   f"{sum(r[2] for r in rows) / len(v):.1f} statements on average")
    per_sql: dict[str, list[float]] = {}
    for sql, t0, took in d["statements"]:
        if t0 >= since:
            per_sql.setdefault(sql, []).append(took * 1000)
    out.append("statements, by total time (ms)")
    for sql, v in sorted(per_sql.items(), key=lambda kv: -sum(kv[1]))[:12]:
        v.sort()
        out.append(f"  total {sum(v) / 1000:6.2f} s  n={len(v):5}  p50={_p(v, .5):5.2f}  p99={_p(v, .99):6.2f}  {sql}")
    prepared = Counter(sql for t0, sql in d.get("prepares", []) if t0 >= since)
    out.append(f"statements prepared (PREPARE: a round trip more, and the server plans it): "
               f"{sum(prepared.values())}")
    for sql, n in prepared.most_common(5):
        out.append(f"  {n:5}  {sql}")
    for gen in (0, 1, 2):
        v = sorted(ms for t0, g, ms in d.get("gc", []) if g == gen and t0 >= since)
        if v:
            out.append(f"garbage collections of generation {gen}: {len(v)}, p50 {_p(v, .5):.2f} ms, "
                       f"max {v[-1]:.1f} ms, {sum(v):.0f} ms in all")
    stalls = [s for s in d["stalls"] if s[0] >= since]
    out.append(f"event-loop stalls >= {STALL_MS:g} ms: {len(stalls)}; worst "
               f"{sorted(round(s[1], 1) for s in stalls)[-8:]}")
    if stalls:
        out.append(f"  during a stall the main thread was on a CPU {statistics.mean(s[3] for s in stalls):.1f} ms "
                   f"and waiting for one {statistics.mean(s[4] for s in stalls):.1f} ms on average")
        for stack, n in Counter(s[2] for s in stalls).most_common(6):
            out.append(f"  --- {n}x, main thread was in:\n{stack}")
    if calls:
        out.append(split_calls(d, calls))
    return "\n".join(out)


def split_calls(d: dict[str, Any], calls_path: str) -> str:
    """Each call-next of BENCH_RECORDS matched with its request in the server."""
    with open(calls_path) as f:
        calls = json.load(f)
    served = [(p.split("/windows/")[1].split("/")[0], t0, t1) for p, t0, t1, *_ in d["requests"]
              if p.endswith("/call-next")]
    rows = []
    for window, _ticket, sending, answered, sent, _event in calls:
        match = [(t0, t1) for w, t0, t1 in served if w == window and sending <= t0 <= answered]
        if match:
            t0, t1 = match[0]
            rows.append((answered - sending, sent - sending, t0 - sent, t1 - t0, answered - t1))
    if not rows:
        return "no call-next of the records found in the diagnostics"
    rows.sort()
    head = "  total | client sends | waits before the app | in the app | way back   (ms)"
    lines = [f"call-next split ({len(rows)} calls): median, then the slowest 10", head,
             "  " + " | ".join(f"{statistics.median(r[i] for r in rows) * 1000:6.1f}" for i in range(5))]
    lines += ["  " + " | ".join(f"{x * 1000:6.1f}" for x in r) for r in rows[-10:]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.lag", description=__doc__.split("\n\n")[0])
    ap.add_argument("diag", help="the BENCH_DIAG file")
    ap.add_argument("--last", type=float, default=0.0, help="only the last N seconds (e.g. the paced phase)")
    ap.add_argument("--calls", help="the BENCH_RECORDS file of the same run")
    args = ap.parse_args()
    print(report(args.diag, args.last, args.calls))


if __name__ == "__main__":
    main()

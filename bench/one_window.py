"""One window alone: the latency and the server CPU of each window action, with nothing else running.

    .venv/bin/python -m bench.one_window                    # PostgreSQL and SQLite, gevent (production)
    .venv/bin/python -m bench.one_window --db postgres --cycles 300

The real server runs as in ``python -m bench`` (gunicorn's gevent worker). One clerk calls, starts and
finishes tickets on one keep-alive connection, a request every ``--gap`` ms, so requests never overlap:
the CPU a request costs is read from the worker's ``/proc/<pid>/schedstat`` (nanoseconds on a CPU)
before it and 2 ms after its answer (the events it publishes included). The paced benchmark's tails are
these costs colliding (docs/benchmarks.md, ninth round); this tells what one request costs by itself.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .config import HALL, QUEUES
from .load import Client, sign_in_all, summary_ms
from .server import Server, fresh_database, prepare

ACTIONS = (("call-next", None), ("start", None), ("finish", {"outcome": "instant"}))
WARM_UP = 20  # cycles left out: the first requests prepare statements and import lazily


def _cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def _post(c: Client, path: str, body: dict[str, object] | None, expect: int) -> None:
    status, answer = c.post(path, body)
    if status != expect:
        raise RuntimeError(f"{path}: {status} {answer}")


def measure(kind: str, cycles: int, gap_s: float) -> dict[str, tuple[list[float], list[float]]]:
    work = Path(tempfile.mkdtemp(prefix="bench-one-window-"))
    url = fresh_database(kind, work)
    tokens = prepare(url)
    with Server("gevent", url, work) as srv:
        sign_in_all(srv.base, HALL, tokens.clerks)
        pid = srv.worker_pid()
        kiosk = Client(srv.base, tokens.kiosks[0])
        for i in range(len(QUEUES) * (cycles + WARM_UP + 10)):  # window 1 serves some of the queues
            _post(kiosk, f"/api/v1/halls/{HALL}/tickets",
                  {"request_id": f"one-window-{i:06d}", "channel": "kiosk", "queue": QUEUES[i % len(QUEUES)][0]}, 201)
        clerk = Client(srv.base, tokens.clerks["1"])
        prefix = f"/api/v1/halls/{HALL}/windows/1"
        out: dict[str, tuple[list[float], list[float]]] = {a: ([], []) for a, _ in ACTIONS}
        for cycle in range(cycles + WARM_UP):
            for action, body in ACTIONS:
                time.sleep(gap_s)
                cpu0, t0 = _cpu_ns(pid), time.perf_counter()
                _post(clerk, f"{prefix}/{action}", body, 200)
                t1 = time.perf_counter()
                time.sleep(0.002)
                cpu1 = _cpu_ns(pid)
                if cycle >= WARM_UP:  # seconds
                    out[action][0].append(t1 - t0)
                    out[action][1].append((cpu1 - cpu0) / 1e9)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.one_window", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--cycles", type=int, default=200, help="measured call-next/start/finish cycles (default 200)")
    ap.add_argument("--gap", type=float, default=17.0, help="ms between requests (default 17: 20 windows' rate)")
    args = ap.parse_args()
    print("| DB | action | latency p50 / p90 ms | server CPU p50 / p90 ms |\n|---|---|---:|---:|")
    for kind in (["postgres", "sqlite"] if args.db == "both" else [args.db]):
        for action, (lat, cpu) in measure(kind, args.cycles, args.gap / 1000).items():
            lat_ms, cpu_ms = summary_ms(lat), summary_ms(cpu)
            print(f"| {kind} | {action} | {lat_ms['p50']:.2f} / {lat_ms['p90']:.2f} "
                  f"| {cpu_ms['p50']:.2f} / {cpu_ms['p90']:.2f} |")


if __name__ == "__main__":
    main()

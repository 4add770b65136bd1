"""``python -m bench``: start the real server per (database, server stack) and measure.

    .venv/bin/python -m bench                 # full run: sqlite+postgres × werkzeug+gunicorn (< 10 min)
    .venv/bin/python -m bench --quick         # smaller counts (< 2 min)
    .venv/bin/python -m bench --db postgres --server gunicorn --profile
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import load
from .config import HALL, QUEUES
from .server import ROOT, PgCpu, Server, fresh_database, prepare


def python_loop_seconds(tries: int = 3) -> float:
    """A fixed pure-Python loop, recorded with the results: the CPU time of every request moves with the
    machine's speed, which varies between sessions on the same machine kind and, on a shared host, from
    one minute to the next (docs/benchmarks.md). The best of ``tries`` runs."""
    best = float("inf")
    for _ in range(tries):
        t0, acc = time.perf_counter(), 0
        for i in range(10_000_000):
            acc += i
        best = min(best, time.perf_counter() - t0)
    return best


def steal_seconds() -> float:
    """CPU time the hypervisor took from this virtual machine's CPUs since boot (/proc/stat ``steal``):
    a shared host's other guests, invisible to every other figure here."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def loopback_round_trip_us(n: int = 5000) -> float:
    """A 1-byte TCP ping-pong between two threads over localhost: what every request and every database
    statement pays in system calls and wake-ups, which the Python loop above does not see (in the fourth
    round the loop ran in 0.56–0.71 s while an empty endpoint cost 1.6 times what an earlier session
    measured, docs/benchmarks.md)."""
    import socket
    import threading

    best = float("inf")
    for _ in range(3):
        with socket.create_server(("127.0.0.1", 0)) as server:
            def echo() -> None:
                conn, _ = server.accept()
                with conn:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    while data := conn.recv(1):
                        conn.sendall(data)

            t = threading.Thread(target=echo, daemon=True)
            t.start()
            with socket.create_connection(server.getsockname()) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t0 = time.perf_counter()
                for _ in range(n):
                    c.sendall(b"x")
                    c.recv(1)
                best = min(best, (time.perf_counter() - t0) / n * 1e6)
            t.join(timeout=5)
    return best


def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("model name")), "?")
    except OSError:
        info["cpu"] = platform.processor() or "?"
    info["cores"] = str(os.cpu_count())
    try:
        kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")))
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        info["memory"] = "?"
    info["os"] = platform.platform()
    info["python"] = platform.python_version()
    info["cpu_speed"] = (f"{python_loop_seconds():.2f} s for 10M Python additions, "
                         f"{loopback_round_trip_us():.0f} µs per localhost TCP round trip (best of 3; lower is faster)")
    info["sqlite"] = sqlite3.sqlite_version
    try:
        import sqlalchemy as sa

        from .server import PG_ADMIN_URL
        e = sa.create_engine(PG_ADMIN_URL)
        with e.connect() as c:
            info["postgresql"] = c.execute(sa.text("SHOW server_version")).scalar() or "?"
        e.dispose()
    except Exception as exc:  # noqa: BLE001
        info["postgresql"] = f"unreachable ({type(exc).__name__})"
    vers = []
    for mod in ("flask", "flask_socketio", "socketio", "engineio", "simple_websocket", "werkzeug", "gunicorn",
                "sqlalchemy", "psycopg"):
        try:
            from importlib.metadata import version
            vers.append(f"{mod} {version(mod.replace('_', '-'))}")
        except Exception:  # noqa: BLE001
            pass
    info["packages"] = ", ".join(vers)
    info["date"] = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001
        info["commit"] = "?"
    return info


def run_one(db: str, stack: str, args: argparse.Namespace, workdir: Path, profile_dir: Path | None) -> dict:
    t_begin = time.perf_counter()
    url = fresh_database(db, workdir)
    tokens = prepare(url)
    queues = [q[0] for q in QUEUES]
    res: dict = {"db": db, "server": stack, "loadavg_before": Path("/proc/loadavg").read_text().split()[0]}
    # the machine's speed at the start and after each phase: one run's figures are comparable with another's
    # only if the machine ran at the same speed (on a shared host it swings by half within minutes)
    res["speed_s"] = [python_loop_seconds(1)]
    steal0 = steal_seconds()
    if args.workers > 1 and (db == "sqlite" or not args.redis or stack == "werkzeug"):
        raise SystemExit("--workers > 1 needs PostgreSQL, gunicorn and --redis (the processes share events through it)")
    server = Server(stack, url, workdir, threads=args.threads, workers=args.workers)
    if args.redis:
        os.environ["BENCH_REDIS_URL"] = args.redis
    if args.experiment:
        os.environ["BENCH_EXPERIMENT"] = args.experiment
        res["experiment"] = args.experiment
    with server:
        probe = server.cpu
        dbcpu = PgCpu(url)
        load.warm_up(server.base, HALL, tokens.kiosks[0], queues)
        load.sign_in_all(server.base, HALL, tokens.clerks)
        prof = None
        if profile_dir is not None and "issue" in args.profile_phases:
            from .profile import Profiler
            prof = Profiler(server.worker_pid(), profile_dir / f"issue-{db}-{stack}.txt")
        tp = load.issue_throughput(server.base, HALL, tokens.kiosks, queues, args.tickets, args.issue_procs,
                                   args.issue_threads, probe, dbcpu)
        if prof is not None:
            res["profile_issue"] = prof.stop()
        res["throughput"] = dataclasses.asdict(tp)
        res["speed_s"].append(python_loop_seconds(1))
        print(f"  [{db}/{stack}] issue: {tp.tickets} tickets in {tp.seconds:.2f} s = {tp.per_second:.0f}/s "
              f"(p50 {tp.latency_ms.get('p50', 0):.1f} ms, p99 {tp.latency_ms.get('p99', 0):.1f} ms; "
              f"server CPU {tp.server_cpu_s / tp.seconds:.0%} of a core = {1000 * tp.server_cpu_s / max(1, tp.tickets):.2f} ms per ticket, client CPU {tp.client_cpu_s / tp.seconds:.0%}, "
              f"PostgreSQL {tp.db_cpu_s / tp.seconds:.0%}, machine {tp.machine_busy:.0%} busy, other processes {tp.other_cores:.1f} cores) errors={tp.errors}", flush=True)
        listener = load.Listener(server.base, HALL)
        try:
            load.call_latency(server.base, HALL, tokens.clerks, 1, None, probe, listener, dbcpu)  # warm-up, discarded
            prof = None
            if profile_dir is not None and "calls" in args.profile_phases:
                from .profile import Profiler
                prof = Profiler(server.worker_pid(), profile_dir / f"calls-{db}-{stack}.txt")
            runs = [("saturated", load.call_latency(server.base, HALL, tokens.clerks, args.cycles, None, probe, listener, dbcpu))]
            if prof is not None:
                res["profile_calls"] = prof.stop()
            if args.paced_cycles:
                prof = None
                if profile_dir is not None and "paced" in args.profile_phases:
                    from .profile import Profiler
                    prof = Profiler(server.worker_pid(), profile_dir / f"paced-{db}-{stack}.txt")
                runs.append(("paced", load.call_latency(server.base, HALL, tokens.clerks, args.paced_cycles,
                                                        args.period, probe, listener, dbcpu)))
                if prof is not None:
                    res["profile_paced"] = prof.stop()
        finally:
            listener.close()
        for name, c in runs:
            res[name] = dataclasses.asdict(c)
            print(f"  [{db}/{stack}] call-next {c.mode}: {c.calls} calls in {c.seconds:.1f} s, "
                  f"call-next p50 {c.call_next_ms.get('p50', 0):.1f} / p99 {p99(c.call_next_ms)} ms, "
                  f"event p50 {c.event_ms.get('p50', 0):.1f} / p99 {p99(c.event_ms)} ms "
                  f"(missing {c.events_missing}, {c.transport}); server CPU {c.server_cpu_s / c.seconds:.0%}, "
                  f"client CPU {c.client_cpu_s / c.seconds:.0%}, PostgreSQL {c.db_cpu_s / c.seconds:.0%}, other processes {c.other_cores:.1f} cores; errors={c.errors}", flush=True)
    res["speed_s"].append(python_loop_seconds(1))
    res["steal_s"] = steal_seconds() - steal0
    print(f"  [{db}/{stack}] machine speed: 10M Python additions took "
          + " / ".join(f"{v:.2f}" for v in res["speed_s"]) + " s (start / after issue / after calls); "
          f"the host took {res['steal_s']:.1f} s of CPU from this machine during the run (steal)", flush=True)
    res["wall_s"] = time.perf_counter() - t_begin
    return res


def f(v: float | None, nd: int = 1) -> str:
    return "–" if v is None or v != v else f"{v:.{nd}f}"


def p99(summary: dict[str, float]) -> str:
    """A p99 with its 95 % interval (``bench.load.pct_interval``): how far another run may put it."""
    if "p99_low" not in summary:
        return f(summary.get("p99"))
    return f"{f(summary['p99'])} ({f(summary['p99_low'], 0)}–{f(summary['p99_high'], 0)})"


def table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"Issue: {args.tickets} tickets from {args.issue_procs}×{args.issue_threads} concurrent kiosk connections. "
        f"Calls: {len(load_windows())} windows, call-next → start → finish; saturated = back to back "
        f"({args.cycles} cycles/window), paced = one cycle per window every {args.period:g} s ± 20% "
        f"({args.paced_cycles} cycles/window). Event = call-next sent → `ticket`/`called` at a Socket.IO listener. "
        "DB CPU = PostgreSQL processes, in cores (SQLite runs inside the server). Other load = CPU used by "
        "everything else on the machine (other users' jobs), in cores (issue / saturated calls). Paced p99s carry "
        "their 95 % interval in brackets (from the order statistics: where another run of the same code may put "
        "them). Speed = seconds "
        "for 10M Python additions at the start, after the issue phase and after the calls (lower is faster); "
        "steal = CPU seconds the hypervisor took from this virtual machine during the run.",
        "",
        "| DB | server | tickets/s | issue p50 / p99 ms | server / DB CPU (issue) | call-next p50 / p99 ms (saturated) "
        "| event p50 / p99 ms (saturated) | call-next p50 / p99 ms (paced) | event p50 / p99 ms (paced) | other load (cores) | speed (s) | steal (s) | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        tp, sa, pa = r["throughput"], r["saturated"], r.get("paced")
        errs = {**tp["errors"], **sa["errors"], **((pa or {}).get("errors") or {})}
        miss = sa["events_missing"] + ((pa or {}).get("events_missing") or 0)
        lines.append(
            f"| {r['db']} | {r['server']}{' + ' + r['experiment'] if r.get('experiment') else ''} | {tp['per_second']:.0f} | {f(tp['latency_ms'].get('p50'))} / "
            f"{f(tp['latency_ms'].get('p99'))} | {tp['server_cpu_s'] / tp['seconds']:.2f} / {tp.get('db_cpu_s', 0) / tp['seconds']:.2f} | "
            f"{f(sa['call_next_ms'].get('p50'))} / {f(sa['call_next_ms'].get('p99'))} | "
            f"{f(sa['event_ms'].get('p50'))} / {f(sa['event_ms'].get('p99'))} | "
            + (f"{f(pa['call_next_ms'].get('p50'))} / {p99(pa['call_next_ms'])} | "
               f"{f(pa['event_ms'].get('p50'))} / {p99(pa['event_ms'])} | " if pa else "– | – | ")
            + f"{tp['other_cores']:.1f} / {sa['other_cores']:.1f} | "
            + (" / ".join(f"{v:.2f}" for v in r["speed_s"]) if r.get("speed_s") else "–") + " | "
            + (f"{r['steal_s']:.1f}" if "steal_s" in r else "–") + " | "
            + (", ".join(f"{k}: {v}" for k, v in errs.items()) or "none")
            + (f"; {miss} events missing" if miss else "") + " |")
    return "\n".join(lines)


def load_windows() -> list[str]:
    from .config import CLERKS
    return CLERKS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts; finishes in under two minutes")
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--server", choices=["werkzeug", "gunicorn", "gevent", "both", "all"], default="both",
                    help="werkzeug = what `hall serve` runs (socketio.run, threaded); "
                         "gevent = gunicorn -w 1 -k gevent_pywsgi, the production stack (hall_server.wsgi); "
                         "gunicorn = gunicorn -w 1 -k gthread --threads N; both = werkzeug + gevent; all = the three")
    ap.add_argument("--threads", type=int, default=32, help="gunicorn threads (default 32)")
    ap.add_argument("--tickets", type=int, help="tickets to issue (default 3000, quick 500)")
    ap.add_argument("--issue-procs", type=int, default=2, help="client processes issuing (default 2)")
    ap.add_argument("--issue-threads", type=int, default=16,
                    help="connections per issuing process (default 16: 32 kiosks or booking clients at once)")
    ap.add_argument("--cycles", type=int, help="saturated call cycles per window (default 50, quick 8)")
    ap.add_argument("--paced-cycles", type=int, help="paced call cycles per window (default 20, quick 4; 0 = skip)")
    ap.add_argument("--period", type=float, default=1.0, help="paced: seconds between a window's cycles (default 1)")
    ap.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default 1; more need "
                    "--db postgres and --redis); the issue target is for one process")
    ap.add_argument("--redis", default="", help="run the server with this Socket.IO message queue, e.g. redis://127.0.0.1:6379/14")
    ap.add_argument("--experiment", choices=["sqlite-writer-lock"], help="run the server with a diagnostic patch "
                    "(see bench/serve.py); for measuring a suggested fix, not for the recorded baseline")
    ap.add_argument("--profile", action="store_true", help="sample the server with py-spy (see --profile-phases)")
    ap.add_argument("--profile-phases", default="issue,calls", help="comma list of issue, calls (saturated), paced")
    ap.add_argument("--out", default=str(ROOT / "var" / "bench"), help="where results go (default var/bench)")
    args = ap.parse_args(argv)
    args.tickets = args.tickets or (500 if args.quick else 3000)
    args.cycles = args.cycles or (8 if args.quick else 50)
    if args.paced_cycles is None:
        args.paced_cycles = 4 if args.quick else 20
    need = 60 + 20 * (1 + args.cycles + args.paced_cycles)
    if args.tickets + 60 < need:
        ap.error(f"the waiting pool would run dry: --tickets must be at least {need - 60}")
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    stacks = {"both": ["werkzeug", "gevent"], "all": ["werkzeug", "gunicorn", "gevent"]}.get(args.server, [args.server])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    profile_dir = out / f"profile-{stamp}" if args.profile else None
    if profile_dir:
        profile_dir.mkdir()
    info = machine()
    print(f"bench on {info['cpu']} ({info['cores']} cores, {info['memory']}; {info['cpu_speed']}), Python {info['python']}, "
          f"SQLite {info['sqlite']}, PostgreSQL {info['postgresql']}", flush=True)
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="hall-bench-") as tmp:
        for db in dbs:
            for stack in stacks:
                print(f"== {db} / {stack}", flush=True)
                results.append(run_one(db, stack, args, Path(tmp), profile_dir))
    md = table(results, args)
    print()
    print(md)
    for r in results:
        for key in ("profile_issue", "profile_calls", "profile_paced"):
            if key in r:
                print(f"\n### {key.split('_')[1]} profile — {r['db']} / {r['server']}\n\n{r[key]}")
    (out / f"results-{stamp}.json").write_text(json.dumps({"machine": info, "args": vars(args), "results": results},
                                                          ensure_ascii=False, indent=1))
    (out / f"results-{stamp}.md").write_text(
        "\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n\n" + md + "\n"
        + "".join(f"\n### {key.split('_')[1]} profile — {r['db']} / {r['server']}\n\n{r[key]}\n"
                  for r in results for key in ("profile_issue", "profile_calls", "profile_paced") if key in r))
    print(f"\nwrote {out}/results-{stamp}.json and .md in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

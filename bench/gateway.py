"""``python -m bench.gateway``: clerk call-next -> LED frame on the board, and -> announcement WAV ready.

A real server process (gunicorn's gevent worker as in production; ``--server werkzeug``: ``hall serve``) with a 50-window hall, the hall bus simulator on TCP with 50
window boards and the composite board, and the gateway (in this process, so its announcer's timestamps
and the simulator's share one clock). 50 clerks call over real HTTP:

* **paced**: each window runs call-next, recall, start, finish with 0.5-1.5 s between steps;
* **burst**: all 50 windows call-next at the same instant (a barrier).

Measured per call: t0 = just before ``POST call-next`` (or ``recall``);
board = the simulator executes the SHOW_CALLED frame for that ticket;
WAV = the announcer has the call's WAV file (joined from "请A001号", rendered when the gateway saw the
ticket issued, and "到3号窗口办理", rendered at start-up; from the cache for a recall, which speaks the
same sentence). The clerks start once the gateway has rendered the issued tickets' pieces. Results: ``var/bench/gateway-<time>.json`` and a section of
``docs/benchmarks.md`` between ``<!-- gateway bench -->`` markers.

    .venv/bin/python -m bench.gateway            # sqlite and postgres, 4 paced cycles per window
    .venv/bin/python -m bench.gateway --quick    # sqlite, 2 cycles
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from .server import ROOT, fresh_database, free_port, server_command
from .history import seed_history

WINDOWS = 50
HALL = "gwbench"
PASSWORD = "bench-password-1"
PG_DB = "bench_gateway"  # its own database: `bench` belongs to the server benchmark
MARK_BEGIN, MARK_END = "<!-- gateway bench -->", "<!-- /gateway bench -->"


def hall_toml() -> str:
    out = [f'[[halls]]\nid = "{HALL}"\nname = "网关基准测试大厅"\nenforce_hours = false\nmax_recalls = 9\n',
           '[[halls.queues]]\nid = "q"\nprefix = "A"\nname = "综合受理"\n']
    out += [f'[[halls.windows]]\nnumber = {w}\nqueues = ["q"]\n' for w in range(1, WINDOWS + 1)]
    out += ['[[halls.devices]]\nid = "gw"\nkind = "gateway"\n', '[[halls.devices]]\nid = "kiosk"\nkind = "kiosk"\n',
            '[[halls.devices]]\nid = "led-hall"\nkind = "led"\naddress = 99\n']
    out += [f'[[halls.devices]]\nid = "led-{w}"\nkind = "led"\nwindow = {w}\naddress = {w}\n' for w in range(1, WINDOWS + 1)]
    out += [f'[[users]]\nusername = "c{w}"\nname = "窗口{w}"\nrole = "clerk"\n' for w in range(1, WINDOWS + 1)]
    return "\n".join(out)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def summary(values_s: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99), "max": max(ms) if ms else None,
            "mean": statistics.fmean(ms) if ms else None}


class Rig:
    def __init__(self, db: str, workdir: Path, stack: str = "gevent") -> None:
        self.stack = stack
        self.db, self.workdir = db, workdir
        self.url = fresh_database(db, workdir, PG_DB)
        self.cfg_path = workdir / "gwbench.toml"
        self.cfg_path.write_text(hall_toml(), encoding="utf-8")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def prepare(self) -> dict[str, str]:
        from sqlalchemy import update

        from hall_server import models as m
        from hall_server.auth import Auth, hash_password
        from hall_server.config import load_config
        from hall_server.db import Database
        from hall_server.migrations import upgrade

        upgrade(self.url)
        db = Database(self.url)
        auth = Auth(load_config(self.cfg_path), db)
        auth.sync_users()
        with db.write() as s:
            s.execute(update(m.User).values(password_hash=hash_password(PASSWORD), must_change_password=False))
        tokens = {d: auth.device_token(HALL, d) for d in ("gw", "kiosk")}
        db.dispose()
        seed_history(self.url, HALL, [("q", "A")], WINDOWS)
        return tokens

    def start_server(self) -> None:
        env = {**os.environ, "HALL_DATABASE_URL": self.url, "HALL_SECRET": "bench", "HALL_REDIS_URL": ""}
        self.log = open(self.workdir / f"server-{self.db}.log", "wb")
        cmd = server_command(self.stack, self.port, "hall_server.wsgi:app()",
                             [sys.executable, "-m", "hall_server.cli", "-c", str(self.cfg_path), "serve"])
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env={**env, "HALL_CONFIG": str(self.cfg_path)},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop_server(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def run(db: str, cycles: int, workdir: Path, stack: str = "gevent") -> dict[str, Any]:
    from device_drivers import hallbus as hb
    from hall_server.gateway import Gateway, parse_gateway_config
    from simulators.base import SimulatorServer
    from simulators.hallbus_sim import HallBusSim

    load_before = Path("/proc/loadavg").read_text().split()[0]
    rig = Rig(db, workdir, stack)
    tokens = rig.prepare()
    rig.start_server()
    sim = HallBusSim.from_options({"devices": [{"address": w, "type": "led"} for w in range(1, WINDOWS + 1)]
                                   + [{"address": 99, "type": "composite"}]})
    board_at: dict[str, float] = {}
    lock = threading.Lock()
    for w in range(1, WINDOWS + 1):
        dev = sim.led(w)
        orig = dev.handle

        def handle(frame: Any, orig: Any = orig) -> Any:
            if frame.cmd == hb.Command.SHOW_CALLED:
                ticket = hb.unpack_called(frame.payload).ticket
                with lock:
                    board_at.setdefault(ticket, time.monotonic())
            return orig(frame)

        dev.handle = handle  # type: ignore[method-assign]
    bus_srv = SimulatorServer(sim, name="bus", pty=False, tcp_port=0).start()
    cache = workdir / f"voice-cache-{db}"
    gw = Gateway(parse_gateway_config({
        "server": rig.base, "hall": HALL, "device": "gw", "token": tokens["gw"],
        "voice": {"player": "null", "cache_dir": str(cache), "repeat": 1, "chime": True},
        "buses": [{"name": "bus", "port": bus_srv.tcp_url,
                   "devices": [{"id": f"led-{w}", "kind": "led", "address": w, "window": w} for w in range(1, WINDOWS + 1)]
                   + [{"id": "led-hall", "kind": "composite", "address": 99}]}],
    }))
    wav: dict[tuple[str, int], Any] = {}  # (number, nth announcement of it) -> Announcement
    counts: dict[str, int] = {}

    prepared: set[str] = set()  # tickets whose "请A001号" was on disk when their call arrived

    def on_announce(item: Any) -> None:
        ann = gw.announcer
        piece = ann.builder.ticket_piece(item.number)
        if piece and (ann.cache_dir / ann.renderer.cache_name(piece, ann.voice, ann.rate)).exists():
            prepared.add(item.number)
        n = counts.get(item.number, 0)
        counts[item.number] = n + 1
        wav[(item.number, n)] = item

    gw.on_announce.append(on_announce)
    gw.start()
    try:
        assert gw.wait_synced(30), "gateway got no snapshot"
        s = requests.Session()
        clerk_tokens = {}
        for w in range(1, WINDOWS + 1):
            r = s.post(f"{rig.base}/api/v1/auth/login", json={"username": f"c{w}", "password": PASSWORD}, timeout=10)
            clerk_tokens[str(w)] = r.json()["token"]
            s.post(f"{rig.base}/api/v1/halls/{HALL}/windows/{w}/sign-in",
                   headers={"Authorization": f"Bearer {clerk_tokens[str(w)]}"}, timeout=10)
        for i in range(WINDOWS * (cycles + 1) + 10):
            s.post(f"{rig.base}/api/v1/halls/{HALL}/tickets", json={"queue": "q", "request_id": f"gwb-{i:06d}-{time.time_ns()}"},
                   headers={"Authorization": f"Bearer {tokens['kiosk']}"}, timeout=10)
        # Tickets are issued well before they are called in a hall: let the gateway render their
        # "请A001号" pieces (it saw them issued) before the clerks start.
        drained = time.monotonic() + 120
        while time.monotonic() < drained and gw.announcer.renderer.pending:
            time.sleep(0.1)
        t_call: dict[str, float] = {}
        t_answer: dict[str, float] = {}
        t_recall: dict[str, float] = {}
        burst_numbers: list[str] = []
        errors: list[str] = []

        def act(sess: requests.Session, w: str, action: str, body: Any = None) -> Any:
            r = sess.post(f"{rig.base}/api/v1/halls/{HALL}/windows/{w}/{action}", json=body,
                          headers={"Authorization": f"Bearer {clerk_tokens[w]}"}, timeout=30)
            if r.status_code != 200:
                try:
                    code = r.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = "?"
                errors.append(f"{action} {r.status_code} {code}")
                return None
            return r.json()

        def window(w: str, barrier: threading.Barrier) -> None:
            sess = requests.Session()
            rnd = random.Random(int(w))
            barrier.wait()
            time.sleep(rnd.uniform(0.0, 2.0))  # spread the windows' phases: the burst phase below is the all-at-once case
            for _ in range(cycles):
                t0 = time.monotonic()
                res = act(sess, w, "call-next")
                if not res or not res.get("ticket"):
                    continue
                number = res["ticket"]["number"]
                t_answer[number] = time.monotonic()
                t_call[number] = t0
                time.sleep(rnd.uniform(0.5, 1.5))
                t_recall[number] = time.monotonic()
                act(sess, w, "recall")
                time.sleep(rnd.uniform(0.5, 1.5))
                act(sess, w, "start")
                act(sess, w, "finish", {"outcome": "instant"})
                time.sleep(rnd.uniform(0.5, 1.5))

        def burst(w: str, barrier: threading.Barrier) -> None:
            sess = requests.Session()
            barrier.wait()
            t0 = time.monotonic()
            res = act(sess, w, "call-next")
            if res and res.get("ticket"):
                t_answer[res["ticket"]["number"]] = time.monotonic()
                t_call[res["ticket"]["number"]] = t0
                burst_numbers.append(res["ticket"]["number"])

        for phase in (window, burst):
            barrier = threading.Barrier(WINDOWS)
            threads = [threading.Thread(target=phase, args=(str(w), barrier)) for w in range(1, WINDOWS + 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        gw.announcer.wait_idle(120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(board_at) < len(t_call):
            time.sleep(0.1)

        def lat(numbers: list[str], starts: dict[str, float], stamp: Any) -> list[float]:
            out = []
            for n in numbers:
                at = stamp(n)
                if at is not None and n in starts:
                    out.append(at - starts[n])
            return out

        paced = [n for n in t_call if n not in burst_numbers]
        first_wav = lambda n: getattr(wav.get((n, 0)), "wav_ready_at", None)  # noqa: E731
        recall_wav = lambda n: getattr(wav.get((n, 1)), "wav_ready_at", None)  # noqa: E731
        event_at = lambda n: getattr(wav.get((n, 0)), "requested_at", None)  # noqa: E731  (event applied)
        hop = [board_at[n] - event_at(n) for n in paced if n in board_at and event_at(n) is not None]
        ev_to_wav = lambda ns: [first_wav(n) - event_at(n) for n in ns  # noqa: E731
                                if first_wav(n) is not None and event_at(n) is not None]
        after_answer = [event_at(n) - t_answer[n] for n in paced if n in t_answer and event_at(n) is not None]
        result = {
            "server": stack, "db": db, "load_before": load_before, "windows": WINDOWS, "cycles": cycles, "errors": errors,
            "paced_answer": summary(lat(paced, t_call, t_answer.get)),
            "paced_event": summary(lat(paced, t_call, event_at)),
            "paced_event_after_answer": summary(after_answer),
            "paced_gateway_to_board": summary(hop),
            "paced_board": summary(lat(paced, t_call, board_at.get)),
            "paced_wav_first": summary(lat(paced, t_call, first_wav)),
            "paced_event_to_wav": summary(ev_to_wav(paced)),
            "burst_event_to_wav": summary(ev_to_wav(burst_numbers)),
            "paced_wav_cached": summary(lat(paced, t_recall, recall_wav)),
            "burst_board": summary(lat(burst_numbers, t_call, board_at.get)),
            "burst_wav_first": summary(lat(burst_numbers, t_call, first_wav)),
            "missing_board": len([n for n in t_call if n not in board_at]),
            "prepared": len(prepared & set(t_call)), "calls": len(t_call),
            "renders": gw.announcer.renderer.renders,
            "load_after": Path("/proc/loadavg").read_text().split()[0],
        }
    finally:
        gw.stop()
        bus_srv.stop()
        rig.stop_server()
    return result


def fmt(s: dict[str, Any]) -> str:
    return "–" if not s["n"] else f"{s['p50']:.0f} / {s['p99']:.0f} ({s['n']})"


def _errors(errors: list[str]) -> str:
    counts: dict[str, int] = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    return ", ".join(f"{k} ×{v}" for k, v in counts.items()) or "none"


STACKS = {"gevent": "under gunicorn's gevent worker (`hall_server.wsgi`, as in production)",
          "werkzeug": "as `hall serve` (Werkzeug)"}


def section(results: list[dict[str, Any]], when: str) -> str:
    lines = [
        MARK_BEGIN, "## Device gateway (`python -m bench.gateway`, " + when + ")", "",
        f"{WINDOWS} windows, one hall bus simulator on TCP (50 window boards + the composite board), the gateway "
        "in the benchmark process, the server " + STACKS.get(results[0].get("server", "werkzeug"), "") + ". t0 = just before the clerk's `POST call-next` "
        "(or `recall`); board = the simulator executed the SHOW_CALLED frame; WAV = the announcer has the call's "
        "WAV (joined from pieces rendered ahead; from the cache for a recall of the same sentence). Paced: each window, "
        "starting at a random moment in its first 2 s, "
        "calls, recalls, starts and finishes with 0.5-1.5 s between steps; burst: all 50 windows call at once. "
        "Cells: p50 / p99 ms (count). Targets: board p99 < 100 ms, first-rendered WAV p99 < 500 ms.", "",
        "Decomposition of the paced board latency: *answer* = t0 → the clerk has the HTTP answer of `call-next`, "
        "*event* = t0 → the gateway applied the `ticket` event (server + Socket.IO), *ev−ans* = the event applied "
        "minus the answer received (the publish path after the commit; negative when the event wins), "
        "*gw→board* = from the event to the frame executed on the simulated board. The gateway renders a ticket's "
        "\"请A001号\" when it sees it issued and every window's \"到3号窗口办理\" at start-up, and joins them at call "
        "time; the clerks start once those renders are done (in a hall a ticket waits minutes before its call); "
        "*prepared* = calls whose ticket piece was on disk when the call arrived; *ev→WAV* = the gateway's own "
        "part of the WAV latency, from the event applied to the call's WAV ready.", "",
        "| DB | board paced | answer paced | event paced | ev−ans paced | gw→board paced | WAV first paced "
        "| ev→WAV paced | WAV cached (recall) | board burst ×50 | WAV first burst ×50 | ev→WAV burst | prepared "
        "| missing | load before → after | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['db']} | {fmt(r['paced_board'])} | {fmt(r['paced_answer'])} | {fmt(r['paced_event'])} | "
                     f"{fmt(r['paced_event_after_answer'])} | {fmt(r['paced_gateway_to_board'])} | "
                     f"{fmt(r['paced_wav_first'])} | {fmt(r['paced_event_to_wav'])} | {fmt(r['paced_wav_cached'])} | "
                     f"{fmt(r['burst_board'])} | {fmt(r['burst_wav_first'])} | {fmt(r['burst_event_to_wav'])} | "
                     f"{r['prepared']}/{r['calls']} | {r['missing_board']} | "
                     f"{r['load_before']} → {r['load_after']} | {_errors(r['errors'])} |")
    lines += ["", "The TCP simulator has no line rate: at 9600 baud on a real RS-485 bus a SHOW_CALLED exchange "
              "takes about 40 ms of line time, so 50 boards called at once on one bus need about 2 s; "
              "split a large hall over several buses (one `[[buses]]` each).",
              f"Machine: {os.cpu_count()} cores, shared with other jobs (load averages in the table).", MARK_END]
    return "\n".join(lines)


def write_docs(text: str) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if MARK_BEGIN in doc and MARK_END in doc:
        head, rest = doc.split(MARK_BEGIN, 1)
        doc = head + text + rest.split(MARK_END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(doc, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default=None)
    ap.add_argument("--cycles", type=int)
    ap.add_argument("--server", choices=["gevent", "werkzeug"], default="gevent",
                    help="gevent = gunicorn -k gevent_pywsgi as in production (default); werkzeug = `hall serve`")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (server log, WAVs) and print it")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args(argv)
    db = args.db or ("sqlite" if args.quick else "both")
    cycles = args.cycles or (2 if args.quick else 4)
    results = []
    keep = tempfile.mkdtemp(prefix="hall-gwbench-") if args.keep else None
    if keep:
        print(f"work directory (kept): {keep}", flush=True)
    with (contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="hall-gwbench-")) as tmp:
        for kind in (["sqlite", "postgres"] if db == "both" else [db]):
            print(f"== gateway bench on {kind}", flush=True)
            r = run(kind, cycles, Path(tmp), args.server)
            results.append(r)
            print(json.dumps(r, ensure_ascii=False), flush=True)
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d")
    text = section(results, when)
    print(text)
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gateway-{dt.datetime.now():%Y%m%d-%H%M%S}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1))
    if not args.no_docs:
        print(f"updated {write_docs(text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

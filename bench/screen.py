"""Clerk call-next -> hall screen updated, in a real browser, with 50 windows calling.

    .venv/bin/python -m bench.screen                  # SQLite and PostgreSQL, 50 windows x 10 calls
    .venv/bin/python -m bench.screen --db sqlite --cycles 4 --no-write

The real server runs as its own process for a 6-queue, 50-window hall: under gunicorn's gevent worker
as in production (``bench.screen:wsgi()``), or with ``--server werkzeug`` as ``hall serve`` runs it
(``python -m bench.screen serve``). Debian's headless Chromium opens the hall screen
(``/screen/bench`` at 1920x1080) and a MutationObserver stamps, with ``Date.now()``, when each ticket
number first appears in the screen's list of recent calls (DOM applied) and the next animation frame
after it (painted). 50 threads, one per window and each with its own keep-alive connection and clerk
token, loop call-next -> start -> finish, one cycle per window every ``--period`` seconds (+-20 %);
``time.time()`` is taken just before each call-next is sent. Latency = screen stamp - send time
(one machine, one wall clock). The result table is written into docs/benchmarks.md between the
markers of its own section (``--no-write`` to skip).
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from .load import Client, summary_ms
from .server import ROOT, fresh_database, free_port, server_command
from .history import seed_history

HALL = "bench"
WINDOWS = 50
QUEUES = [("biz", "A", "企业开办"), ("soc", "B", "社保医保"), ("tax", "C", "税务办理"),
          ("prop", "D", "不动产登记"), ("pol", "E", "公安户政"), ("gen", "F", "综合受理")]
PASSWORD = "bench-password-1"
SECRET = b"bench-secret-key-not-for-production"
PG_DB = "bench_screen"  # its own database: never `test` nor the main bench's `bench`
CHROMIUM = os.environ.get("HALL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]  # as tests/browser.py
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench.screen:begin -->", "<!-- bench.screen:end -->"

OBSERVER = """() => {
  window.__seen = {};
  const stamp = () => {
    const t = Date.now();
    const fresh = [];
    for (const li of document.querySelectorAll('#recent li')) {
      const n = li.dataset.number;
      if (n && !(n in window.__seen)) { window.__seen[n] = [t, null]; fresh.push(n); }
    }
    if (fresh.length) requestAnimationFrame(() => { const f = Date.now(); for (const n of fresh) window.__seen[n][1] = f; });
  };
  new MutationObserver(stamp).observe(document.getElementById('recent'), {childList: true});
}"""


def screen_config(url: str):  # type: ignore[no-untyped-def]
    from hall_server.config import parse_config

    ids = [q[0] for q in QUEUES]
    return parse_config({
        "server": {"database_url": url, "secret_file": "var/bench/secret.key"},
        "halls": [{
            "id": HALL, "name": "基准测试政务服务中心", "enforce_hours": False,
            "queues": [{"id": i, "prefix": p, "name": n} for i, p, n in QUEUES],
            "windows": [{"number": n, "queues": [ids[(n - 1) % 6], ids[n % 6]]} for n in range(1, WINDOWS + 1)],
            "devices": [{"id": "kiosk1", "kind": "kiosk"}],
        }],
        "users": [{"username": f"clerk{n:02d}", "name": f"窗口人员{n}", "role": "clerk"} for n in range(1, WINDOWS + 1)],
    }, "<bench.screen>")


def prepare(url: str) -> tuple[dict[str, str], str]:
    """Schema and users as `hall db upgrade` makes them; clerk tokens by window, and a kiosk token."""
    from hall_server.app import create_app, prepare_database

    app, _ = create_app(screen_config(url), database_url=url, redis_url="", secret=SECRET)
    prepare_database(app)
    seed_history(url, HALL, [(q, p) for q, p, _ in QUEUES], WINDOWS)
    auth = app.extensions["hall"]["auth"]
    tokens = {}
    for n in range(1, WINDOWS + 1):
        auth.set_password(f"clerk{n:02d}", PASSWORD, one_time=False)
        tokens[str(n)] = auth.login(f"clerk{n:02d}", PASSWORD)[0]
    kiosk = auth.device_token(HALL, "kiosk1")
    app.extensions["hall"]["db"].dispose()
    return tokens, kiosk


def build(async_mode: str = "threading"):  # type: ignore[no-untyped-def]
    """The server under test, built as `hall serve` and `hall_server.wsgi` build it."""
    import logging

    from hall_server.app import create_app
    from hall_server.cli import start_serving

    from .lag import install_if_asked

    logging.basicConfig(level=logging.WARNING)
    url = os.environ["BENCH_DB_URL"]
    app, socketio = create_app(screen_config(url), database_url=url, redis_url="", secret=SECRET,
                               async_mode=async_mode)
    start_serving(app)
    install_if_asked(app)
    return app, socketio


def serve(port: int) -> None:
    """Werkzeug, as `hall serve` runs it."""
    app, socketio = build()
    socketio.run(app, host="127.0.0.1", port=port, allow_unsafe_werkzeug=True, log_output=False, use_reloader=False)


def wsgi():  # type: ignore[no-untyped-def]
    """gunicorn factory (``'bench.screen:wsgi()'``), as hall_server.wsgi under ``-k gevent_pywsgi``."""
    from hall_server.wsgi import async_mode

    return build(async_mode())[0]


class ServerProc:
    def __init__(self, url: str, workdir: Path, stack: str = "gevent") -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "screen-server.log"
        cmd = server_command(stack, self.port, "bench.screen:wsgi()", [sys.executable, "-m", "bench.screen", "serve"])
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "BENCH_DB_URL": url, "PYTHONPATH": str(ROOT)},
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text()[-2000:])
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start:\n" + self.log.read_text()[-2000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def issue(base: str, kiosk: str, n: int) -> None:
    def worker(k: int) -> None:
        c = Client(base, kiosk)
        for i in range(k, n, 8):
            status, body = c.post(f"/api/v1/halls/{HALL}/tickets",
                                  {"queue": QUEUES[i % 6][0], "request_id": f"scr-{uuid.uuid4().hex}"})
            if status != 201:
                raise RuntimeError(f"issue failed: {status} {body}")
        c.close()

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def drive(base: str, tokens: dict[str, str], cycles: int, period: float
          ) -> tuple[dict[str, float], dict[str, float], dict[str, int], float]:
    """Every window calls, starts and finishes `cycles` times, one cycle every `period` s +-20 %."""
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}  # number -> time.time() the answer was read
    errors: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(tokens) + 1)

    def loop(window: str, token: str, seed: int) -> None:
        rnd = random.Random(seed)
        c = Client(base, token)
        path = f"/api/v1/halls/{HALL}/windows/{window}"
        start.wait()
        time.sleep(rnd.uniform(0, period))  # spread the windows' phases
        for _ in range(cycles):
            t_next = time.monotonic() + period * rnd.uniform(0.8, 1.2)
            t0 = time.time()
            status, body = c.post(path + "/call-next")
            t1 = time.time()
            if status == 200 and body and body.get("ticket"):
                with lock:
                    sent[body["ticket"]["number"]] = t0
                    answered[body["ticket"]["number"]] = t1
                for action, payload in (("start", None), ("finish", {"outcome": "instant"})):
                    s2, _ = c.post(f"{path}/{action}", payload)
                    if s2 != 200:
                        with lock:
                            errors[f"{action} {s2}"] = errors.get(f"{action} {s2}", 0) + 1
            else:
                with lock:
                    key = f"call-next {status}" if status != 200 else "call-next: nothing waiting"
                    errors[key] = errors.get(key, 0) + 1
            time.sleep(max(0.0, t_next - time.monotonic()))
        c.close()

    threads = [threading.Thread(target=loop, args=(w, t, i)) for i, (w, t) in enumerate(sorted(tokens.items()))]
    for t in threads:
        t.start()
    start.wait()
    t_begin = time.monotonic()
    for t in threads:
        t.join()
    return sent, answered, errors, time.monotonic() - t_begin


def run_one(db: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    url = fresh_database(db, workdir, PG_DB)
    tokens, kiosk = prepare(url)
    server = ServerProc(url, workdir, args.server)
    try:
        issue(server.base, kiosk, WINDOWS * args.cycles + 100)
        for w, tok in tokens.items():
            r = requests.post(f"{server.base}/api/v1/halls/{HALL}/windows/{w}/sign-in",
                              headers={"Authorization": f"Bearer {tok}"}, timeout=10)
            r.raise_for_status()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
            sockets: list[Any] = []
            page.on("websocket", lambda ws: sockets.append(ws))  # Socket.IO upgraded from polling
            page.goto(f"{server.base}/screen/{HALL}")
            page.wait_for_function("document.getElementById('offline').hidden && "
                                   "document.querySelector('#queues tbody tr') !== null")
            page.evaluate(OBSERVER)
            load_before = Path("/proc/loadavg").read_text().split()[0]
            sent, answered, errors, seconds = drive(server.base, tokens, args.cycles, args.period)
            time.sleep(2.0)  # let the last events arrive
            seen: dict[str, list[float | None]] = page.evaluate("window.__seen")
            transport = "websocket" if any(not ws.is_closed() for ws in sockets) else "polling"
            browser.close()
    finally:
        server.stop()
    dom, frame, after, missing = [], [], [], 0
    for number, t0 in sent.items():
        s = seen.get(number)
        if s is None:
            missing += 1
            continue
        dom.append(s[0] / 1000 - t0)
        after.append(s[0] / 1000 - answered[number])
        if s[1] is not None:
            frame.append(s[1] / 1000 - t0)
    return {"db": db, "calls": len(sent), "seconds": seconds, "dom_ms": summary_ms(dom), "load": load_before,
            "answer_ms": summary_ms([answered[n] - t0 for n, t0 in sent.items()]),
            "after_answer_ms": summary_ms(after), "transport": transport, "load_after": Path("/proc/loadavg").read_text().split()[0],
            "frame_ms": summary_ms(frame), "missing": missing, "errors": errors}


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def f(d: dict[str, float], k: str) -> str:
        return f"{d[k]:.1f}" if k in d else "–"

    lines = [
        f"{WINDOWS} windows, each call-next → start → finish once every {args.period:g} s ± 20 % "
        f"({args.cycles} calls per window, {WINDOWS / args.period:.0f} calls/s in the hall); one hall screen "
        "(`/screen/bench`, 1920x1080) in Debian's headless Chromium; the server "
        + ("under gunicorn's gevent worker as in production" if args.server == "gevent" else "as `hall serve` (Werkzeug)")
        + ". Latency = call-next sent → the number "
        "appears in the screen's recent-calls list (DOM) / the next animation frame after it (painted). "
        "Target: p99 < 100 ms. *DOM − answer* = per call, the DOM stamp minus the moment the clerk read the "
        "`call-next` answer: the publish path after the commit (Socket.IO emit, the browser's event and render), "
        "negative when the screen wins.",
        "",
        "| DB | calls | call-next answered p50 / p99 ms | DOM p50 / p99 / max ms | painted p50 / p99 / max ms "
        "| DOM − answer p50 / p99 ms | not shown | transport | load avg before → after | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in results:
        d, fr, a, x = r["dom_ms"], r["frame_ms"], r["answer_ms"], r["after_answer_ms"]
        lines.append(f"| {r['db']} | {r['calls']} | {f(a, 'p50')} / {f(a, 'p99')} | {f(d, 'p50')} / {f(d, 'p99')} / {f(d, 'max')} | "
                     f"{f(fr, 'p50')} / {f(fr, 'p99')} / {f(fr, 'max')} | {f(x, 'p50')} / {f(x, 'p99')} | "
                     f"{r['missing']} | {r['transport']} | {r['load']} → {r['load_after']} | "
                     + (", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none") + " |")
    return "\n".join(lines)


def write_doc(md: str) -> None:
    import datetime as dt

    section = (f"{BEGIN}\n## Hall screen: call-next → screen updated (`python -m bench.screen`)\n\n"
               f"Measured {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {os.cpu_count()} cores "
               f"(load average {Path('/proc/loadavg').read_text().split()[0]} when written; per run in the table).\n\n{md}\n{END}\n")
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["serve"]:
        sp = argparse.ArgumentParser()
        sp.add_argument("--port", type=int, required=True)
        serve(sp.parse_args(argv[1:]).port)
        return 0
    ap = argparse.ArgumentParser(prog="python -m bench.screen", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--server", choices=["gevent", "werkzeug"], default="gevent",
                    help="gevent = gunicorn -k gevent_pywsgi as in production (default); werkzeug = `hall serve`")
    ap.add_argument("--cycles", type=int, default=10, help="calls per window (default 10)")
    ap.add_argument("--period", type=float, default=2.0, help="seconds between a window's calls (default 2)")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="hall-bench-screen-") as tmp:
        for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
            print(f"== {db}", flush=True)
            r = run_one(db, args, Path(tmp))
            print(f"  {r['calls']} calls in {r['seconds']:.1f} s; call-next answered p50 {r['answer_ms'].get('p50', 0):.1f}"
                  f" / p99 {r['answer_ms'].get('p99', 0):.1f} ms; DOM p50 {r['dom_ms'].get('p50', 0):.1f} / "
                  f"p99 {r['dom_ms'].get('p99', 0):.1f} ms; painted p50 {r['frame_ms'].get('p50', 0):.1f} / "
                  f"p99 {r['frame_ms'].get('p99', 0):.1f} ms; DOM - answer p50 {r['after_answer_ms'].get('p50', 0):.1f} / "
                  f"p99 {r['after_answer_ms'].get('p99', 0):.1f} ms; transport {r['transport']}; not shown {r['missing']}; errors {r['errors'] or 'none'}",
                  flush=True)
            results.append(r)
    md = table(results, args)
    print("\n" + md)
    if not args.no_write:
        write_doc(md)
        print(f"\nwrote the section to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

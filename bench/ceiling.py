"""``python -m bench.ceiling``: how many requests/s can one server process answer at all?

The same client as the issue benchmark (``processes`` × ``threads`` keep-alive ``http.client``
connections posting a small JSON body with a bearer header) against endpoints that do no work:

* ``plain``: a bare Flask view returning a small dict;
* ``openapi``: a flask-openapi3 view with a pydantic path + body model and a validated response model,
  as the ticket API is declared (``validate_response=True``);

served by Werkzeug threaded through ``socketio.run`` (what ``hall serve`` runs) and by gunicorn
``-w 1 -k gthread``. The answer bounds what the ticket API can reach: whatever the database costs,
issuing can never be faster than the bare stack.

    .venv/bin/python -m bench.ceiling [--requests 6000] [--server werkzeug|gunicorn|gevent|all]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from pydantic import BaseModel

from .load import Client, summary_ms
from .server import ROOT, free_port, proc_tree_cpu


# ---- the server side ------------------------------------------------------------------------------------
class HallPath(BaseModel):
    hall: str


class Body(BaseModel):
    request_id: str
    channel: str = "kiosk"
    queue: str | None = None


class Answer(BaseModel):
    hall: str
    number: str
    people_ahead: int


def make_app():  # type: ignore[no-untyped-def]
    from flask import Flask
    from flask_openapi3 import OpenAPI
    from flask_socketio import SocketIO
    app = OpenAPI(__name__, validate_response=True)
    assert isinstance(app, Flask)

    def plain(hall: str):  # type: ignore[no-untyped-def]
        return {"hall": hall, "number": "A001", "people_ahead": 0}, 201

    app.add_url_rule("/plain/<hall>", view_func=plain, methods=["POST"])  # Flask's own routing, no openapi3

    @app.post("/openapi/<hall>", responses={201: Answer})
    def openapi(path: HallPath, body: Body):  # type: ignore[no-untyped-def]
        return Answer(hall=path.hall, number="A001", people_ahead=0).model_dump(mode="json"), 201

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return {"ok": True}

    socketio = SocketIO(app, async_mode=os.environ.get("CEILING_ASYNC_MODE", "threading"))
    return app, socketio


def wsgi():  # type: ignore[no-untyped-def]
    return make_app()[0]


def serve(port: int) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)  # as bench.serve: no access log
    app, socketio = make_app()
    socketio.run(app, host="127.0.0.1", port=port, allow_unsafe_werkzeug=True, log_output=False, use_reloader=False)


# ---- the driver -----------------------------------------------------------------------------------------
def _worker(base: str, path: str, threads: int, count: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    import resource
    import threading

    clients = [Client(base, "x" * 32) for _ in range(threads)]
    lat: list[float] = []
    for c in clients:
        c.conn.connect()

    def run(c: Client, k0: int) -> None:
        for k in range(count):
            t0 = time.perf_counter()
            status, _ = c.post(path, {"request_id": f"r-{k0}-{k}", "channel": "kiosk", "queue": "biz"})
            lat.append(time.perf_counter() - t0)
            assert status == 201, status

    barrier.wait()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    ts = [threading.Thread(target=run, args=(c, i)) for i, c in enumerate(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    end = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    results.put({"start": start, "end": end, "lat": lat,
                 "cpu": ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime})


def measure(base: str, path: str, total: int, procs: int, threads: int, server_cpu) -> dict:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs + 1), ctx.Queue()
    per = total // (procs * threads)
    ps = [ctx.Process(target=_worker, args=(base, path, threads, per, barrier, results), daemon=True)
          for _ in range(procs)]
    for p in ps:
        p.start()
    barrier.wait(timeout=60)
    c0 = server_cpu()
    out = [results.get(timeout=600) for _ in ps]
    c1 = server_cpu()
    for p in ps:
        p.join()
    secs = max(r["end"] for r in out) - min(r["start"] for r in out)
    n = sum(len(r["lat"]) for r in out)
    return {"rps": n / secs, "server_cpu_ms": 1000 * (c1 - c0) / n, "client_cores": sum(r["cpu"] for r in out) / secs,
            "lat": summary_ms([x for r in out for x in r["lat"]])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--server", choices=["werkzeug", "gunicorn", "gevent", "pywsgi", "all"], default="all",
                    help="gunicorn = -k gthread; gevent = gunicorn -w 1 -k gevent (gunicorn's HTTP parser on "
                         "gevent); pywsgi = -k gevent_pywsgi (gevent's HTTP server, the production stack); all = the four")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args(argv)
    stacks = ["werkzeug", "gunicorn", "gevent", "pywsgi"] if args.server == "all" else [args.server]
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[0]} ({os.cpu_count()} cores)")
    print("| server | endpoint | requests/s | server CPU ms/request | client cores | p50 / p99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for stack in stacks:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if stack == "werkzeug":
            cmd = [sys.executable, "-c", f"from bench.ceiling import serve; serve({port})"]
        else:
            gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
            worker = {"gunicorn": ["-k", "gthread", "--threads", "32"], "gevent": ["-k", "gevent"],
                      "pywsgi": ["-k", "gevent_pywsgi"]}[stack]
            env["CEILING_ASYNC_MODE"] = "threading" if stack == "gunicorn" else "gevent"  # gevent and pywsgi
            cmd = [gunicorn, "-w", "1", *worker, "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                   "bench.ceiling:wsgi()"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            for endpoint in ("plain", "openapi"):
                measure(base, f"/{endpoint}/bench", 200, 1, 2, lambda: 0.0)  # warm-up
                r = measure(base, f"/{endpoint}/bench", args.requests, args.procs, args.threads,
                            lambda: proc_tree_cpu(proc.pid))
                print(f"| {stack} | {endpoint} | {r['rps']:.0f} | {r['server_cpu_ms']:.2f} | {r['client_cores']:.2f} | "
                      f"{r['lat']['p50']:.1f} / {r['lat']['p99']:.1f} |", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The three measurements, driven over real HTTP (http.client keep-alive connections) and Socket.IO.

Kept free of hall_server imports: the issuing workers are spawned processes and start quickly.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import multiprocessing as mp
import random
import resource
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile of values (seconds in, seconds out)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def pct_interval(values: list[float], p: float, confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the p-th percentile: the order statistics whose ranks
    bound it, from the binomial distribution of how many samples fall below the true percentile. With
    400 paced calls the p99 is the 5th-slowest call, and its 95 % interval runs from the 9th-slowest
    to the slowest: the run-to-run spread of a p99 is mostly this."""
    s, n, q = sorted(values), len(values), p / 100
    if n == 0:
        return float("nan"), float("nan")
    tail, lo, hi, cdf = (1 - confidence) / 2, 0, n - 1, 0.0
    for k in range(n):  # cdf: P(at most k samples lie below the percentile), binomial(n, q)
        cdf += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                        + k * math.log(q) + (n - k) * math.log1p(-q))
        if cdf <= tail:
            lo = k  # the (k+1)-th smallest is below the percentile with probability >= 1 - tail
        if cdf >= 1 - tail:
            hi = k
            break
    return s[lo], s[hi]


def summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    lo, hi = pct_interval(values, 99)
    return {"n": len(values), "mean": 1000 * sum(values) / len(values), "p50": 1000 * pct(values, 50),
            "p90": 1000 * pct(values, 90), "p99": 1000 * pct(values, 99), "p99_low": 1000 * lo,
            "p99_high": 1000 * hi, "max": 1000 * max(values)}


class Client:
    """One keep-alive HTTP/1.1 connection with a bearer token; reconnects once if the server closed it."""

    def __init__(self, base: str, token: str | None = None) -> None:
        u = urlsplit(base)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.reconnects = 0
        self.sent = 0.0  # when the last request had been written to the socket

    def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            try:
                self.conn.request("POST", path, body=data, headers=self.headers)
                self.sent = time.perf_counter()
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.reconnects += 1
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


# ---- 1. ticket issue throughput ---------------------------------------------------------------------
def _issue_worker(base: str, hall: str, tokens: list[str], threads: int, counts: list[int], queues: list[str],
                  wid: int, barrier: Any, results: Any) -> None:
    clients = [Client(base, tokens[(wid * threads + i) % len(tokens)]) for i in range(threads)]
    lat: list[list[float]] = [[] for _ in range(threads)]
    errors: list[dict[str, int]] = [{} for _ in range(threads)]
    path = f"/api/v1/halls/{hall}/tickets"
    run_id = uuid.uuid4().hex[:8]

    def run(i: int) -> None:
        c = clients[i]
        for k in range(counts[i]):
            body = {"request_id": f"{run_id}-{wid}-{i}-{k}", "channel": "kiosk",
                    "queue": queues[(wid * threads + i + k) % len(queues)]}
            t0 = time.perf_counter()
            status, _ = c.post(path, body)
            lat[i].append(time.perf_counter() - t0)
            if status != 201:
                errors[i][str(status)] = errors[i].get(str(status), 0) + 1

    for c in clients:  # open the TCP connections before the clock starts
        c.conn.connect()
    barrier.wait()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    end = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    merged: dict[str, int] = {}
    for e in errors:
        for k, v in e.items():
            merged[k] = merged.get(k, 0) + v
    results.put({"start": start, "end": end, "cpu": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
                 "lat": [x for xs in lat for x in xs], "errors": merged,
                 "reconnects": sum(c.reconnects for c in clients)})


@dataclass
class Throughput:
    tickets: int
    seconds: float
    per_second: float
    concurrency: int
    latency_ms: dict[str, float]
    errors: dict[str, int]
    client_cpu_s: float
    server_cpu_s: float
    machine_busy: float  # fraction of all cores busy during the run
    reconnects: int
    other_cores: float = 0.0  # CPU used by processes other than server, database and bench client, in cores
    db_cpu_s: float = 0.0  # PostgreSQL processes (0 for SQLite: its work is in the server process)


def issue_throughput(base: str, hall: str, kiosk_tokens: list[str], queues: list[str], total: int,
                     processes: int, threads: int, cpu_probe: Any, db_cpu: Any) -> Throughput:
    """`processes` × `threads` concurrent kiosks, each on its own keep-alive connection, issue `total` tickets."""
    from .server import machine_cpu

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    n = processes * threads
    per = [total // n + (1 if i < total % n else 0) for i in range(n)]
    procs = [ctx.Process(target=_issue_worker, daemon=True,
                         args=(base, hall, kiosk_tokens, threads, per[w * threads:(w + 1) * threads], queues, w,
                               barrier, results)) for w in range(processes)]
    for p in procs:
        p.start()
    barrier.wait(timeout=60)
    db_cpu.start()
    s0, m0 = cpu_probe(), machine_cpu()
    out = [results.get(timeout=600) for _ in procs]
    s1, m1 = cpu_probe(), machine_cpu()
    dbs = db_cpu.stop()
    for p in procs:
        p.join(timeout=10)
    start, end = min(r["start"] for r in out), max(r["end"] for r in out)
    lat = [x for r in out for x in r["lat"]]
    errors: dict[str, int] = {}
    for r in out:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    secs = end - start
    ok = len(lat) - sum(errors.values())
    client = sum(r["cpu"] for r in out)
    busy = (m1[0] - m0[0]) / max(1.0, m1[1] - m0[1])
    return Throughput(other_cores=max(0.0, busy * (os.cpu_count() or 1) - (s1 - s0 + client + dbs) / secs),
                      db_cpu_s=dbs,
                      tickets=ok, seconds=secs, per_second=ok / secs, concurrency=n, latency_ms=summary_ms(lat),
                      errors=errors, client_cpu_s=sum(r["cpu"] for r in out), server_cpu_s=s1 - s0,
                      machine_busy=(m1[0] - m0[0]) / max(1.0, m1[1] - m0[1]),
                      reconnects=sum(r["reconnects"] for r in out))


# ---- 2 + 3. call-next latency and call -> Socket.IO event latency -----------------------------------
class Listener:
    """A Socket.IO client in the hall's public room, as the device gateway that drives the windows'
    LED boards and the loudspeaker connects (``gateway.link.InOrderClient``: each message handled on
    the thread that read it); notes when each `called` event arrives. (python-socketio's plain client
    starts a thread for every message received: with the 20 calling windows' threads in this process,
    ~0.5 ms more on the event p99 than the call-next p99, docs/benchmarks.md, fifteenth round.)"""

    def __init__(self, base: str, hall: str) -> None:
        from hall_server.gateway.link import InOrderClient

        self.received: dict[int, float] = {}
        self.snapshot = threading.Event()
        self.sio = InOrderClient(reconnection=False)

        @self.sio.on("ticket")
        def _ticket(data: dict[str, Any]) -> None:
            if data.get("type") == "called":
                self.received[data["ticket"]["id"]] = time.perf_counter()

        @self.sio.on("snapshot")
        def _snapshot(_data: Any) -> None:
            self.snapshot.set()

        self.sio.connect(base, auth={"hall": hall}, transports=["websocket"], wait_timeout=10)
        if not self.snapshot.wait(10):
            raise RuntimeError("no snapshot from the server within 10 s")
        self.transport = self.sio.transport()

    def close(self) -> None:
        self.sio.disconnect()


@dataclass
class Calls:
    mode: str
    windows: int
    calls: int
    seconds: float
    call_next_ms: dict[str, float]
    event_ms: dict[str, float]          # from sending call-next to the `called` event at the listener
    event_after_response_ms: dict[str, float]  # event arrival minus call-next response arrival (may be < 0)
    events_missing: int
    cycle_ms: dict[str, float]          # call-next + start + finish
    server_cpu_s: float
    machine_busy: float
    errors: dict[str, int] = field(default_factory=dict)
    transport: str = ""
    client_cpu_s: float = 0.0
    other_cores: float = 0.0
    db_cpu_s: float = 0.0


def _clerk_worker(base: str, hall: str, windows: list[tuple[str, str, int]], cycles: int, period: float | None,
                  barrier: Any, results: Any) -> None:
    """One client process: a thread per window, each on its own keep-alive connection."""
    records: list[tuple[str, int, float, float, float]] = []  # window, ticket id, sending, response received, sent
    cycle: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    ready = threading.Barrier(len(windows) + 1)

    def err(key: str) -> None:
        with lock:
            errors[key] = errors.get(key, 0) + 1

    def loop(window: str, token: str, seed: int) -> None:
        rnd = random.Random(seed)
        c = Client(base, token)
        c.conn.connect()
        prefix = f"/api/v1/halls/{hall}/windows/{window}"
        ready.wait()
        t_next = time.perf_counter() + (rnd.uniform(0, period) if period else 0)
        for _ in range(cycles):
            if period:
                delay = t_next - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t_next += period * rnd.uniform(0.8, 1.2)
            t0 = time.perf_counter()
            status, body = c.post(f"{prefix}/call-next")
            t1 = time.perf_counter()
            if status != 200:
                err(f"call-next {status} {(body or {}).get('error', {}).get('code')}")
                continue
            if body["ticket"] is None:
                err("pool empty")
                break
            with lock:
                records.append((window, body["ticket"]["id"], t0, t1, c.sent))
            for action, payload in (("start", None), ("finish", {"outcome": "instant"})):
                status, body = c.post(f"{prefix}/{action}", payload)
                if status != 200:
                    err(f"{action} {status} {(body or {}).get('error', {}).get('code')}")
            with lock:
                cycle.append(time.perf_counter() - t0)
        c.close()

    ts = [threading.Thread(target=loop, args=w, daemon=True) for w in windows]
    for t in ts:
        t.start()
    ready.wait(timeout=30)  # every connection open
    barrier.wait(timeout=60)  # every process ready
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    for t in ts:
        t.join()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    results.put({"records": records, "cycle": cycle, "errors": errors,
                 "cpu": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)})


def call_latency(base: str, hall: str, clerk_tokens: dict[str, str], cycles: int, period: float | None,
                 cpu_probe: Any, listener: Listener, db_cpu: Any, processes: int = 4) -> Calls:
    """Every staffed window loops call-next -> start -> finish `cycles` times; `period` None means back to
    back (saturation), otherwise one cycle per `period` seconds per window with a random phase. The
    windows are spread over `processes` client processes (clerks sit at different PCs: one Python
    process for all of them would add its own GIL waits to the latencies); the listener stays here.
    Times are ``time.perf_counter()``, the system-wide monotonic clock, in every process."""
    from .server import machine_cpu

    ctx = mp.get_context("spawn")
    windows = [(w, tok, i) for i, (w, tok) in enumerate(sorted(clerk_tokens.items(), key=lambda kv: int(kv[0])))]
    groups = [windows[k::processes] for k in range(processes) if windows[k::processes]]
    barrier = ctx.Barrier(len(groups) + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_clerk_worker, daemon=True, args=(base, hall, g, cycles, period, barrier, results))
             for g in groups]
    for p in procs:
        p.start()
    barrier.wait(timeout=90)
    db_cpu.start()
    s0, m0 = cpu_probe(), machine_cpu()
    start = time.perf_counter()
    out = [results.get(timeout=900) for _ in procs]
    secs = time.perf_counter() - start
    s1, m1 = cpu_probe(), machine_cpu()
    dbs = db_cpu.stop()
    for p in procs:
        p.join(timeout=10)
    records = [tuple(r) for o in out for r in o["records"]]
    cycle = [x for o in out for x in o["cycle"]]
    errors: dict[str, int] = {}
    for o in out:
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    client = sum(o["cpu"] for o in out)
    busy = (m1[0] - m0[0]) / max(1.0, m1[1] - m0[1])
    deadline = time.perf_counter() + 3  # let the last events arrive
    while time.perf_counter() < deadline and any(r[1] not in listener.received for r in records):
        time.sleep(0.01)
    if os.environ.get("BENCH_RECORDS"):  # diagnostics (bench.lag): every call with its times
        with open(os.environ["BENCH_RECORDS"], "w") as f:
            json.dump([[*r, listener.received.get(r[1])] for r in records], f)
    ev = [listener.received[r[1]] - r[2] for r in records if r[1] in listener.received]
    ev_resp = [listener.received[r[1]] - r[3] for r in records if r[1] in listener.received]
    ev_resp_ms = {k: v for k, v in summary_ms(ev_resp).items()}
    return Calls(mode="saturated" if period is None else f"paced {period:g} s", windows=len(clerk_tokens),
                 calls=len(records), seconds=secs, call_next_ms=summary_ms([r[3] - r[2] for r in records]),
                 event_ms=summary_ms(ev), event_after_response_ms=ev_resp_ms,
                 events_missing=sum(1 for r in records if r[1] not in listener.received),
                 cycle_ms=summary_ms(cycle), server_cpu_s=s1 - s0,
                 machine_busy=busy, errors=errors, transport=listener.transport, client_cpu_s=client,
                 db_cpu_s=dbs, other_cores=max(0.0, busy * (os.cpu_count() or 1) - (s1 - s0 + client + dbs) / secs))


def sign_in_all(base: str, hall: str, clerk_tokens: dict[str, str]) -> None:
    for window, token in clerk_tokens.items():
        c = Client(base, token)
        status, body = c.post(f"/api/v1/halls/{hall}/windows/{window}/sign-in")
        c.close()
        if status != 200:
            raise RuntimeError(f"sign-in of window {window} failed: {status} {body}")


def warm_up(base: str, hall: str, kiosk_token: str, queues: list[str], n: int = 60) -> None:
    """The first requests compile SQL and import lazily; keep them out of the measurements."""
    c = Client(base, kiosk_token)
    for k in range(n):
        status, body = c.post(f"/api/v1/halls/{hall}/tickets",
                              {"request_id": f"warm-{uuid.uuid4().hex}", "channel": "kiosk", "queue": queues[k % len(queues)]})
        if status != 201:
            raise RuntimeError(f"warm-up issue failed: {status} {body}")
    c.close()

"""``hall simulate``: a discrete-event simulation of one hall day through the real queue engine.

Citizens arrive on a two-peak curve (morning and afternoon), take numbers with
:meth:`QueueService.issue`, and clerks call, start and finish them through the same
:class:`~hall_server.service.QueueService` the server runs, on a SQLite file (or the PostgreSQL
given with ``--db``), with a controllable clock. Handling times are lognormal per queue; some
citizens are not there when called (recall, then no-show); each clerk takes a pause.

It answers "with N windows open, what is the wait?" and measures the wait estimate printed on the
ticket: for every called ticket, |estimate at issue - actual wait|, as a mean absolute error.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import heapq
import itertools
import json
import logging
import math
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, Callable, TextIO

from .config import HallConfig, parse_config
from .rules import estimate

log = logging.getLogger(__name__)

# (id, prefix, name, mean handling minutes, share of arrivals): a city centre's mix
QUEUE_MIX: list[tuple[str, str, str, float, float]] = [
    ("biz", "A", "企业开办", 14.0, 0.10),
    ("estate", "B", "不动产登记", 16.0, 0.12),
    ("social", "C", "社保", 6.0, 0.14),
    ("medical", "D", "医保", 6.0, 0.10),
    ("fund", "E", "公积金", 8.0, 0.09),
    ("tax", "F", "税务", 10.0, 0.12),
    ("police", "G", "户籍", 7.0, 0.08),
    ("exit", "H", "出入境", 9.0, 0.06),
    ("vehicle", "J", "车驾管", 8.0, 0.07),
    ("general", "K", "综合受理", 7.0, 0.07),
    ("pickup", "L", "出件", 3.0, 0.05),
]


def generate_config(windows: int = 301, *, general_share: float = 0.25, seed: int = 0) -> HallConfig:
    """A hall of ``windows`` windows (Huai'an's city hall has 301): windows are given to queues in
    proportion to their workload (arrivals x handling time); a quarter are general windows (综合窗口)
    serving their own queue first and three others after it."""
    rng = random.Random(seed)
    load = {q[0]: q[3] * q[4] for q in QUEUE_MIX}
    total = sum(load.values())
    n_general = int(round(windows * general_share))
    n_special = windows - n_general
    counts = {q: max(1, int(n_special * load[q] / total)) for q in load}
    while sum(counts.values()) < n_special:
        q = max(load, key=lambda k: load[k] / counts[k])
        counts[q] += 1
    while sum(counts.values()) > n_special:
        q = max(counts, key=lambda k: counts[k])
        counts[q] -= 1
    wins: list[dict[str, Any]] = []
    for q, c in counts.items():
        for _ in range(c):
            wins.append({"number": str(len(wins) + 1), "queues": [q], "kind": "专窗"})
    ids = [q[0] for q in QUEUE_MIX if q[0] != "pickup"]
    for _ in range(n_general):
        own = rng.choice(ids)
        others = rng.sample([i for i in ids if i != own], 3)
        wins.append({"number": str(len(wins) + 1), "queues": [own, *others], "kind": "综合窗口"})
    data = {"halls": [{
        "id": "sim", "name": f"模拟政务服务中心（{windows}个窗口）", "enforce_hours": False,
        "no_show_after_recalls": 1, "max_recalls": 2,
        "queues": [{"id": q, "prefix": p, "name": n, "default_handle_minutes": h, "target_wait_minutes": 20}
                   for q, p, n, h, _ in QUEUE_MIX],
        "windows": wins,
        "priority_classes": [{"id": "elderly", "name": "老年人优先"}],
    }]}
    return parse_config(data, "<generated>")


@dataclasses.dataclass
class Options:
    windows: int = 24
    tickets: int = 600
    seed: int = 1
    no_show: float = 0.05
    priority: float = 0.05
    pause_minutes: float = 12.0
    handle_sigma: float = 0.5  # of the lognormal: coefficient of variation ~0.53
    open_at: dt.time = dt.time(8, 30)
    last_ticket_at: dt.time = dt.time(16, 30)
    day: dt.date = dt.date(2026, 11, 23)
    db_url: str | None = None
    config: HallConfig | None = None
    hall_id: str | None = None
    open_windows: int | None = None  # staff only the first N windows of a given config


@dataclasses.dataclass
class TicketRecord:
    id: int
    queue: str
    issued: float
    estimate: float
    alternatives: dict[str, float]
    ahead: int
    priority: bool
    no_show: bool
    called: float | None = None


@dataclasses.dataclass
class Result:
    hall: str
    windows: int
    tickets: int
    served: int
    no_shows: int
    run_seconds: float
    cpu_seconds: float  # of this process: the wall time on a shared machine says less
    db: str
    per_queue: dict[str, dict[str, Any]]
    overall: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, indent=2)


class SimClock:
    def __init__(self, start: dt.datetime) -> None:
        self.t = start.timestamp()

    def __call__(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t, dt.timezone.utc)


def _arrival_times(rng: random.Random, n: int, start: float, end: float) -> list[float]:
    """Two peaks (about 09:45 and 14:45) on a steady base: 40 % / 35 % / 25 %."""
    span = end - start
    out = []
    while len(out) < n:
        u = rng.random()
        if u < 0.40:
            x = rng.gauss(start + 0.15 * span, 0.09 * span)
        elif u < 0.75:
            x = rng.gauss(start + 0.72 * span, 0.10 * span)
        else:
            x = rng.uniform(start, end)
        if start <= x < end:
            out.append(x)
    return sorted(out)


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)] if ordered else 0.0


def simulate(opts: Options, progress: Callable[[float, str], None] | None = None) -> Result:
    from .db import Database
    from .migrations import upgrade
    from .service import QueueService

    rng = random.Random(opts.seed)
    config = opts.config or generate_config(opts.windows, seed=opts.seed)
    hall = config.hall(opts.hall_id) if opts.hall_id else config.halls[0]
    tz = hall.tz
    open_at = dt.datetime.combine(opts.day, opts.open_at, tz).astimezone(dt.timezone.utc)
    last_at = dt.datetime.combine(opts.day, opts.last_ticket_at, tz).astimezone(dt.timezone.utc)
    tmp = None
    url = opts.db_url
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="hall-sim-")
        url = f"sqlite:///{tmp.name}/sim.db"
    upgrade(url)
    db = Database(url)
    clock = SimClock(open_at)
    svc = QueueService(config, db, b"simulation", clock=clock)
    svc.ESTIMATE_CACHE_SECONDS = 0.0  # the cache runs on wall time; simulated minutes pass in milliseconds
    svc.sync_state()

    windows = [w.number for w in hall.windows][: opts.open_windows or None]
    served_by = {w: hall.window_queues(w) for w in windows}
    queue_windows: dict[str, list[str]] = defaultdict(list)
    for w, qs in served_by.items():
        for q in qs:
            queue_windows[q].append(w)
    mix = {q[0]: q for q in QUEUE_MIX}
    handle_mean = {q.id: (mix[q.id][3] if q.id in mix else q.default_handle_minutes) * 60 for q in hall.queues}
    served_queues = [q.id for q in hall.queues if queue_windows.get(q.id)]
    weights = [mix[q][4] if q in mix else 1.0 for q in served_queues]

    events: list[tuple[float, int, str, Any]] = []
    seq = itertools.count()

    def push(at: float, kind: str, data: Any) -> None:
        heapq.heappush(events, (at, next(seq), kind, data))

    for i, at in enumerate(_arrival_times(rng, opts.tickets, open_at.timestamp(), last_at.timestamp())):
        push(at, "arrive", i)
    day_span = last_at.timestamp() - open_at.timestamp()
    for w in windows:
        svc.sign_in(hall.id, w, f"clerk{w}")
        push(open_at.timestamp(), "try", w)
        # one pause per clerk, spread over the day, taken after the service in progress
        push(open_at.timestamp() + rng.uniform(0.2, 0.8) * day_span, "pause_due", w)

    tickets: dict[int, TicketRecord] = {}
    current: dict[str, TicketRecord | None] = {w: None for w in windows}
    idle: set[str] = set()
    paused: set[str] = set()
    pause_due: set[str] = set()
    recent_calls: dict[str, deque[float]] = defaultdict(deque)  # call times per queue (rate estimator)
    recent_handling: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=20))
    n_done = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    last_progress = 0.0

    def share(q: str) -> float:
        counts = [len(served_by[w]) for w in queue_windows[q] if w not in paused]
        return estimate.window_share(counts)

    def alternatives(q: str, ahead: int, now: float) -> dict[str, float]:
        h = estimate.mean_handling(list(recent_handling[q]), handle_mean[q])
        n = share(q)
        free = sum(1 for w in queue_windows[q] if w in idle and w not in paused)
        calls = recent_calls[q]
        while calls and calls[0] < now - estimate.RATE_WINDOW_SECONDS:
            calls.popleft()
        return {
            "departures": estimate.estimate_wait_departures(ahead, h, n, free),
            "rate": estimate.estimate_wait_rate(ahead, len(calls), estimate.RATE_WINDOW_SECONDS, h, n, free),
        }

    while events:
        at, _, kind, data = heapq.heappop(events)
        clock.t = max(clock.t, at)
        now = clock.t
        if kind == "arrive":
            q = rng.choices(served_queues, weights)[0]
            prio = rng.random() < opts.priority
            r = svc.issue(hall.id, request_id=f"sim-{data}", channel="kiosk", queue=q,
                          priority_class="elderly" if prio else None)
            tickets[r.ticket.id] = TicketRecord(
                id=r.ticket.id, queue=q, issued=now, estimate=r.estimated_wait_seconds,
                alternatives=alternatives(q, r.people_ahead, now), ahead=r.people_ahead, priority=prio,
                no_show=rng.random() < opts.no_show)
            for w in queue_windows[q]:
                if w in idle:
                    idle.discard(w)
                    push(now, "try", w)
                    break
        elif kind == "try":
            w = data
            if current[w] is not None or w in paused:
                continue
            if w in pause_due:
                pause_due.discard(w)
                paused.add(w)
                svc.pause(hall.id, w, "休息")
                push(now + rng.lognormvariate(math.log(opts.pause_minutes * 60), 0.3), "resume", w)
                continue
            view = svc.call_next(hall.id, w)
            if view is None:
                idle.add(w)
                continue
            rec = tickets[view.id]
            rec.called = now
            current[w] = rec
            recent_calls[rec.queue].append(now)
            if rec.no_show:
                push(now + 45, "recall", w)
            else:
                handling = rng.lognormvariate(math.log(handle_mean[rec.queue]) - opts.handle_sigma ** 2 / 2,
                                              opts.handle_sigma)
                walk = min(rng.uniform(15, 60), handling / 2)
                push(now + walk, "start", w)
                push(now + max(handling, walk + 5), "finish", (w, handling))
        elif kind == "start":
            svc.start(hall.id, data)
        elif kind == "recall":
            svc.recall(hall.id, data)
            push(now + 45, "no_show", data)
        elif kind == "no_show":
            svc.no_show(hall.id, data)
            current[data] = None
            n_done += 1
            push(now, "try", data)
        elif kind == "finish":
            w, handling = data
            rec = current[w]
            assert rec is not None
            svc.finish(hall.id, w, "instant" if rng.random() < 0.3 else "promised")
            recent_handling[rec.queue].append(handling)
            current[w] = None
            n_done += 1
            push(now, "try", w)
        elif kind == "pause_due":
            pause_due.add(data)
            if data in idle:
                idle.discard(data)
                push(now, "try", data)
        elif kind == "resume":
            paused.discard(data)
            svc.resume(hall.id, data)
            push(now, "try", data)
        if progress is not None and time.perf_counter() - last_progress > 0.5:
            last_progress = time.perf_counter()
            local = dt.datetime.fromtimestamp(now, tz)
            progress(n_done / max(1, opts.tickets),
                     f"{local:%H:%M} 已取号 {len(tickets)} 已办结/过号 {n_done}/{opts.tickets} "
                     f"用时 {last_progress - started:.0f}s")
    run_seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    db.dispose()
    if tmp is not None:
        tmp.cleanup()
    return _summarise(hall.id, len(windows), tickets, run_seconds, cpu_seconds,
                      url if opts.db_url else "sqlite (temporary file)",
                      {q.id: q.target_wait_minutes * 60 for q in hall.queues}, {q.id: q.name for q in hall.queues})


def _summarise(hall: str, n_windows: int, tickets: dict[int, TicketRecord], run_seconds: float,
               cpu_seconds: float, db: str,
               targets: dict[str, float], names: dict[str, str]) -> Result:
    def stats(recs: list[TicketRecord], target: float | None) -> dict[str, Any]:
        called = [r for r in recs if r.called is not None]
        waits = [r.called - r.issued for r in called]  # type: ignore[operator]
        out: dict[str, Any] = {
            "tickets": len(recs), "no_shows": sum(r.no_show for r in recs),
            "wait_mean_min": statistics.fmean(waits) / 60 if waits else 0.0,
            "wait_p90_min": _p90(waits) / 60, "wait_max_min": max(waits, default=0.0) / 60,
            "mae_min": statistics.fmean(abs(r.estimate - w) for r, w in zip(called, waits)) / 60 if waits else 0.0,
            "bias_min": statistics.fmean(r.estimate - w for r, w in zip(called, waits)) / 60 if waits else 0.0,
        }
        for name in ("departures", "rate"):
            out[f"mae_{name}_min"] = (statistics.fmean(abs(r.alternatives[name] - w) for r, w in zip(called, waits)) / 60
                                      if waits else 0.0)
        if target is not None:
            out["within_target"] = sum(w <= target for w in waits) / len(waits) if waits else None
        else:
            out["within_target"] = (sum(w <= targets[r.queue] for r, w in zip(called, waits)) / len(waits)
                                    if waits else None)
        return out

    by_queue: dict[str, list[TicketRecord]] = defaultdict(list)
    for r in tickets.values():
        by_queue[r.queue].append(r)
    per_queue = {q: {"name": names.get(q, q), **stats(recs, targets.get(q))} for q, recs in by_queue.items()}
    overall = stats(list(tickets.values()), None)
    return Result(hall=hall, windows=n_windows, tickets=len(tickets), served=len(tickets) - overall["no_shows"],
                  no_shows=overall["no_shows"], run_seconds=run_seconds, cpu_seconds=cpu_seconds, db=db,
                  per_queue=per_queue, overall=overall)


def format_result(r: Result) -> str:
    lines = [f"大厅 {r.hall}: {r.windows} 个窗口, {r.tickets} 张票 (过号 {r.no_shows}), 用时 {r.run_seconds:.1f}s "
             f"(CPU {r.cpu_seconds:.1f}s), {r.db}",
             "", f"{'队列':<10}{'票数':>6}{'平均等候':>10}{'P90等候':>10}{'最长等候':>10}{'达标率':>8}"
             f"{'预估误差MAE':>12}{'偏差':>8}   (分钟)"]

    def line(name: str, s: dict[str, Any]) -> str:
        wt = f"{s['within_target'] * 100:.0f}%" if s["within_target"] is not None else "-"
        return (f"{name:<10}{s['tickets']:>6}{s['wait_mean_min']:>10.1f}{s['wait_p90_min']:>10.1f}"
                f"{s['wait_max_min']:>10.1f}{wt:>8}{s['mae_min']:>12.1f}{s['bias_min']:>8.1f}")

    for q, s in sorted(r.per_queue.items()):
        lines.append(line(s["name"], s))
    lines.append(line("全厅", r.overall))
    o = r.overall
    lines.append("")
    lines.append(f"预估误差 (MAE, 分钟): 现用 {o['mae_min']:.2f}; 对照: 按离开人次 {o['mae_departures_min']:.2f}, "
                 f"按近30分钟叫号速率 {o['mae_rate_min']:.2f}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--windows", type=int, default=24,
                   help="windows of a generated hall (default 24; Huai'an's city hall: 301)")
    p.add_argument("--tickets", type=int, default=600, help="tickets in the day (default 600)")
    p.add_argument("--hall", help="simulate this hall of the -c config instead of a generated one")
    p.add_argument("--open", type=int, dest="open_windows", help="with --hall: staff only the first N windows")
    p.add_argument("--no-show", type=float, default=0.05, help="share of citizens absent when called")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def run_cli(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    config = None
    if args.hall:
        from .cli import _config

        config = _config(args)
    opts = Options(windows=args.windows, tickets=args.tickets, seed=args.seed, no_show=args.no_show,
                   db_url=args.db, config=config, hall_id=args.hall, open_windows=args.open_windows)

    def progress(frac: float, text: str) -> None:
        print(f"\r[{'#' * int(frac * 30):<30}] {text}", end="", file=sys.stderr, flush=True)

    logging.getLogger("hall_server").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    result = simulate(opts, None if args.quiet else progress)
    if not args.quiet:
        print(file=sys.stderr)
    print(format_result(result), file=out)
    if args.json:
        Path(args.json).write_text(result.to_json(), encoding="utf-8")
    return 0

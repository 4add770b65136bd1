"""Sampling the server with py-spy during one phase and summarising where the time goes."""
from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from pathlib import Path


class Profiler:
    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if exe is None:
            raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
        # idle threads (the socket readers, the day keeper) are left out; -t adds thread names
        self.proc = subprocess.Popen([exe, "record", "-p", str(pid), "-r", "250", "--gil", "--format", "raw", "-o", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists():
            return f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}"
        return summarise(self.out)


GROUPS = [  # (label, substring of a frame "function (file:line)") — first match from the leaf upwards wins
    ("SQLite / PostgreSQL driver (execute, fetch, commit)", ("sqlite3", "psycopg/", "psycopg_binary", "do_execute", "do_commit", "do_begin")),
    ("argon2 (login only)", ("argon2",)),
    ("pydantic validation / serialisation", ("pydantic",)),
    ("SQLAlchemy ORM / Core (Python side)", ("sqlalchemy/",)),
    ("Flask / Werkzeug / flask-openapi3 / gunicorn", ("flask/", "werkzeug/", "flask_openapi3", "gunicorn/")),
    ("Socket.IO / engine.io / simple-websocket", ("socketio/", "engineio/", "simple_websocket", "wsproto")),
    ("hall_server (own code)", ("hall_server/",)),
    ("json", ("json/",)),
    ("socket I/O, select, threading", ("socket.py", "selectors.py", "threading.py", "socketserver.py", "queue.py")),
]


def summarise(path: Path, top: int = 15) -> str:
    """Top frames by self time and a rough split of the samples by layer (leaf-most match)."""
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    layers: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        leaf = frames[-1]
        # samples of idle threads waiting for work are not server work
        if any(k in leaf for k in ("wait (threading.py", "select (selectors.py", "_worker (concurrent", "get (queue.py",
                                   "poll (selectors.py", "accept (socket.py", "recv_into", "readinto (socket.py",
                                   "sleep", "_wait_for_tstate_lock")):
            continue
        total += n
        self_t[leaf] += n
        for f in set(frames):
            incl[f] += n
        for f in reversed(frames):
            label = next((lbl for lbl, keys in GROUPS if any(k in f for k in keys)), None)
            if label:
                layers[label] += n
                break
        else:
            layers["other"] += n
    if not total:
        return "no busy samples"
    out = [f"busy samples: {total}", "", "| layer (leaf-most frame) | share |", "|---|---:|"]
    out += [f"| {k} | {100 * v / total:.0f}% |" for k, v in layers.most_common()]
    out += ["", "| top self-time frames | share |", "|---|---:|"]
    out += [f"| `{k[:110]}` | {100 * v / total:.1f}% |" for k, v in self_t.most_common(top)]
    hs = [(k, v) for k, v in incl.most_common(400) if "hall_server/" in k][:top]
    out += ["", "| hall_server functions, inclusive | share |", "|---|---:|"]
    out += [f"| `{k[:110]}` | {100 * v / total:.1f}% |" for k, v in hs]
    return "\n".join(out)

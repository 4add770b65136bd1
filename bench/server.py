"""Preparing the benchmark database and running the server under test as a separate process."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

from hall_server.ports import free_port

from .config import CLERKS, HALL, KIOSKS, PASSWORD, QUEUES, SECRET, WINDOWS, bench_config
from .history import seed_history

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# gunicorn's worker on gevent's own HTTP server (pywsgi), as in production (hall_server/wsgi.py): 0.1 ms
# less server CPU per request than `-k gevent`, gunicorn's parser on gevent (docs/benchmarks.md, fifth round)
GEVENT_WORKER = "gevent_pywsgi"
PG_DB = os.environ.get("BENCH_PG_DB", "bench")  # never the tests' database `test`; another for a parallel run
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pg_url(name: str = PG_DB) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def fresh_database(kind: str, workdir: Path, name: str = PG_DB) -> str:
    """An empty database for one run: a new SQLite file, or PostgreSQL database ``name`` with its
    schema dropped. Each benchmark has its own ``name`` so two can run at once."""
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{workdir}/hall.db{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{workdir}/hall.db"
    if name in ("test", "postgres"):
        raise ValueError(f"refusing to drop the schema of database {name!r}")
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = pg_url(name)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


@dataclass
class Tokens:
    clerks: dict[str, str] = field(default_factory=dict)  # window number -> clerk's bearer token
    kiosks: list[str] = field(default_factory=list)


def prepare(url: str) -> Tokens:
    """Schema, state rows and users as `hall db upgrade` makes them; passwords, sign-ins and kiosk tokens."""
    from hall_server.app import create_app, prepare_database

    app, _ = create_app(bench_config(url), database_url=url, redis_url="", secret=SECRET)
    prepare_database(app)
    seed_history(url, HALL, [(q, p) for q, p, _ in QUEUES], WINDOWS)
    auth = app.extensions["hall"]["auth"]
    tokens = Tokens()
    for i, clerk in enumerate(CLERKS, start=1):
        auth.set_password(clerk, PASSWORD, one_time=False)
        tokens.clerks[str(i)] = auth.login(clerk, PASSWORD)[0]
    tokens.kiosks = [auth.device_token(HALL, k) for k in KIOSKS]
    app.extensions["hall"]["db"].dispose()
    return tokens


def proc_tree_cpu(pid: int) -> float:
    """CPU seconds (user+system) used so far by pid and its live descendants (gunicorn's worker)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(p, []))
    return total


def _pid_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


class PgCpu:
    """CPU seconds used by the PostgreSQL processes serving database `bench` (backends) and the shared
    auxiliary processes (WAL writer, checkpointer...); 0 for SQLite, whose work is inside the server."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool) if url.startswith("postgresql") else None
        self._start: dict[int, float] = {}

    def _pids(self) -> list[int]:
        if self.engine is None:
            return []
        with self.engine.connect() as c:
            return [r[0] for r in c.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE (datname = :d OR datname IS NULL) AND pid <> pg_backend_pid()"),
                {"d": PG_DB})]

    def start(self) -> None:
        self._start = {p: _pid_cpu(p) for p in self._pids()}

    def stop(self) -> float:
        return sum(max(0.0, _pid_cpu(p) - self._start.get(p, 0.0)) for p in self._pids())


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return float(sum(vals) - idle), float(sum(vals))


class Server:
    """The real server in its own process on a free localhost port."""

    def __init__(self, kind: str, url: str, workdir: Path, threads: int = 32, workers: int = 1) -> None:
        self.kind, self.url, self.workdir, self.threads, self.workers = kind, url, workdir, threads, workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.kind == "werkzeug":
            return [sys.executable, "-m", "bench.serve", "--port", str(self.port)]
        gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or shutil.which("gunicorn")
        if gunicorn is None:
            raise SystemExit("gunicorn is not installed: .venv/bin/pip install gunicorn (or use --server werkzeug)")
        worker = ["-k", GEVENT_WORKER] if self.kind == "gevent" else ["-k", "gthread", "--threads", str(self.threads)]
        return [gunicorn, "-w", str(self.workers), *worker, "-b", f"127.0.0.1:{self.port}",
                "--log-level", "warning", "--graceful-timeout", "2", "bench.serve:wsgi()"]

    def start(self) -> "Server":
        env = {**os.environ, "BENCH_DB_URL": self.url, "PYTHONPATH": str(ROOT),
               "BENCH_ASYNC_MODE": "gevent" if self.kind == "gevent" else "threading"}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz within 30 s:\n{self.tail()}")

    def worker_pid(self) -> int:
        """The process that serves requests (gunicorn's single worker, or the Werkzeug process)."""
        assert self.proc is not None
        if self.kind == "werkzeug":
            return self.proc.pid
        kids = [int(d) for d in os.listdir("/proc") if d.isdigit() and _ppid(int(d)) == self.proc.pid]
        return kids[0] if kids else self.proc.pid

    def cpu(self) -> float:
        assert self.proc is not None
        return proc_tree_cpu(self.proc.pid)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # our own process group (start_new_session)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def server_command(stack: str, port: int, factory: str, werkzeug: list[str]) -> list[str]:
    """The command line of a server under test: ``werkzeug`` (the given command plus ``--port``, as
    ``hall serve``) or ``gevent`` (gunicorn's gevent pywsgi worker with the app ``factory``, as in production)."""
    if stack == "werkzeug":
        return [*werkzeug, "--port", str(port)]
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    chdir: list[str] = []
    if os.environ.get("BENCH_DIAG") and factory == "hall_server.wsgi:app()":
        factory = "bench.lag:production_app()"  # the same app, with request times and loop stalls recorded
        chdir = ["--chdir", str(ROOT)]  # where `bench` can be imported from
    return [gunicorn, *chdir, "-w", "1", "-k", GEVENT_WORKER, "--worker-connections", "1000", "-b", f"127.0.0.1:{port}",
            "--log-level", "warning", "--graceful-timeout", "2", factory]

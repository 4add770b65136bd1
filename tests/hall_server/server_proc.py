"""Start real `hall serve` processes for tests that cross HTTP and Socket.IO."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from hall_server.ports import free_port

HERE = Path(__file__).parent


_HALL_ALL = """
import contextlib, io, json, sys
from hall_server.cli import main
outputs = []
for argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    if rc:
        sys.exit(f"hall {' '.join(argv)}: exit {rc}")
    outputs.append(buf.getvalue())
print(json.dumps(outputs))
"""


class _PortTaken(RuntimeError):
    pass


class ServerProcess:
    def __init__(self, db_url: str, workdir: Path, *, redis_url: str = "", config: Path | None = None,
                 secret: str = "test-secret-shared", gunicorn: str = "") -> None:
        self.gunicorn = gunicorn  # a gunicorn worker class: the production stack (hall_server.wsgi), not `hall serve`
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config or HERE / "small_hall.toml"
        self.env = {**os.environ, "HALL_DATABASE_URL": db_url, "HALL_SECRET": secret, "HALL_REDIS_URL": redis_url,
                    "PYTHONUNBUFFERED": "1"}
        self.workdir = workdir
        self.log = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_once = False

    def hall(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "hall_server.cli", "-c", str(self.config), *args],
                             env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def hall_all(self, *commands: tuple[str, ...]) -> list[str]:
        """Several ``hall`` commands (as ``hall``), run one after the other by ``hall_server.cli.main`` in
        one process: each process spends ~3 s of CPU importing the server, which a test's set-up
        paid once per command."""
        argvs = [["-c", str(self.config), *c] for c in commands]
        out = subprocess.run([sys.executable, "-c", _HALL_ALL, json.dumps(argvs)], env=self.env, cwd=self.workdir,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]

    def start(self) -> "ServerProcess":
        """Start the server and wait for /healthz. Should another process take the port between
        ``free_port`` and the server's bind on a first start, try again on another port (a restart keeps
        its port: tests check clients come back to the same address)."""
        for attempt in range(3):
            try:
                return self._start()
            except _PortTaken:
                if self.started_once or attempt == 2:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self.log = self.workdir / f"server-{self.port}.log"
        raise AssertionError("unreachable")

    def _start(self) -> "ServerProcess":
        if self.gunicorn:
            worker = ["-k", "gthread", "--threads", "20"] if self.gunicorn == "gthread" else ["-k", self.gunicorn]
            cmd = [str(Path(sys.executable).parent / "gunicorn"), "-w", "1", *worker, "--graceful-timeout", "2",
                   "-b", f"127.0.0.1:{self.port}", "hall_server.wsgi:app()"]
        else:
            cmd = [sys.executable, "-m", "hall_server.cli", "-c", str(self.config), "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env={**self.env, "HALL_CONFIG": str(self.config)}, cwd=self.workdir,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log.read_text()
                if any(m in log for m in ("Address already in use", "in use by another program", "Connection in use")):
                    raise _PortTaken(f"port {self.port} taken: {log[-2000:]}")
                raise RuntimeError(f"server exited: {log[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    self.started_once = True
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

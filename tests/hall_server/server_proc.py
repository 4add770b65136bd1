"""Start real `hall serve` processes for tests that cross HTTP and Socket.IO."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def hall(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "hall_server.cli", "-c", str(self.config), *args],
                             env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def start(self) -> "ServerProcess":
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
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
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

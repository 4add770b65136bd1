"""`hall demo`: a complete simulated hall on SQLite, started by one command.

It loads examples/county.toml, keeps its database under var/demo, gives every demo account a known
password, starts the device simulators (examples/simulators.toml) when they are available, and runs
simulated citizens and clerks over the real HTTP API so the hall is alive from the first minute.
"""
from __future__ import annotations

import argparse
import logging
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from .config import HallConfig, load_config

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "hall-demo-2026"


def demo_config(workdir: Path, port: int) -> HallConfig:
    cfg = load_config(ROOT / "examples" / "county.toml")
    server = cfg.server.model_copy(update={
        "database_url": f"sqlite:///{workdir}/hall.db", "secret_file": str(workdir / "secret.key"), "port": port,
    })
    halls = [h.model_copy(update={"enforce_hours": False, "public_base_url": f"http://127.0.0.1:{port}"})
             for h in cfg.halls]
    return cfg.model_copy(update={"server": server, "halls": halls})


class DemoTraffic:
    """Simulated citizens at the kiosks and clerks at the first windows, through the real API."""

    def __init__(self, base: str, cfg: HallConfig, kiosk_tokens: dict[str, str], clerks: list[tuple[str, str]],
                 pace: float = 1.0) -> None:
        self.base = base
        self.hall = cfg.halls[0]
        self.kiosk_tokens = kiosk_tokens
        self.clerks = clerks  # (username, window)
        self.pace = pace
        self.stop = threading.Event()

    def _post(self, s: requests.Session, path: str, token: str, **body: Any) -> dict[str, Any] | None:
        r = s.post(f"{self.base}/api/v1{path}", json=body or None, headers={"Authorization": f"Bearer {token}"},
                   timeout=10)
        if r.status_code >= 400:
            log.debug("demo %s -> %s %s", path, r.status_code, r.text[:200])
            return None
        return r.json()

    def citizens(self) -> None:
        s = requests.Session()
        matters = [m.id for m in self.hall.matters if not m.needs_identity] or [None]
        while not self.stop.wait(random.expovariate(1 / (4.0 * self.pace))):
            kiosk, token = random.choice(list(self.kiosk_tokens.items()))
            r = self._post(s, f"/halls/{self.hall.id}/tickets", token, request_id=f"{kiosk}-{uuid.uuid4().hex}",
                           channel="kiosk", matter=random.choice(matters))
            if r:
                log.info("取号 %s %s（前面%d人，约%d分钟）", r["ticket"]["number"], r["ticket"]["queue_name"],
                         r["people_ahead"], r["estimated_wait_minutes"])

    def clerk(self, username: str, window: str) -> None:
        s = requests.Session()
        r = s.post(f"{self.base}/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}, timeout=10)
        token = r.json()["token"]
        self._post(s, f"/halls/{self.hall.id}/windows/{window}/sign-in", token)
        w = f"/halls/{self.hall.id}/windows/{window}"
        while not self.stop.is_set():
            called = self._post(s, f"{w}/call-next", token)
            if not called or not called.get("ticket"):
                self.stop.wait(3 * self.pace)
                continue
            log.info("%s号窗口叫号 %s", window, called["ticket"]["number"])
            self.stop.wait(random.uniform(3, 8) * self.pace)
            self._post(s, f"{w}/start", token)
            self.stop.wait(random.uniform(10, 40) * self.pace)
            self._post(s, f"{w}/finish", token, outcome=random.choice(["instant", "instant", "promised"]))

    def start(self) -> None:
        threading.Thread(target=self.citizens, name="demo-citizens", daemon=True).start()
        for username, window in self.clerks:
            threading.Thread(target=self.clerk, args=(username, window), name=f"demo-clerk-{window}",
                             daemon=True).start()


def _start_simulators(workdir: Path) -> Any:
    path = ROOT / "examples" / "simulators.toml"
    try:
        from simulators.hall_sim import SimulatorHall  # type: ignore[import-not-found]
    except ImportError:
        log.info("device simulators not available in this build")
        return None
    if not path.exists():
        return None
    try:
        sims = SimulatorHall.from_file(path)
        sims.start()
        return sims
    except Exception as exc:  # the hall runs without simulated devices
        log.warning("device simulators did not start: %s", exc)
        return None


def run_demo(args: argparse.Namespace) -> int:
    from .app import create_app, prepare_database
    from .cli import start_day_keeper

    workdir = Path(args.dir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(workdir, args.port)
    app, socketio = create_app(cfg)
    prepare_database(app)
    ext = app.extensions["hall"]
    ext["auth"].set_password("admin", DEMO_PASSWORD, one_time=False)
    for u in cfg.users:
        ext["auth"].set_password(u.username, DEMO_PASSWORD, one_time=False)
    county = cfg.halls[0]
    kiosks = {d.id: ext["auth"].device_token(county.id, d.id) for d in county.devices if d.kind == "kiosk"}
    (workdir / "kiosk-tokens.txt").write_text("".join(f"{k} {t}\n" for k, t in kiosks.items()), encoding="utf-8")
    sims = _start_simulators(workdir)
    clerks = [(u.username, w.number) for u, w in zip(
        [u for u in cfg.users if u.role == "clerk" and (u.halls == "*" or county.id in u.halls)], county.windows)]
    base = f"http://127.0.0.1:{args.port}"
    print("=" * 72)
    print(f" 模拟大厅已启动 (simulated hall): {county.name}")
    print(f"   API 文档 (OpenAPI):  {base}/api/v1/openapi.json")
    print(f"   大厅实时状态:        {base}/api/v1/halls/{county.id}/snapshot")
    print(f"   健康检查:            {base}/healthz")
    print(f"   登录账号: admin 及 {', '.join(u.username for u in cfg.users)}，密码均为 {DEMO_PASSWORD}")
    print(f"   自助机令牌 (kiosk tokens): {workdir / 'kiosk-tokens.txt'}")
    if sims is not None:
        print(f"   设备模拟器 (simulators): {len(getattr(sims, 'endpoints', {}))} 台，见日志")
    print(f"   模拟取号与叫号: {len(clerks)} 个窗口 (demo traffic); Ctrl-C 结束")
    print("=" * 72, flush=True)
    if not args.quiet_traffic:
        DemoTraffic(base, cfg, kiosks, clerks[:6]).start()
    start_day_keeper(app)
    try:
        socketio.run(app, host="127.0.0.1", port=args.port, allow_unsafe_werkzeug=True, log_output=False,
                     use_reloader=False)
    finally:
        if sims is not None:
            sims.stop()
    return 0

"""`hall demo`: a complete simulated hall on SQLite, started by one command.

It loads examples/county.toml, keeps its database under var/demo, gives every demo account a known
password, starts the device simulators (examples/simulators.toml) when they are available, the device
gateway as its own process on the simulated hall bus (LED boards, caller pads, evaluation pads; the
announcements are written as WAV files under var/demo/voice), and runs simulated citizens and clerks
over the real HTTP API so the hall is alive from the first minute.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import requests

from .config import HallConfig, load_config
from .ports import free_port

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
        try:
            r = s.post(f"{self.base}/api/v1{path}", json=body or None, headers={"Authorization": f"Bearer {token}"},
                       timeout=10)
        except requests.RequestException as exc:  # server not up yet, or restarting
            log.debug("demo %s -> %s", path, exc)
            return None
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
        while True:  # the server may not be listening yet: the demo starts its helpers first
            try:
                r = s.post(f"{self.base}/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD},
                           timeout=10)
                token = r.json()["token"]
                break
            except (requests.RequestException, ValueError, KeyError):
                if self.stop.wait(1.0):
                    return
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


def _start_simulators(path: Path) -> Any:
    try:
        from simulators.hall_sim import SimulatorHall  # type: ignore[import-not-found]
    except ImportError:
        log.info("device simulators not available in this build")
        return None
    if not path.exists():
        log.warning("no simulator file %s: the hall runs without simulated devices", path)
        return None
    try:
        sims = SimulatorHall.from_file(path)
        sims.start()
        return sims
    except Exception as exc:  # the hall runs without simulated devices
        log.warning("device simulators did not start: %s", exc)
        return None


def _start_gateway(workdir: Path, sims: Any, cfg: HallConfig, tokens: dict[str, str], port: int) -> Any:
    """The device gateway as its own process (as in a real hall), on the simulated hall bus: it
    reconnects to the server by itself, so it may start before the server listens."""
    import subprocess
    import sys

    from .gateway.run import buses_from_endpoints, gateway_toml

    if sims is None:
        return None
    county = cfg.halls[0]
    buses = buses_from_endpoints(sims.endpoints_doc(), {d.id for d in county.devices})
    if not buses:
        log.info("no simulated hall bus: the gateway is not started")
        return None
    tokens_file = workdir / "gateway-tokens.txt"
    tokens_file.write_text("".join(f"{k} {t}\n" for k, t in tokens.items()), encoding="utf-8")
    os.chmod(tokens_file, 0o600)
    path = workdir / "gateway.toml"
    path.write_text(gateway_toml(
        server=f"http://127.0.0.1:{port}", hall=county.id, device="gateway-1", buses=buses,
        tokens_file=str(tokens_file), state_file=str(workdir / "gateway-state.json"),
        voice={"player": "file", "folder": str(workdir / "voice"), "cache_dir": str(workdir / "voice-cache"),
               "pace": 1.0, "repeat": 2}), encoding="utf-8")
    log_file = (workdir / "gateway.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "hall_server.cli", "gateway", str(path)],
                            stdout=log_file, stderr=subprocess.STDOUT)


def _start_kiosks(workdir: Path, sims: Any, cfg: HallConfig, kiosk_tokens: dict[str, str], port: int,
                  first_ui_port: int) -> list[Any]:
    """One kiosk client per simulated kiosk, each its own process as on a real kiosk PC, owning the
    simulated reader and printer of examples/simulators.toml (kiosk1.reader / kiosk1.printer for
    kiosk-1), its touch UI on ``first_ui_port``, the next port, ... (0: any free ports). Returns
    [(device id, touch UI URL, process)]."""
    import subprocess
    import sys

    if sims is None:
        return []
    started = []
    for i, (device_id, token) in enumerate(sorted(kiosk_tokens.items())):
        n = device_id.rsplit("-", 1)[-1]
        reader, printer = sims.endpoints.get(f"kiosk{n}.reader"), sims.endpoints.get(f"kiosk{n}.printer")
        if reader is None or printer is None or not reader.tcp or not printer.tcp:
            log.info("no simulated reader/printer for %s: its kiosk client is not started", device_id)
            continue
        token_file = workdir / f"{device_id}.token"
        token_file.write_text(token, encoding="utf-8")
        os.chmod(token_file, 0o600)
        ui_port = first_ui_port + i if first_ui_port else free_port()
        log_file = (workdir / f"{device_id}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk_client", "--server", f"http://127.0.0.1:{port}", "--hall", cfg.halls[0].id,
             "--device", device_id, "--token-file", str(token_file), "--reader", reader.tcp, "--printer", printer.tcp,
             "--port", str(ui_port), "--state-dir", str(workdir / device_id)],
            stdout=log_file, stderr=subprocess.STDOUT)
        started.append((device_id, f"http://127.0.0.1:{ui_port}/", proc))
    return started


def run_demo(args: argparse.Namespace) -> int:
    from .app import create_app, prepare_database
    from .cli import run_werkzeug, start_serving

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
    sims = _start_simulators(Path(args.simulators) if args.simulators else ROOT / "examples" / "simulators.toml")
    pad_tokens = {d.id: ext["auth"].device_token(county.id, d.id) for d in county.devices
                  if d.kind in ("gateway", "evalpad")}
    gateway = _start_gateway(workdir, sims, cfg, pad_tokens, args.port)
    kiosks_ui = _start_kiosks(workdir, sims, cfg, kiosks, args.port, args.kiosk_port)
    clerks = [(u.username, w.number) for u, w in zip(
        [u for u in cfg.users if u.role == "clerk" and (u.halls == "*" or county.id in u.halls)], county.windows)]
    base = f"http://127.0.0.1:{args.port}"
    print("=" * 72)
    print(f" 模拟大厅已启动 (simulated hall): {county.name}")
    print(f"   窗口工作台 (clerk console): {base}/clerk   （用窗口人员账号登录）")
    print(f"   大厅叫号屏 (hall screen):   {base}/screen/{county.id}")
    print(f"   管理看板 (manager dashboard): {base}/manager   （用管理员账号登录，如 admin）")
    for device_id, url, _proc in kiosks_ui:
        print(f"   自助取号机 {device_id} (kiosk):  {url}")
    print(f"   网上预约 (booking):  {base}/book/{county.id}    导服台 (guide desk): {base}/guide/{county.id}")
    print(f"   API 文档 (OpenAPI):  {base}/api/v1/openapi.json")
    print(f"   大厅实时状态:        {base}/api/v1/halls/{county.id}/snapshot")
    print(f"   健康检查:            {base}/healthz")
    print(f"   登录账号: admin 及 {', '.join(u.username for u in cfg.users)}，密码均为 {DEMO_PASSWORD}")
    print(f"   自助机令牌 (kiosk tokens): {workdir / 'kiosk-tokens.txt'}")
    if sims is not None:
        print(f"   设备模拟器 (simulators): {len(getattr(sims, 'endpoints', {}))} 台；LED 屏/呼叫器/评价器: "
              f"hall-sim ctl show bus1 / ctl press bus1 101 call_next")
    if gateway is not None:
        print(f"   设备网关 (gateway, pid {gateway.pid}): 日志 {workdir / 'gateway.log'}，"
              f"叫号语音 WAV 写入 {workdir / 'voice'}")
    print(f"   模拟取号与叫号: {len(clerks)} 个窗口 (demo traffic); Ctrl-C 结束")
    print("=" * 72, flush=True)
    if not args.quiet_traffic:
        DemoTraffic(base, cfg, kiosks, clerks[:6]).start()
    start_serving(app)
    # `kill`, `timeout` and service managers send SIGTERM: stop the gateway, kiosks and simulators too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_werkzeug(socketio, app, "127.0.0.1", args.port)
    finally:
        for proc in [gateway, *(k[2] for k in kiosks_ui)]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except Exception:  # noqa: BLE001 - it had its chance
                    proc.kill()
        if sims is not None:
            sims.stop()
    return 0

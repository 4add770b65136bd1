"""`make demo` runs `hall demo`: a complete simulated hall comes up, lives, and goes away on Ctrl-C.

The demo's fixed ports (server 5000, simulators 7101-7299, kiosk touch UIs 8701-) are moved to free
ones here, so the test runs beside a demo someone has open; everything else is what `make demo` runs.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from hall_server.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (the gateway and the kiosk clients)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(what: str, check, timeout: float, proc: subprocess.Popen[str], out: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the demo exited ({proc.returncode}) before {what}:\n{out.read_text()[-3000:]}")
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"no {what} within {timeout:.0f} s:\n{out.read_text()[-3000:]}")


def test_the_demo_hall_comes_up_with_devices_and_traffic_and_stops_cleanly(tmp_path: Path) -> None:
    sims = (ROOT / "examples" / "simulators.toml").read_text(encoding="utf-8")
    sims = re.sub(r"(?m)^(tcp_port|control_port) = \d+", r"\1 = 0", sims)
    (tmp_path / "simulators.toml").write_text(sims, encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out = tmp_path / "demo.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hall_server.cli", "demo", "--port", str(port), "--dir", str(tmp_path / "demo"),
             "--simulators", str(tmp_path / "simulators.toml"), "--kiosk-port", "0"],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for("answer on /healthz", lambda: requests.get(f"{base}/healthz", timeout=2).ok, 60, proc, out)
        banner = out.read_text()
        assert "模拟大厅已启动" in banner and f"{base}/clerk" in banner

        # the simulated citizens take tickets and the simulated clerks call them, over the real API
        def called() -> list[dict]:  # type: ignore[type-arg]
            snap = requests.get(f"{base}/api/v1/halls/jinhu/snapshot", timeout=5).json()
            return [w for w in snap["windows"] if w.get("ticket")]
        _wait_for("ticket called at a window", called, 60, proc, out)

        # the device gateway, its own process on the simulated hall bus, announced a call
        voice = tmp_path / "demo" / "voice"
        _wait_for("announcement written by the gateway", lambda: list(voice.glob("*.wav")), 60, proc, out)

        # every kiosk the banner lists serves its touch UI
        kiosks = re.findall(r"自助取号机 (\S+) \(kiosk\):\s+(\S+)", out.read_text())
        assert kiosks, out.read_text()
        for device, url in kiosks:
            page = _wait_for(f"touch UI of {device}", lambda url=url: requests.get(url, timeout=5), 30, proc, out)
            assert page.status_code == 200 and "取号" in page.text, (device, page.status_code)

        helpers = _children(proc.pid)
        assert len(helpers) >= 1 + len(kiosks)  # the gateway and the kiosk clients
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, out.read_text()[-3000:]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in helpers if _alive(p)], "the demo left its helper processes running"
    assert "Traceback" not in out.read_text(), out.read_text()[-3000:]

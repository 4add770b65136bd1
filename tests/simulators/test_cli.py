"""`hall-sim run` as a real process: the real drivers against its published pty and TCP endpoints,
events injected with `hall-sim ctl`, bad configs, SIGTERM. Plus the in-process SimulatorHall API."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from device_drivers.caller_pad import CallerKey, CallerPad
from device_drivers.escpos_printer import EscPosPrinter, PaperStatus, TicketSlip
from device_drivers.eval_pad import EvalOutcome, EvalPad, EvalPrompt, Grade
from device_drivers.hallbus_master import HallBusMaster
from device_drivers.led_board import WindowLedBoard
from device_drivers.sam import SamReader
from hall_server.ports import free_port
from simulators.hall_sim import ConfigError, SimulatorHall, load_config

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
HALL_SIM = Path(sys.executable).with_name("hall-sim")
RUN = [str(HALL_SIM)] if HALL_SIM.exists() else [sys.executable, "-m", "simulators"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def closed_port() -> int:
    """A port nobody listens on (the pcsc card must be skipped, whether or not pcscd runs here)."""
    return free_port()


def config_text(vpcd_port: int) -> str:
    return f"""
hall = "jinhu"
control_port = 0

[[sim]]
name = "kiosk1.reader"
kind = "sam"
tcp_port = 0

[[sim]]
name = "kiosk1.printer"
kind = "escpos"
tcp_port = 0

[[sim]]
name = "bus1"
kind = "hallbus"
tcp_port = 0
[sim.options]
devices = [
  {{ address = 1, type = "led", id = "led-1", window = 1 }},
  {{ address = 99, type = "composite", id = "led-hall" }},
  {{ address = 101, type = "caller", id = "caller-1", window = 1 }},
  {{ address = 151, type = "evalpad", id = "evalpad-1", window = 1 }},
]

[[sim]]
name = "card1"
kind = "pcsc_card"
options = {{ port = {vpcd_port} }}
"""


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    endpoints: dict
    endpoints_file: Path
    out: Path
    err: Path

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([*RUN, "ctl", "--endpoints", str(self.endpoints_file), *args],
                             capture_output=True, text=True, timeout=15, env=ENV)
        if check:
            assert res.returncode == 0, res.stderr
        return res

    def sim(self, name: str) -> dict:
        return self.endpoints["sims"][name]


def wait_until(pred, timeout: float = 5.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("hallsim")
    cfg = tmp / "sims.toml"
    cfg.write_text(config_text(closed_port()), encoding="utf-8")
    ep = tmp / "endpoints.json"
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([*RUN, "run", str(cfg), "--endpoints", str(ep)], stdout=fo, stderr=fe,
                                env=ENV, cwd=tmp)
    try:
        wait_until(lambda: ep.exists() or proc.poll() is not None, 15, "the endpoints file")
        assert proc.poll() is None, err.read_text()
        yield Running(proc, json.loads(ep.read_text(encoding="utf-8")), ep, out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


# ---- the running process ------------------------------------------------------------------------
def test_endpoints_are_published(running: Running) -> None:
    doc = running.endpoints
    assert doc["hall"] == "jinhu" and doc["pid"] == running.proc.pid
    assert doc["control"]["port"] > 0
    for name in ("kiosk1.reader", "kiosk1.printer", "bus1"):
        sim = running.sim(name)
        assert sim["status"] == "running"
        assert sim["pty"].startswith("/dev/pts/") and Path(sim["pty"]).exists()
        assert sim["tcp"] == f"socket://127.0.0.1:{sim['tcp_port']}" and sim["tcp_port"] > 0
    assert [d["address"] for d in running.sim("bus1")["devices"]] == [1, 99, 101, 151]
    assert running.sim("bus1")["devices"][0]["id"] == "led-1"
    # no vpcd on that port: skipped, said so, and everything else runs
    card = running.sim("card1")
    assert card["status"] == "skipped" and "vpcd" in card["detail"]
    assert "card1: skipped" in running.err.read_text(encoding="utf-8")
    listed = running.ctl("list").stdout
    assert "名称 Name" in listed and running.sim("bus1")["tcp"] in listed


def test_sam_reader_reads_the_placed_card(running: Running) -> None:
    assert "王测试" in running.ctl("place-card", "kiosk1.reader", "wang").stdout
    with SamReader(running.sim("kiosk1.reader")["pty"], timeout=1.0) as reader:
        card = reader.read_card()
        assert card.name == "王测试"
    running.ctl("remove-card", "kiosk1.reader")
    with SamReader(running.sim("kiosk1.reader")["tcp"], timeout=1.0) as reader:
        assert reader.find_card() is False
        running.ctl("place-card", "kiosk1.reader", "li")
        assert reader.read_card().name == "李示例"
    bad = running.ctl("place-card", "kiosk1.reader", "nobody", check=False)
    assert bad.returncode == 1 and "wang=王测试" in bad.stderr


def test_printer_prints_and_reports_paper(running: Running) -> None:
    slip = TicketSlip(hall_name="金湖县政务服务中心", ticket_number="C012", queue_name="综合受理",
                      people_ahead=3, wait_minutes=15, issued_at=datetime(2024, 5, 6, 9, 30),
                      qr_url="http://127.0.0.1:5000/t/C012")
    with EscPosPrinter(running.sim("kiosk1.printer")["tcp"], timeout=1.0) as printer:
        assert printer.print_ticket(slip) == PaperStatus.OK
        text = running.ctl("printed", "kiosk1.printer").stdout
        assert "C012" in text and "金湖县政务服务中心" in text and "[QR] http://127.0.0.1:5000/t/C012" in text
        running.ctl("paper", "kiosk1.printer", "out")
        assert printer.paper_status() == PaperStatus.OUT
        running.ctl("paper", "kiosk1.printer", "ok")
    with EscPosPrinter(running.sim("kiosk1.printer")["pty"], timeout=1.0) as printer:
        assert printer.paper_status() == PaperStatus.OK
    bad = running.ctl("paper", "kiosk1.printer", "gone", check=False)
    assert bad.returncode == 1 and "near_end" in bad.stderr


def test_hall_bus_boards_and_pads(running: Running) -> None:
    bus = HallBusMaster(running.sim("bus1")["pty"], name="bus1", reply_timeout=0.2, retries=2,
                        poll_interval=0.03, heartbeat_interval=0.3, initial_backoff=0.1, max_backoff=0.5)
    board = WindowLedBoard.on_bus(bus, 1)
    pad = CallerPad(bus, 101)
    evalpad = EvalPad(bus, 151, guard_margin=1.0)
    with bus:
        wait_until(lambda: bus.connected and bus.is_online(1) and bus.is_online(151), 5, "the bus online")
        board.show_called("C012", "1号窗口", blink_seconds=0).result(3)
        shown = running.ctl("show", "bus1", "1").stdout
        assert "请C012号" in shown and "1号窗口" in shown
        assert json.loads(running.ctl("--json", "show", "bus1").stdout)["devices"][0]["lines"][0]["text"] == "请C012号"

        running.ctl("press", "bus1", "101", "call_next")
        event = pad.get_event(timeout=3)
        assert event is not None and event.key is CallerKey.CALL_NEXT and event.address == 101

        result = evalpad.prompt(EvalPrompt("C012", "王芳", "JH0101", "综合受理", timeout_s=20))
        wait_until(lambda: "王芳" in running.ctl("show", "bus1", "151").stdout, 3, "the prompt on the pad")
        running.ctl("grade", "bus1", "151", "satisfied")
        graded = result.result(3)
        assert graded.outcome is EvalOutcome.GRADED and graded.grade is Grade.SATISFIED

        running.ctl("offline", "bus1", "on", "1")
        with pytest.raises(Exception):
            board.show_called("C013", "1号窗口").result(3)
        running.ctl("offline", "bus1", "off", "1")
    bad = running.ctl("press", "bus1", "1", "call_next", check=False)
    assert bad.returncode == 1 and "no caller at address 1" in bad.stderr
    bad = running.ctl("press", "nosuch", "101", "call_next", check=False)
    assert bad.returncode == 1 and "kiosk1.reader" in bad.stderr


def test_sigterm_stops_cleanly(running: Running) -> None:
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=5) == 0
    out = running.out.read_text(encoding="utf-8")
    assert "名称 Name" in out and "类型 Kind" in out and "kiosk1.printer" in out
    assert not running.endpoints_file.exists()
    gone = running.ctl("list", check=False)
    assert gone.returncode != 0


# ---- bad configs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("body, expected", [
    ('[[sim]]\nname = "r"\nkind = "sam"\ntcp_port = "x"\n', ["sim[0].tcp_port", "valid integer"]),
    ('[[sim]]\nname = "r"\nkind = "scanner"\n', ["sim[0].kind", "sam, escpos, hallbus, pcsc_card"]),
    ('[[sim]]\nname = "b"\nkind = "hallbus"\noptions = { devices = [{ address = 300, type = "led" }] }\n',
     ["sim[0].options.devices[0].address", "254"]),
    ('[[sim]]\nname = "p"\nkind = "escpos"\noptions = { paper = "gone" }\n', ["sim[0].options.paper", "near_end"]),
])
def test_bad_config_exits_nonzero_naming_the_key(tmp_path: Path, body: str, expected: list[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body, encoding="utf-8")
    res = subprocess.run([*RUN, "run", str(cfg), "--control-port", "0"], capture_output=True, text=True,
                         timeout=20, env=ENV)
    assert res.returncode == 2
    for text in expected:
        assert text in res.stderr


# ---- in process ----------------------------------------------------------------------------------
def test_python_api_and_example_file() -> None:
    config, devices = load_config(ROOT / "examples" / "simulators.toml")
    assert config.hall == "jinhu" and len(config.sim) == 8
    bus_spec = next(s for s in config.sim if s.kind == "hallbus")
    addresses = sorted(d["address"] for d in bus_spec.options["devices"])
    assert addresses == [*range(1, 9), 99, *range(101, 109), *range(151, 159)]
    ports = [s.tcp_port for s in config.sim if s.kind != "pcsc_card"]
    assert all(7100 <= p <= 7299 for p in ports) and len(set(ports)) == len(ports)

    hall = SimulatorHall.from_dict({"control_port": 0, "sim": [
        {"name": "r", "kind": "sam", "options": {"place": "wang"}},
        {"name": "p", "kind": "escpos", "tcp": False},
    ]})
    with hall.start(control=False):
        assert hall.endpoints["r"].tcp and hall.endpoints["r"].pty
        assert hall.endpoints["p"].tcp is None and hall.endpoints["p"].url == hall.endpoints["p"].pty
        assert hall.get("r").card.name == "王测试"
        hall.command("remove-card", "r")
        assert hall.get("r").card is None
    assert hall.endpoints["r"].status == "stopped"
    with pytest.raises(ConfigError, match=r"sim\[1\]\.name: 'r' is already used"):
        SimulatorHall.from_dict({"sim": [{"name": "r", "kind": "sam"}, {"name": "r", "kind": "sam"}]})

"""Bus master and drivers against the simulated hall bus, over a real pty and over TCP."""
from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pytest
from PIL import Image

from device_drivers import hallbus as hb
from device_drivers.caller_pad import CallerKey, CallerPad
from device_drivers.eval_pad import EvalOutcome, EvalPad, EvalPrompt, Grade
from device_drivers.hallbus_master import BusNotConnected, HallBusMaster, NakError, NoReply
from device_drivers.health import Health, HealthEvent
from device_drivers.led_board import CompositeLedBoard, WindowLedBoard
from simulators.base import SimulatorServer
from simulators.hallbus_sim import HallBusSim

pytestmark = pytest.mark.timeout(60)

OPTIONS = {"devices": [
    {"address": 1, "type": "led"},
    {"address": 2, "type": "led"},
    {"address": 3, "type": "led"},
    {"address": 9, "type": "composite"},
    {"address": 20, "type": "caller"},
    {"address": 30, "type": "evalpad"},
]}
ADDRESSES = [1, 2, 3, 9, 20, 30]


def wait_until(pred: Callable[[], object], timeout: float = 3.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Hall:
    sim: HallBusSim
    server: SimulatorServer
    bus: HallBusMaster
    boards: dict[int, WindowLedBoard]
    composite: CompositeLedBoard
    pad: CallerPad
    evalpad: EvalPad
    health: list[HealthEvent] = field(default_factory=list)

    def health_of(self, address: int) -> list[Health]:
        return [e.health for e in self.health if e.device == f"hall.{address}"]


@pytest.fixture(params=["pty", "tcp"])
def hall(request: pytest.FixtureRequest) -> Iterator[Hall]:
    sim = HallBusSim.from_options(OPTIONS)
    server = SimulatorServer(sim, name="hallbus").start()
    url = server.pty_path if request.param == "pty" else server.tcp_url
    bus = HallBusMaster(url, name="hall", reply_timeout=0.15, retries=2, poll_interval=0.03,
                        heartbeat_interval=0.2, offline_retry_interval=0.3, initial_backoff=0.1,
                        max_backoff=0.5)
    events: list[HealthEvent] = []
    lock = threading.Lock()

    def record(e: HealthEvent) -> None:
        with lock:
            events.append(e)

    bus.subscribe_health(record)
    h = Hall(sim, server, bus,
             {a: WindowLedBoard.on_bus(bus, a) for a in (1, 2, 3)},
             CompositeLedBoard.on_bus(bus, 9, max_lines=8),
             CallerPad(bus, 20), EvalPad(bus, 30, guard_margin=0.4), events)
    bus.start()
    try:
        wait_until(lambda: all(bus.is_online(a) for a in ADDRESSES), 5, "all devices online")
        yield h
    finally:
        bus.stop()
        server.stop()


def test_window_board_shows_called_number_highlighted(hall: Hall) -> None:
    hall.boards[1].show_called("A001", "3号窗口", blink_seconds=10).result(2)
    hall.boards[2].show_paused().result(2)
    hall.boards[3].show_idle("欢迎光临").result(2)
    hall.composite.show_recent([("A001", "3号窗口"), ("B002", "5号窗口")]).result(2)

    board1 = hall.sim.led(1)
    assert board1.render_text() == "请A001号\n3号窗口"
    assert [l.mode for l in board1.lines] == [hb.Mode.BLINK, hb.Mode.BLINK]
    assert board1.lines[0].colour == hb.Colour.RED
    assert hall.sim.led(2).render_text() == "暂停服务"
    assert hall.sim.led(3).render_text() == "欢迎光临"
    comp = hall.sim.led(9)
    assert comp.render_text() == "A001  3号窗口\nB002  5号窗口"
    assert [l.mode for l in comp.lines] == [hb.Mode.BLINK, hb.Mode.STEADY]  # newest highlighted

    img = Image.open(io.BytesIO(board1.render_png())).convert("RGB")
    red = sum(1 for r, g, b in img.get_flattened_data() if r > 200 and g < 100)
    assert red > 500  # a lit red number, not a blank board


def test_called_number_stops_blinking_after_blink_time(hall: Hall) -> None:
    hall.boards[1].show_called("A002", "3号窗口", blink_seconds=1).result(2)
    assert hall.sim.led(1).lines[0].mode == hb.Mode.BLINK
    wait_until(lambda: hall.sim.led(1).lines[0].mode == hb.Mode.STEADY, 3, "steady after blink")
    assert hall.sim.led(1).render_text() == "请A002号\n3号窗口"


def test_caller_pad_keys_arrive_as_typed_events_and_display_updates(hall: Hall) -> None:
    pad = hall.sim.caller(20)
    pad.press(CallerKey.CALL_NEXT)
    pad.press(CallerKey.TRANSFER, target="5号窗口")
    pad.press("pause")
    got = [hall.pad.get_event(2) for _ in range(3)]
    assert [(e.key, e.target) for e in got if e] == [
        (CallerKey.CALL_NEXT, None), (CallerKey.TRANSFER, "5号窗口"), (CallerKey.PAUSE, None)]
    assert all(e and e.address == 20 and e.pad == "hall.20" for e in got)
    assert hall.pad.get_event(0.2) is None  # each press delivered once

    hall.pad.show("A001", 12).result(2)
    assert pad.render_text() == "当前: A001  等候: 12"


def test_eval_pad_prompt_and_grade(hall: Hall) -> None:
    sim_pad = hall.sim.evalpad(30)
    prompt = EvalPrompt("A001", "张三", "1001", "社会保障卡申领", timeout_s=30)
    future = hall.evalpad.prompt(prompt)
    shown = sim_pad.wait_for_prompt(2)
    assert shown is not None
    assert (shown.ticket, shown.clerk_name, shown.staff_no, shown.matter, shown.timeout_s) == (
        "A001", "张三", "1001", "社会保障卡申领", 30)
    sim_pad.press_grade(Grade.VERY_SATISFIED)
    result = future.result(2)
    assert result.outcome is EvalOutcome.GRADED
    assert result.grade is Grade.VERY_SATISFIED and result.grade.label == "非常满意"
    assert result.prompt == prompt and result.by_pad


def test_eval_pad_all_five_grades(hall: Hall) -> None:
    sim_pad = hall.sim.evalpad(30)
    for grade in Grade:
        future = hall.evalpad.prompt(EvalPrompt("B00" + str(int(grade)), "李四", "2002", "户籍"))
        assert sim_pad.wait_for_prompt(2) is not None
        sim_pad.press_grade(grade)
        assert future.result(2).grade is grade


def test_eval_pad_timeout_reported_by_pad(hall: Hall) -> None:
    started = time.monotonic()
    result = hall.evalpad.evaluate(EvalPrompt("A003", "王五", "3003", "公积金", timeout_s=1), timeout=4)
    assert result.outcome is EvalOutcome.TIMEOUT and result.grade is None and result.by_pad
    assert 0.9 <= time.monotonic() - started < 2.5


def test_eval_pad_cancel_by_citizen_and_stale_answer_ignored(hall: Hall) -> None:
    sim_pad = hall.sim.evalpad(30)
    first = hall.evalpad.prompt(EvalPrompt("A004", "赵六", "4004", "医保"))
    assert sim_pad.wait_for_prompt(2) is not None
    second = hall.evalpad.prompt(EvalPrompt("A005", "赵六", "4004", "医保"))
    assert first.result(1).outcome is EvalOutcome.CANCELLED  # replaced by the newer prompt
    wait_until(lambda: sim_pad.prompt is not None and sim_pad.prompt.ticket == "A005", 2, "new prompt")
    sim_pad.press_cancel()
    assert second.result(2).outcome is EvalOutcome.CANCELLED


def test_eval_pad_dies_mid_prompt_host_guard_times_out(hall: Hall) -> None:
    future = hall.evalpad.prompt(EvalPrompt("A006", "钱七", "5005", "社保", timeout_s=1))
    assert hall.sim.evalpad(30).wait_for_prompt(2) is not None
    hall.sim.set_silent(30)
    result = future.result(4)
    assert result.outcome is EvalOutcome.TIMEOUT and not result.by_pad
    wait_until(lambda: hall.health_of(30)[-1:] == [Health.OFFLINE], 2, "pad offline")


def test_silent_board_goes_offline_others_keep_working_then_recovers(hall: Hall) -> None:
    hall.boards[2].show_idle("2号窗口").result(2)
    hall.sim.set_silent(2)
    wait_until(lambda: hall.health_of(2)[-1:] == [Health.OFFLINE], 3, "board 2 offline")
    assert not hall.bus.is_online(2)

    # the rest of the bus is unaffected
    hall.boards[1].show_called("A010", "1号窗口").result(2)
    assert hall.sim.led(1).render_text() == "请A010号\n1号窗口"
    hall.sim.caller(20).press(CallerKey.FINISH)
    event = hall.pad.get_event(2)
    assert event is not None and event.key is CallerKey.FINISH

    # writing to the offline board fails fast (one attempt, no retries)
    started = time.monotonic()
    with pytest.raises(NoReply, match="设备 2 无应答"):
        hall.boards[2].show_called("A011", "2号窗口").result(2)
    assert time.monotonic() - started < 1.0

    hall.sim.set_silent(2, False)
    wait_until(lambda: hall.bus.is_online(2), 3, "board 2 back online")
    # it is repainted with what it should show now
    wait_until(lambda: hall.sim.led(2).render_text() == "请A011号\n2号窗口", 2, "board 2 repainted")
    assert hall.health_of(2) == [Health.ONLINE, Health.OFFLINE, Health.ONLINE]
    assert hall.health_of(1) == [Health.ONLINE]


def test_corrupted_reply_is_retried_and_delivered_once(hall: Hall) -> None:
    before = hall.bus.parser.crc_errors
    hall.sim.corrupt_next(1)
    hall.boards[1].show_text("测试").result(2)
    assert hall.sim.led(1).render_text() == "测试"
    assert hall.bus.parser.crc_errors > before
    assert hall.bus.stats(1).retries >= 1
    assert sum(f.cmd == hb.Command.SHOW_LINES for f in hall.sim.led(1).received) == 1
    assert hall.bus.is_online(1)

    # a pad's reply corrupted: the key press still arrives, exactly once
    hall.sim.corrupt_next(20)
    hall.sim.caller(20).press(CallerKey.RECALL)
    event = hall.pad.get_event(2)
    assert event is not None and event.key is CallerKey.RECALL
    assert hall.pad.get_event(0.3) is None


def test_lost_requests_are_retried(hall: Hall) -> None:
    hall.sim.drop_next(3, 2)  # retries=2: the third attempt gets through
    hall.boards[3].show_text("到达").result(2)
    assert hall.sim.led(3).render_text() == "到达"
    assert hall.bus.is_online(3)


def test_refused_command_is_reported_not_retried(hall: Hall) -> None:
    with pytest.raises(NakError, match="参数超出范围") as err:
        hall.boards[1].show_text("一\n二\n三").result(2)  # a window board has 2 rows
    assert err.value.reason is hb.NakReason.BAD_VALUE
    assert hall.bus.stats(1).naks == 1 and hall.bus.stats(1).retries == 0
    assert hall.bus.is_online(1)


def test_broadcast_reaches_every_board_once(hall: Hall) -> None:
    for a in (1, 2, 3):
        hall.boards[a].show_text(f"{a}号").result(2)
    hall.bus.broadcast(hb.Command.CLEAR).result(2)
    wait_until(lambda: all(hall.sim.led(a).render_text() == "" for a in (1, 2, 3, 9)), 2, "all clear")
    assert hall.sim.broadcasts_executed == 1


@pytest.mark.parametrize("hall", ["tcp"], indirect=True)  # a serial device server rebooting
def test_port_lost_and_reconnected(hall: Hall) -> None:
    hall.server.drop_clients()
    wait_until(lambda: hall.bus.reporter.current.health == Health.OFFLINE, 3, "bus offline")
    wait_until(lambda: hall.bus.connected and hall.bus.is_online(1), 5, "bus reconnected")
    hall.boards[1].show_called("A020", "1号窗口").result(2)
    assert hall.sim.led(1).render_text() == "请A020号\n1号窗口"
    assert Health.OFFLINE in hall.health_of(1)


def test_bus_not_started_fails_fast() -> None:
    bus = HallBusMaster("socket://127.0.0.1:9", name="nobus")
    board = WindowLedBoard.on_bus(bus, 1)
    with pytest.raises(BusNotConnected, match="未连接"):
        board.show_idle("欢迎").result(1)


def test_simulator_options_are_validated() -> None:
    with pytest.raises(ValueError, match=r"devices\[1\].type 'printer'"):
        HallBusSim.from_options({"devices": [{"address": 1, "type": "led"},
                                             {"address": 2, "type": "printer"}]})
    with pytest.raises(ValueError, match="two simulated devices at address 1"):
        HallBusSim.from_options({"devices": [{"address": 1, "type": "led"},
                                             {"address": 1, "type": "caller"}]})

"""ESC/POS driver: rendering, paper status, printing over a real pty and TCP, the supervised service.

A real USB printer cannot be tested here: only the "not plugged in" path of ``usb://VID:PID`` is.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_drivers.escpos_printer import (
    EscPosPrinter, EscPosPrinterService, PaperOut, PaperOutDuringPrint, PaperStatus, PrinterNotFound,
    PrinterOffline, TicketSlip, decode_paper_status, render_ticket,
)
from device_drivers.health import Health
from device_drivers.registry import driver_class
from device_drivers.transport import PortError
from simulators.base import SimulatorServer
from simulators.escpos_sim import EscPosPrinterSimulator, PaperState, PrintedQr

QR_URL = "https://hall.example.gov.cn/t/3208/A001?sig=Zx9_k-1&lang=zh"


def make_slip(**overrides: object) -> TicketSlip:
    values: dict[str, object] = dict(
        hall_name="淮安市政务服务中心",
        ticket_number="A001",
        queue_name="不动产登记",
        people_ahead=3,
        wait_minutes=15,
        issued_at=datetime(2024, 5, 6, 9, 30, 12),
        qr_url=QR_URL,
        notes=("：", "姓名：𠮷龘", "过号请重新取号。Keep this slip."),
        priority_label=None,
    )
    values.update(overrides)
    return TicketSlip(**values)  # type: ignore[arg-type]


def parse(data: bytes, *, chinese_default: bool = False) -> EscPosPrinterSimulator:
    sim = EscPosPrinterSimulator(chinese_default=chinese_default)
    sim.receive(data)
    return sim


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# ---- status byte -----------------------------------------------------------------------------
@pytest.mark.parametrize("byte, expected", [
    (0x12, PaperStatus.OK),
    (0x1E, PaperStatus.NEAR_END),
    (0x16, PaperStatus.NEAR_END),  # only one bit of the near-end pair set
    (0x1A, PaperStatus.NEAR_END),
    (0x72, PaperStatus.OUT),
    (0x32, PaperStatus.OUT),  # only one bit of the roll-end pair set
    (0x7E, PaperStatus.OUT),  # near end and out together: out wins
    (0x00, None), (0xFF, None), (0x41, None), (0x13, None), (0x92, None),  # fixed bits wrong
])
def test_decode_paper_status_masks_sensor_bits(byte: int, expected: PaperStatus | None) -> None:
    assert decode_paper_status(byte) == expected


# ---- rendering -------------------------------------------------------------------------------
def test_render_round_trip_full_ticket() -> None:
    slip = make_slip(priority_label="优先")
    data = render_ticket(slip)
    # the simulator starts with Chinese mode OFF, so this only decodes if the driver sends FS &
    ticket = parse(data, chinese_default=False).printed
    assert len(ticket) == 1
    t = ticket[0]
    texts = [line.text for line in t.lines]
    assert texts[0] == "淮安市政务服务中心"
    assert texts[1] == "不动产登记"
    assert "：" in texts  # a line of full-width punctuation alone
    assert "姓名：𠮷龘" in texts  # a four-byte GB18030 character and a rare BMP one
    assert "过号请重新取号。Keep this slip." in texts
    assert "您前面还有 3 人等候" in texts
    assert "预计等待：约 15 分钟" in texts
    assert "取号时间：2024-05-06 09:30:12" in texts
    assert "?" not in t.text.replace(QR_URL, "")
    assert "\ufffd" not in t.text
    assert t.qr_payloads == [QR_URL]
    number = next(line for line in t.lines if line.text == "A001")
    assert (number.width, number.height, number.bold, number.align) == (4, 4, True, "center")
    label = next(line for line in t.lines if line.text.strip() == "优先")
    assert label.inverted and label.width == 2
    hall = t.lines[0]
    assert (hall.width, hall.height, hall.align) == (2, 2, "center")


def test_render_bytes_are_what_a_printer_expects() -> None:
    data = render_ticket(make_slip())
    assert data.startswith(b"\x1b@\x1c&")  # ESC @, then Chinese mode on deliberately
    assert b"\x1d!\x33" in data and data.index(b"\x1d!\x33") < data.index(b"A001\n")
    assert "：".encode("gb18030") == b"\xa3\xba" and b"\xa3\xba\n" in data
    assert b"?" not in data.replace(QR_URL.encode(), b"")  # nothing fell back to "?"
    assert "𠮷".encode("gb18030") == b"\x95\x34\xb2\x35" and b"\x95\x34\xb2\x35" in data  # four bytes
    assert b"\x1d(k" + (len(QR_URL) + 3).to_bytes(2, "little") + b"1P0" + QR_URL.encode() in data
    assert data.endswith(b"\x1dV\x00")


def test_render_wraps_long_lines_to_the_paper_width() -> None:
    long_hall = "江苏省淮安市清江浦区人民政府政务服务中心不动产登记分中心"
    for columns in (48, 32):
        slip = make_slip(hall_name=long_hall, notes=("请携带身份证原件、户口簿及相关材料，" * 3,))
        t = parse(render_ticket(slip, columns=columns)).printed[0]
        assert all(line.columns <= columns for line in t.lines), [(l.text, l.columns) for l in t.lines]
        hall_lines = [line.text for line in t.lines if line.bold and line.height == 2]
        assert "".join(hall_lines) == long_hall
    # a name that fits at double width is printed so; one that does not is not broken in two
    narrow = parse(render_ticket(make_slip(), columns=32)).printed[0].lines[0]
    assert (narrow.text, narrow.width, narrow.height) == ("淮安市政务服务中心", 1, 2)


def test_control_characters_in_fields_cannot_inject_commands() -> None:
    slip = make_slip(notes=("前\x1dV\x00后\x1b@", "第二行\n第三行"))
    sim = parse(render_ticket(slip))
    assert len(sim.printed) == 1  # the embedded GS V did not cut
    texts = [line.text for line in sim.printed[0].lines]
    assert "前 V 后 @" in texts
    assert texts[-2:] == ["第二行", "第三行"]


def test_slip_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="ticket_number"):
        make_slip(ticket_number=" ")
    with pytest.raises(ValueError, match="people_ahead"):
        make_slip(people_ahead=-1)
    with pytest.raises(ValueError, match="qr_url"):
        make_slip(qr_url="x" * 3000)


_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
_CJK_RARE = st.one_of(st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF),
                      st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF))
_FULLWIDTH = st.one_of(st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E),
                       st.characters(min_codepoint=0x3000, max_codepoint=0x3011))
_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_LINE = st.text(alphabet=st.one_of(_CJK, _CJK_RARE, _FULLWIDTH, _ASCII), max_size=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notes=st.lists(_LINE.filter(bool), min_size=1, max_size=4), queue=_LINE.filter(lambda s: s.strip() != ""))
def test_any_cjk_fullwidth_ascii_text_survives_render_and_parse(notes: list[str], queue: str) -> None:
    t = parse(render_ticket(make_slip(notes=tuple(notes), queue_name=queue))).printed[0]
    texts = [line.text for line in t.lines]
    assert texts[1] == queue
    assert texts[-len(notes):] == notes


# ---- over a real pty and TCP -----------------------------------------------------------------
@pytest.fixture
def sim() -> EscPosPrinterSimulator:
    return EscPosPrinterSimulator()


@pytest.fixture
def server(sim: EscPosPrinterSimulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim, name="escpos-test") as srv:
        yield srv


def _url(server: SimulatorServer, how: str) -> str:
    if how == "pty":
        assert server.pty_path
        return server.pty_path
    if how == "socket":
        return server.tcp_url
    return f"tcp://127.0.0.1:{server.tcp_port}"  # the printer's own raw-TCP scheme


@pytest.mark.parametrize("how", ["pty", "socket", "tcp"])
def test_print_ticket_end_to_end(server: SimulatorServer, sim: EscPosPrinterSimulator, how: str) -> None:
    with EscPosPrinter(_url(server, how), timeout=1.0) as printer:
        assert printer.print_ticket(make_slip()) == PaperStatus.OK
    assert sim.wait_for_tickets(1, timeout=2.0)
    t = sim.printed[0]
    assert t.qr_payloads == [QR_URL]
    assert [line.text for line in t.lines][:2] == ["淮安市政务服务中心", "不动产登记"]
    assert sim.status_requests == 2  # checked before, confirmed after


@pytest.mark.parametrize("state, override, expected", [
    (PaperState.OK, None, PaperStatus.OK),
    (PaperState.NEAR_END, None, PaperStatus.NEAR_END),
    (PaperState.OUT, None, PaperStatus.OUT),
    (PaperState.OK, 0x7E, PaperStatus.OUT),
    (PaperState.OK, 0x16, PaperStatus.NEAR_END),
])
def test_paper_status_over_pty(server: SimulatorServer, sim: EscPosPrinterSimulator, state: PaperState,
                               override: int | None, expected: PaperStatus) -> None:
    sim.paper = state
    sim.paper_status_override = override
    with EscPosPrinter(_url(server, "pty"), timeout=1.0) as printer:
        assert printer.paper_status() == expected


def test_offline_printer_times_out(server: SimulatorServer, sim: EscPosPrinterSimulator) -> None:
    sim.offline = True
    with EscPosPrinter(_url(server, "pty"), timeout=0.3) as printer:
        start = time.monotonic()
        with pytest.raises(PrinterOffline, match="打印机无响应"):
            printer.paper_status()
        assert 0.25 <= time.monotonic() - start < 1.5
        with pytest.raises(PrinterOffline, match="无响应"):
            printer.print_ticket(make_slip())
    assert sim.printed == []


def test_slow_printer_within_timeout_then_too_slow(server: SimulatorServer, sim: EscPosPrinterSimulator) -> None:
    with EscPosPrinter(_url(server, "socket"), timeout=1.0) as printer:
        sim.delay = 0.2
        assert printer.paper_status() == PaperStatus.OK
        sim.delay = 0.4
        with pytest.raises(PrinterOffline):
            printer.paper_status(timeout=0.15)
        # the late answer (OK) arrives after the timeout; it must not be taken for the next answer
        sim.paper = PaperState.OUT
        time.sleep(1.0)
        sim.delay = 0.0
        assert printer.paper_status() == PaperStatus.OUT


def test_print_ticket_refuses_when_paper_out(server: SimulatorServer, sim: EscPosPrinterSimulator) -> None:
    sim.paper = PaperState.OUT
    with EscPosPrinter(_url(server, "pty"), timeout=1.0) as printer:
        with pytest.raises(PaperOut, match="打印机缺纸") as info:
            printer.print_ticket(make_slip())
        assert not isinstance(info.value, PaperOutDuringPrint)
        time.sleep(0.2)
    assert sim.status_requests == 1  # asked, then sent nothing
    assert sim.printed == []
    sim.paper = PaperState.OK  # nothing was buffered to come out when paper is loaded
    sim.receive(b"\x1dV\x00")
    assert sim.printed == []


def test_roll_running_out_during_the_slip_is_reported(server: SimulatorServer,
                                                      sim: EscPosPrinterSimulator) -> None:
    sim.paper_tickets = 2  # two slips left on the roll; near end warned at three or fewer
    with EscPosPrinter(_url(server, "tcp"), timeout=1.0) as printer:
        assert printer.print_ticket(make_slip()) == PaperStatus.NEAR_END
        with pytest.raises(PaperOutDuringPrint, match="可能未完整打印"):
            printer.print_ticket(make_slip(ticket_number="A002"))
        with pytest.raises(PaperOut):
            printer.print_ticket(make_slip(ticket_number="A003"))
    assert [next(line.text for line in t.lines if line.width == 4) for t in sim.printed] == ["A001", "A002"]


def test_garbage_from_the_printer_is_not_taken_for_status(server: SimulatorServer,
                                                          sim: EscPosPrinterSimulator) -> None:
    with EscPosPrinter(_url(server, "pty"), timeout=1.0) as printer:
        sim.send(b"\x00\xff\x41")  # line noise before the request
        time.sleep(0.1)
        sim.paper = PaperState.NEAR_END
        assert printer.paper_status() == PaperStatus.NEAR_END


def test_usb_printer_not_plugged_in_names_vid_pid() -> None:
    # No USB printer exists on the test machine; a real one cannot be tested here.
    with pytest.raises(PrinterNotFound, match="ffff:fffe"):
        EscPosPrinter("usb://FFFF:FFFE").open()
    with pytest.raises(ValueError, match="usb://VID:PID"):
        EscPosPrinter("usb://printer").open()


def test_unopenable_serial_url_names_it() -> None:
    with pytest.raises(PortError, match="/dev/ttyNOPE"):
        EscPosPrinter("/dev/ttyNOPE").open()


# ---- supervised service ----------------------------------------------------------------------
def test_registry_kind() -> None:
    assert driver_class("escpos") is EscPosPrinterService


def test_service_publishes_paper_and_offline_states(server: SimulatorServer,
                                                    sim: EscPosPrinterSimulator) -> None:
    service = EscPosPrinterService("kiosk1.printer", _url(server, "pty"), poll_interval=0.05, timeout=0.3)
    events: list[tuple[Health, str]] = []
    service.reporter.subscribe(lambda e: events.append((e.health, e.reason)))
    service.start()
    try:
        def state() -> tuple[Health, str] | None:
            h = service.health
            return (h.health, h.reason) if h else None

        assert wait_until(lambda: state() == (Health.ONLINE, ""))
        assert service.print_ticket(make_slip()) == PaperStatus.OK
        sim.paper = PaperState.NEAR_END
        assert wait_until(lambda: state() == (Health.DEGRADED, "纸将用尽"))
        sim.paper = PaperState.OUT
        assert wait_until(lambda: state() == (Health.OFFLINE, "打印机缺纸"))
        with pytest.raises(PaperOut):
            service.print_ticket(make_slip(ticket_number="A002"))
        sim.paper = PaperState.OK
        sim.offline = True
        assert wait_until(lambda: state() == (Health.OFFLINE, "打印机无响应"))
        sim.offline = False
        assert wait_until(lambda: state() == (Health.ONLINE, ""))
    finally:
        service.stop()
    assert len(sim.printed) == 1
    assert (Health.DEGRADED, "纸将用尽") in events and (Health.OFFLINE, "打印机缺纸") in events


def test_service_reconnects_after_tcp_connection_drops(server: SimulatorServer,
                                                       sim: EscPosPrinterSimulator) -> None:
    service = EscPosPrinterService("kiosk2.printer", _url(server, "tcp"), poll_interval=0.05, timeout=0.5,
                                   initial_backoff=0.05, max_backoff=0.2)
    service.start()
    try:
        assert wait_until(lambda: service.health is not None and service.health.health == Health.ONLINE)
        # the server has accepted the connection only once it has answered a poll
        assert wait_until(lambda: sim.status_requests >= 1)
        attempts = service.supervisor.attempts
        server.drop_clients()
        assert wait_until(lambda: service.supervisor.attempts > attempts)
        assert wait_until(lambda: service.health is not None and service.health.health == Health.ONLINE)
        assert wait_until(lambda: service._printer is not None)
        assert service.print_ticket(make_slip()) == PaperStatus.OK
    finally:
        service.stop()
    assert sim.wait_for_tickets(1, timeout=2.0)


def test_service_reports_missing_usb_printer() -> None:
    service = EscPosPrinterService("kiosk3.printer", "usb://ffff:fffe", initial_backoff=0.05, max_backoff=0.1)
    service.start()
    try:
        assert wait_until(lambda: service.health is not None)
        assert service.health is not None and service.health.health == Health.OFFLINE
        assert "ffff:fffe" in service.health.reason
        with pytest.raises(PrinterOffline, match="未连接"):
            service.print_ticket(make_slip())
    finally:
        service.stop()


@pytest.mark.parametrize("columns, paper_dots", [(48, 576), (32, 384)])
def test_qr_code_fits_the_paper_even_for_a_long_url(columns: int, paper_dots: int) -> None:
    url = "https://hall.example.gov.cn/progress?" + "&".join(f"k{i}=v{i}" for i in range(100))
    sim = EscPosPrinterSimulator(paper_dots=paper_dots)
    sim.receive(render_ticket(make_slip(qr_url=url), columns=columns))
    qr_item = next(i for i in sim.printed[0].items if isinstance(i, PrintedQr))
    assert qr_item.payload == url
    assert qr_item.error_level == "M"
    assert 0.6 * paper_dots < qr_item.width_dots <= paper_dots


def test_slip_without_qr_url_prints_no_qr_code() -> None:
    t = parse(render_ticket(make_slip(qr_url=""))).printed[0]
    assert t.qr_payloads == [] and "扫码查看排队进度" not in t.text and "A001" in t.text

"""ESC/POS parser (pure, on bytes) and the simulated printer (paper faults, PNG, pty and TCP)."""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from device_drivers.escpos_printer import TicketSlip, render_ticket
from simulators.base import SimulatorServer
from simulators.escpos_parser import (
    Align, Bold, CharSize, ChineseMode, Cut, EscPosParser, Event, Feed, Init, Invert, LineFeed,
    PrintMode, Qr, Skipped, StatusRequest, Text,
)
from simulators.escpos_sim import DOTS_80MM, EscPosPrinterSimulator, PaperState

SLIP = TicketSlip(
    hall_name="淮安市政务服务中心", ticket_number="B012", queue_name="不动产登记", people_ahead=7,
    wait_minutes=25, issued_at=datetime(2024, 5, 6, 14, 5, 0), qr_url="https://hall.example.gov.cn/t/B012",
    notes=("：", "请凭此票到𠮷字窗口办理，龘。"), priority_label="优先",
)
TICKET = render_ticket(SLIP)


def merged(events: list[Event]) -> list[Event]:
    """Join adjacent Text events: how text is split across feeds does not matter."""
    out: list[Event] = []
    for e in events:
        if isinstance(e, Text) and out and isinstance(out[-1], Text):
            out[-1] = Text(out[-1].text + e.text)
        else:
            out.append(e)
    return out


def feed_chunks(data: bytes, cuts: list[int], chinese: bool = True) -> list[Event]:
    parser = EscPosParser(chinese=chinese)
    events: list[Event] = []
    last = 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)) + [len(data)]:
        events += parser.feed(data[last:cut])
        last = cut
    return merged(events)


# ---- parser on exact bytes -------------------------------------------------------------------
def test_parser_exact_commands() -> None:
    data = (b"\x1b@\x1c&\x1b!\x38\x1d!\x33\x1ba\x01\x1bE\x01\x1dB\x01"
            + "不：𠮷".encode("gb18030") + b"A\n"
            + b"\x1d(k\x04\x001A2\x00\x1d(k\x03\x001C\x06\x1d(k\x06\x001P0abc\x1d(k\x03\x001Q0"
            + b"\x1bd\x03\x10\x04\x04\x1dV\x00\x1dVB\x00\x1c.")
    assert EscPosParser(chinese=False).feed(data) == [
        Init(), ChineseMode(True), PrintMode(0x38), CharSize(4, 4), Align(1), Bold(True), Invert(True),
        Text("不：𠮷A"), LineFeed(),
        Qr(65, b"2\x00"), Qr(67, b"\x06"), Qr(80, b"abc"), Qr(81, b""),
        Feed(3), StatusRequest(4), Cut(partial=False), Cut(partial=True), ChineseMode(False),
    ]


def test_text_is_code_page_outside_chinese_mode() -> None:
    parser = EscPosParser(chinese=False)
    assert parser.feed("不".encode("gb18030")) == [Text("▓╗")]  # what a printer left in PC437 prints
    assert parser.feed(b"\x1c&" + "不".encode("gb18030")) == [ChineseMode(True), Text("不")]


@pytest.mark.parametrize("data, expected", [
    (b"\x81\n", [Text("\ufffd"), LineFeed()]),  # lead byte followed by a control byte
    (b"\x80A", [Text("\ufffdA")]),  # 0x80 is no GB18030 lead byte
    (b"\x81\x30\x0a\x30", [Text("\ufffd0"), LineFeed(), Text("0")]),  # broken four-byte sequence
    (b"\xff\x1b@", [Text("\ufffd"), Init()]),
])
def test_invalid_gb18030_resynchronises_on_the_next_byte(data: bytes, expected: list[Event]) -> None:
    assert merged(EscPosParser(chinese=True).feed(data)) == expected


def test_incomplete_command_waits_for_the_rest() -> None:
    parser = EscPosParser()
    assert parser.feed(b"\x1d(k\x06\x001P") == []
    assert parser.pending == 7
    assert parser.feed(b"0ab") == []
    assert parser.feed(b"c\xd6") == [Qr(80, b"abc")]  # half a character stays buffered
    assert parser.feed(b"\xd0") == [Text("中")]


def test_unknown_and_unmodelled_commands_are_skipped_whole() -> None:
    data = (b"\x1b\x01"  # unknown ESC x: both bytes dropped
            + b"\x1b\x1b@"  # ESC followed by ESC @: only the first ESC dropped
            + b"\x1b*\x00\x03\x00\xff\xff\xff"  # bit image: its data must not print as text
            + b"\x1dk\x04123\x00"  # barcode terminated by NUL
            + b"\x1dv0\x00\x01\x00\x02\x00\x0a\x1b"  # raster image whose data holds LF and ESC
            + b"\x10\x05\x01\x00\x07ok\n")
    events = EscPosParser().feed(data)
    assert [e for e in events if not isinstance(e, Skipped)] == [Init(), Text("ok"), LineFeed()]
    assert b"\x1b*\x00\x03\x00\xff\xff\xff" in [e.data for e in events if isinstance(e, Skipped)]


def test_implausible_length_does_not_swallow_the_next_ticket() -> None:
    sim = EscPosPrinterSimulator()
    sim.receive(b"\x1d(k\xff\xff1P0" + TICKET)
    assert len(sim.printed) == 1 and sim.printed[0].qr_payloads == [SLIP.qr_url]


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(TICKET)), max_size=12))
def test_any_split_of_a_ticket_gives_the_same_events(cuts: list[int]) -> None:
    assert feed_chunks(TICKET, cuts) == feed_chunks(TICKET, [])


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
       chinese=st.booleans())
def test_arbitrary_bytes_never_break_the_parser(data: bytes, cuts: list[int], chinese: bool) -> None:
    assert feed_chunks(data, cuts, chinese) == feed_chunks(data, [], chinese)
    EscPosPrinterSimulator().receive(data)  # and the printer model takes whatever comes out


_NOISE = st.binary(max_size=200).map(lambda b: bytes(x for x in b if x not in (0x1B, 0x1C, 0x1D)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise=_NOISE)
def test_ticket_after_line_noise_prints_intact(noise: bytes) -> None:
    sim = EscPosPrinterSimulator()
    sim.receive(noise + TICKET)
    good = EscPosPrinterSimulator()
    good.receive(TICKET)
    ticket = sim.printed[-1]
    assert ticket.qr_payloads == [SLIP.qr_url]
    # noise printed before the ticket (no cut came before it) may share the first line; the rest is intact
    n = len(good.printed[0].lines)
    assert ticket.lines[-n + 1:] == good.printed[0].lines[1:]
    assert ticket.lines[-n].text.endswith(SLIP.hall_name)


# ---- printer model ---------------------------------------------------------------------------
def test_ticket_model_text_sizes_and_qr() -> None:
    sim = EscPosPrinterSimulator()
    sim.receive(TICKET)
    t = sim.printed[0]
    assert t.text.splitlines()[:2] == ["淮安市政务服务中心", "不动产登记"]
    assert "[QR] https://hall.example.gov.cn/t/B012" in t.text
    assert "请凭此票到𠮷字窗口办理，龘。" in t.text.splitlines()
    big = [line for line in t.lines if line.width == 4 and line.height == 4]
    assert [line.text for line in big] == ["B012"]
    assert not t.partial_cut


@pytest.mark.parametrize("state, answers", [
    (PaperState.OK, {1: 0x16, 2: 0x12, 3: 0x12, 4: 0x12}),
    (PaperState.NEAR_END, {1: 0x16, 2: 0x12, 3: 0x12, 4: 0x1E}),
    (PaperState.OUT, {1: 0x1E, 2: 0x32, 3: 0x12, 4: 0x72}),
])
def test_status_answers(state: PaperState, answers: dict[int, int]) -> None:
    sim = EscPosPrinterSimulator(paper=state)
    sent: list[bytes] = []
    sim.attach(sent.append)
    for n in (1, 2, 3, 4):
        sim.receive(bytes([0x10, 0x04, n]))
    assert sent == [bytes([answers[n]]) for n in (1, 2, 3, 4)]


def test_paper_out_prints_nothing_and_offline_is_silent() -> None:
    sim = EscPosPrinterSimulator(paper="out")
    sent: list[bytes] = []
    sim.attach(sent.append)
    sim.receive(TICKET + b"\x10\x04\x04")
    assert sim.printed == [] and sent == [b"\x72"]
    sim.paper = PaperState.OK
    sim.offline = True
    sim.receive(TICKET + b"\x10\x04\x04")
    assert sim.printed == [] and sent == [b"\x72"]
    sim.offline = False
    sim.receive(TICKET + b"\x10\x04\x04")
    assert len(sim.printed) == 1 and sent == [b"\x72", b"\x12"]


def test_roll_runs_out_by_itself() -> None:
    sim = EscPosPrinterSimulator(paper_tickets=3, near_end_tickets=2)
    states = []
    for _ in range(4):
        sim.receive(TICKET)
        states.append(sim.paper)
    assert states == [PaperState.NEAR_END, PaperState.NEAR_END, PaperState.OUT, PaperState.OUT]
    assert len(sim.printed) == 3


def test_png_looks_like_a_slip(tmp_path: Path) -> None:
    sim = EscPosPrinterSimulator(png_dir=str(tmp_path / "auto"))
    sim.receive(TICKET)
    path = sim.save_png(tmp_path / "slip.png")
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width == DOTS_80MM + 48 and 700 < img.height < 1500
        gray = img.convert("L")
        hist = gray.histogram()
        assert hist[0] > 5000 and hist[255] > img.width * img.height // 2  # black print on white paper
        # the big ticket number is four times the height of body text: a tall band of ink exists
        rows = [any(gray.getpixel((x, y)) < 128 for x in range(0, gray.width, 2)) for y in range(gray.height)]
        longest, run = 0, 0
        for inked in rows:
            run = run + 1 if inked else 0
            longest = max(longest, run)
        assert longest >= 80
    assert (tmp_path / "auto" / "ticket-0001.png").exists()


def test_from_options_checks_keys_and_values() -> None:
    sim = EscPosPrinterSimulator.from_options({"paper": "near_end", "delay": 0.1, "paper_tickets": 5})
    assert sim.paper == PaperState.NEAR_END and sim.delay == 0.1 and sim.paper_tickets == 5
    with pytest.raises(ValueError, match="'paperr'"):
        EscPosPrinterSimulator.from_options({"paperr": "ok"})
    with pytest.raises(ValueError, match="'paper'"):
        EscPosPrinterSimulator.from_options({"paper": "empty"})
    with pytest.raises(ValueError, match="'offline'"):
        EscPosPrinterSimulator.from_options({"offline": "yes"})


# ---- over a real pty and TCP -----------------------------------------------------------------
@pytest.mark.parametrize("how", ["pty", "tcp"])
def test_served_over_pty_and_tcp(how: str) -> None:
    sim = EscPosPrinterSimulator(paper="near_end")
    with SimulatorServer(sim, name="escpos-sim-test") as server:
        url = server.pty_path if how == "pty" else server.tcp_url
        port = serial.serial_for_url(url, timeout=1.0)
        try:
            for i in range(0, len(TICKET), 7):  # dribbled in small pieces, as a slow UART would
                port.write(TICKET[i:i + 7])
            port.write(b"\x10\x04\x04")
            assert port.read(1) == b"\x1e"
            assert sim.wait_for_tickets(1, timeout=2.0)
            sim.delay = 0.3
            start = time.monotonic()
            port.write(b"\x10\x04\x04")
            assert port.read(1) == b"\x1e"
            assert time.monotonic() - start >= 0.25
        finally:
            port.close()
    assert sim.printed[0].qr_payloads == [SLIP.qr_url]

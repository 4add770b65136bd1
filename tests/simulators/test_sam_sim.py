"""SAM reader driver and service against the simulator, over a real pty and over TCP."""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Iterator

import pytest

from device_drivers.health import Health, HealthEvent
from device_drivers.sam import (
    CardError,
    CardEvent,
    CardRead,
    InvalidIdNumberError,
    Reply,
    SamChecksumError,
    SamPortError,
    SamReader,
    SamReaderService,
    SamStatus,
    SamStatusError,
    SamTimeoutError,
    SamTruncatedFrameError,
    UnsupportedCardLayoutError,
    validate_id_number,
)
from simulators.base import SimulatorServer
from simulators.sam_sim import SamReaderSimulator, load_citizens

CITIZENS = load_citizens()


def polls_pass(sim: SamReaderSimulator, n: int = 3) -> None:
    """Wait until the service has polled ``n`` more times (a removal needs two empty polls)."""
    seen = len(sim.requests)
    assert wait_for(lambda: len(sim.requests) >= seen + n)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def sim() -> SamReaderSimulator:
    return SamReaderSimulator(CITIZENS)


@pytest.fixture
def server(sim: SamReaderSimulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim, name="sam-test") as srv:
        yield srv


@pytest.fixture(params=["pty", "tcp"])
def url(request: pytest.FixtureRequest, server: SimulatorServer) -> str:
    return server.pty_path if request.param == "pty" else server.tcp_url  # type: ignore[return-value]


@pytest.fixture
def reader(url: str) -> Iterator[SamReader]:
    with SamReader(url, timeout=0.3, read_timeout=0.5) as r:
        yield r


# ---- the fake citizens --------------------------------------------------------------------------
def test_citizens_file_is_a_useful_test_set() -> None:
    cards = [c for _, c in CITIZENS]
    assert len(cards) >= 8
    for card in cards:
        assert validate_id_number(card.id_number) == card.id_number
        assert card.id_number[6:14] == card.birth_date.strftime("%Y%m%d")
        assert int(card.id_number[16]) % 2 == (1 if card.sex == "男" else 0)
    today = time.localtime()
    ages = [c.age() for c in cards]
    assert sum(a > 60 for a in ages) >= 2
    assert any(c.birth_date.year == today.tm_year for c in cards)
    assert any(c.long_term for c in cards)
    assert len({c.nation for c in cards} - {"汉"}) >= 2
    assert any(c.id_number.endswith("X") for c in cards)


# ---- driver <-> simulator -----------------------------------------------------------------------
def test_reads_every_citizen(sim: SamReaderSimulator, reader: SamReader) -> None:
    for key, expected in CITIZENS:
        sim.place_card(key)
        card = reader.read_card()
        assert card == dataclasses.replace(expected, fingerprint=b"")  # 30 01 reads no fingerprint
        assert len(card.photo_wlt) == 1024 and card.photo_wlt == expected.photo_wlt


def test_read_reply_on_the_wire_is_1295_bytes(sim: SamReaderSimulator, server: SimulatorServer) -> None:
    import serial

    sim.place_card(0)
    port = serial.serial_for_url(server.tcp_url, timeout=1.0)
    try:
        port.write(bytes.fromhex("AA AA AA 96 69 00 03 20 01 22"))
        assert port.read(15) == bytes.fromhex("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97")
        port.write(bytes.fromhex("AA AA AA 96 69 00 03 20 02 21"))
        assert port.read(19)[9] == 0x90
        port.write(bytes.fromhex("AA AA AA 96 69 00 03 30 01 32"))
        wire = port.read(1295)
        assert len(wire) == 1295 and wire[5:7] == b"\x05\x08"
        time.sleep(0.1)
        assert port.in_waiting == 0
    finally:
        port.close()


def test_fingerprint_read(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.place_card("ayguli")
    assert len(reader.read_card(with_fingerprint=True).fingerprint) == 1024
    sim.place_card("wang")
    assert reader.read_card(with_fingerprint=True).fingerprint == b""


def test_sam_commands(sim: SamReaderSimulator, reader: SamReader) -> None:
    assert reader.sam_id() == "05.01-20101111-0012345678-1234567890"
    assert reader.sam_status() is SamStatus.OK
    reader.reset()
    reader.set_baud(57600)
    assert sim.baudrate == 57600 and reader.baudrate == 57600
    reader.set_baud(115200)
    with pytest.raises(ValueError, match="4800"):
        reader.set_baud(4800)


def test_no_card(sim: SamReaderSimulator, reader: SamReader) -> None:
    assert reader.find_card() is False
    with pytest.raises(SamStatusError) as err:
        reader.read_card()
    assert err.value.status is SamStatus.FIND_FAILED
    assert err.value.message == "未检测到身份证，请将身份证放在感应区"
    sim.place_card(1)
    assert reader.find_card() is True
    sim.remove_card()
    assert reader.find_card() is False


def test_select_without_find_fails(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.place_card(0)
    with pytest.raises(SamStatusError) as err:
        reader.select_card()
    assert err.value.status is SamStatus.SELECT_FAILED


def test_read_failure(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.place_card(0)
    sim.read_failure = True
    with pytest.raises(SamStatusError) as err:
        reader.read_card()
    assert err.value.code == 0x41 and "读取身份证失败" in err.value.message
    sim.read_failure = False
    assert reader.read_card().name == "王测试"


def test_forced_status_reaches_the_caller(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.force_status[(0x11, 0xFF)] = SamStatus.SAM_SELF_TEST_FAILED
    with pytest.raises(SamStatusError) as err:
        reader.sam_status()
    assert err.value.status is SamStatus.SAM_SELF_TEST_FAILED and "联系工作人员" in err.value.message


def test_bad_checksum_then_recovers(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.place_card(0)
    sim.bad_checksum = True
    reader.timeout = 3.0
    started = time.monotonic()
    with pytest.raises(SamChecksumError):
        reader.find_card()
    assert time.monotonic() - started < 1.5  # rejected at once, not after the timeout
    sim.bad_checksum = False
    assert reader.read_card().id_number == "110101195804120017"


def test_truncated_frame(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.place_card(0)
    sim.truncate = True
    with pytest.raises(SamTruncatedFrameError):
        reader.find_card()
    sim.truncate = False
    assert reader.read_card().name == "王测试"


def test_silence_is_a_timeout(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.silent = True
    started = time.monotonic()
    with pytest.raises(SamTimeoutError) as err:
        reader.find_card()
    assert 0.25 < time.monotonic() - started < 2.0
    assert err.value.message == "身份证阅读器无响应，请联系工作人员"
    sim.silent = False
    assert reader.find_card() is False


def test_delay(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.place_card(0)
    sim.delay = 0.1
    assert reader.find_card() is True  # slow but within the timeout
    sim.delay = 0.45
    with pytest.raises(SamTimeoutError):
        reader.find_card()
    sim.delay = 0.0
    time.sleep(0.3)  # let the late reply arrive; the next request must not take it for its own
    assert reader.sam_id().startswith("05.01")


def test_bad_id_check_character_on_card(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.place_card("ouyang")
    sim.corrupt_id_check = True
    with pytest.raises(InvalidIdNumberError, match="校验位错误"):
        reader.read_card()


def test_foreign_card_layout(sim: SamReaderSimulator, reader: SamReader) -> None:
    sim.place_card(0)
    sim.foreign_card = True
    with pytest.raises(UnsupportedCardLayoutError, match="外国人永久居留身份证"):
        reader.read_card()


def test_simulator_answers_a_bad_request_checksum_with_0x10(sim: SamReaderSimulator) -> None:
    sent: list[bytes] = []
    sim.attach(sent.append)
    sim.receive(bytes.fromhex("AA AA AA 96 69 00 03 20 01 23"))
    assert sent == [Reply(0, 0, SamStatus.CHECKSUM_ERROR).encode()]
    sim.receive(bytes.fromhex("AA AA AA 96 69 00 03 77 01 75"))
    assert sent[-1] == Reply(0, 0, SamStatus.BAD_COMMAND).encode()


def test_port_that_cannot_open() -> None:
    with pytest.raises(SamPortError):
        SamReader("socket://127.0.0.1:1", timeout=0.2).open()


def test_from_options(tmp_path) -> None:
    sim = SamReaderSimulator.from_options({"place": "li", "delay": 0.01})
    assert sim.card is not None and sim.card.name == "李示例" and sim.delay == 0.01
    with pytest.raises(ValueError, match="unknown options"):
        SamReaderSimulator.from_options({"plcae": 1})
    bad = tmp_path / "c.toml"
    bad.write_text('[[citizen]]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="citizen #1"):
        load_citizens(bad)


# ---- the polling service ------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.events: list[CardEvent] = []
        self.health: list[HealthEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: CardEvent) -> None:
        with self._lock:
            self.events.append(event)

    def reads(self) -> list[CardRead]:
        return [e for e in self.events if isinstance(e, CardRead)]

    def errors(self) -> list[CardError]:
        return [e for e in self.events if isinstance(e, CardError)]


@pytest.fixture
def service_factory() -> Iterator[Callable[..., tuple[SamReaderService, Recorder]]]:
    started: list[SamReaderService] = []

    def make(url: str, **kwargs) -> tuple[SamReaderService, Recorder]:
        rec = Recorder()
        options = dict(timeout=0.3, read_timeout=0.5, poll_interval_ms=40, initial_backoff=0.05,
                       max_backoff=0.3)
        options.update(kwargs)
        svc = SamReaderService(url, rec, name="kiosk1.sam", **options)
        svc.reporter.subscribe(rec.health.append)
        started.append(svc.start())
        return svc, rec

    yield make
    for svc in started:
        svc.stop()


def test_service_reads_once_per_placement(
    sim: SamReaderSimulator, url: str, service_factory
) -> None:
    svc, rec = service_factory(url)
    assert wait_for(lambda: svc.health == Health.ONLINE)
    sim.place_card("wang")
    assert wait_for(lambda: len(rec.reads()) == 1)
    polls = len(sim.requests)
    assert wait_for(lambda: len(sim.requests) > polls + 8)  # the card stays through many polls
    assert [e.data.name for e in rec.reads()] == ["王测试"]
    sim.remove_card()
    polls_pass(sim)
    sim.place_card("li")
    assert wait_for(lambda: len(rec.reads()) == 2)
    sim.remove_card()
    polls_pass(sim)
    sim.place_card("wang")
    assert wait_for(lambda: len(rec.reads()) == 3)
    polls_pass(sim, 5)
    assert [e.data.name for e in rec.reads()] == ["王测试", "李示例", "王测试"]
    assert rec.errors() == []
    assert rec.health[0].kind == "sam" and rec.health[0].device == "kiosk1.sam"


def test_service_reports_a_failed_read_once(sim: SamReaderSimulator, url: str, service_factory) -> None:
    svc, rec = service_factory(url)
    assert wait_for(lambda: svc.health == Health.ONLINE)
    sim.read_failure = True
    sim.place_card(0)
    assert wait_for(lambda: len(rec.errors()) == 1)
    polls_pass(sim, 5)
    assert [(e.code, e.message) for e in rec.events] == [(0x41, "读取身份证失败，请重新放置身份证")]
    sim.read_failure = False
    sim.remove_card()
    polls_pass(sim)
    sim.place_card(0)
    assert wait_for(lambda: len(rec.reads()) == 1)
    assert svc.health == Health.ONLINE


def test_service_reports_bad_card_data(sim: SamReaderSimulator, server: SimulatorServer, service_factory) -> None:
    svc, rec = service_factory(server.tcp_url)
    assert wait_for(lambda: svc.health == Health.ONLINE)
    sim.corrupt_id_check = True
    sim.place_card(0)
    assert wait_for(lambda: len(rec.errors()) == 1)
    assert rec.errors()[0].code is None and "校验位错误" in rec.errors()[0].message
    assert svc.health == Health.ONLINE


def test_service_goes_offline_on_silence_and_back(sim: SamReaderSimulator, url: str, service_factory) -> None:
    svc, rec = service_factory(url)
    assert wait_for(lambda: svc.health == Health.ONLINE)
    sim.silent = True
    assert wait_for(lambda: svc.health == Health.OFFLINE, 3.0)
    assert "无响应" in rec.health[-1].reason
    sim.silent = False
    assert wait_for(lambda: svc.health == Health.ONLINE, 5.0)
    sim.place_card(0)
    assert wait_for(lambda: len(rec.reads()) == 1)


def test_service_degraded_on_damaged_replies_then_offline(
    sim: SamReaderSimulator, server: SimulatorServer, service_factory
) -> None:
    svc, rec = service_factory(server.tcp_url, max_frame_errors=4, poll_interval_ms=150)
    assert wait_for(lambda: svc.health == Health.ONLINE)
    sim.bad_checksum = True
    assert wait_for(lambda: svc.health == Health.DEGRADED, 2.0)
    assert "校验错误" in rec.health[-1].reason
    assert wait_for(lambda: svc.health == Health.OFFLINE, 3.0)
    sim.bad_checksum = False
    assert wait_for(lambda: svc.health == Health.ONLINE, 5.0)


def test_service_recovers_after_the_link_drops(
    sim: SamReaderSimulator, server: SimulatorServer, service_factory
) -> None:
    svc, rec = service_factory(server.tcp_url)
    assert wait_for(lambda: svc.health == Health.ONLINE)
    server.drop_clients()  # a serial device server rebooting
    assert wait_for(lambda: svc.health == Health.OFFLINE, 3.0)
    assert wait_for(lambda: svc.health == Health.ONLINE, 5.0)
    sim.place_card("zhaxi")
    assert wait_for(lambda: len(rec.reads()) == 1)
    assert rec.reads()[0].data.nation == "藏"


def test_service_offline_while_port_is_gone(service_factory) -> None:
    svc, rec = service_factory("socket://127.0.0.1:1")
    assert wait_for(lambda: svc.health == Health.OFFLINE, 3.0)
    assert "连接失败" in rec.health[-1].reason

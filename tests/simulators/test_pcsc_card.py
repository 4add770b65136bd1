"""PcscReaderService against a REAL pcscd with vsmartcard's vpcd reader and our virtual 社保卡.

Skips only when pcscd or the vpcd driver is not installed. When they are, anything else (pyscard
missing, pcscd not starting, the "Virtual PCD" reader never appearing) fails loudly.
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from device_drivers.health import Health, HealthEvent
from device_drivers.pcsc import (
    NO_READER,
    CardError,
    CardInserted,
    CardRemoved,
    PcscReaderService,
    ReaderAdded,
    ReaderRemoved,
    SocialSecurityCardRead,
)
from simulators.pcsc_card import SocialSecurityHolder, VirtualSocialSecurityCard, VpcdCardClient

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pcscd-test.sh"
VPCD_LIB = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER0, PORT0 = "Virtual PCD 00 00", 35963
READER1, PORT1 = "Virtual PCD 00 01", 35964
WAIT = 10.0


def _scard_readers() -> list[str]:
    from smartcard import scard

    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return []
    try:
        hr, readers = scard.SCardListReaders(ctx, [])
        return list(readers) if hr == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(ctx)


def _start_pcscd() -> None:
    # A pcscd restarted soon after its vpcd port saw connections can come up without vpcd listening:
    # vpcd cannot bind while old connections on that port sit in TIME_WAIT (up to 60 s). Ours is
    # stopped and started again until the port is free.
    deadline = time.monotonic() + 75
    while True:
        out = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            return
        if "does not listen" not in out.stderr or time.monotonic() > deadline:
            pytest.fail(f"{SCRIPT.name} failed (exit {out.returncode}) although pcscd and vpcd are installed: "
                        f"{out.stderr.strip()}")
        stop = subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=30)
        if stop.returncode != 0:
            pytest.fail(f"pcscd runs without vpcd listening and cannot be restarted: {stop.stderr.strip()}")
        time.sleep(2.0)


def _hold_pcscd() -> int | None:
    """A context kept open for the module: pcscd --auto-exit quits after 60 s without clients, and a
    pcscd left idle by an earlier module may be about to do just that when this one starts."""
    from smartcard import scard

    for _attempt in range(3):
        _start_pcscd()
        hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr == scard.SCARD_S_SUCCESS:
            return ctx
        time.sleep(1.0)  # it exited between the script's check and our connect: start it again
    return None


@pytest.fixture(scope="module")
def pcscd() -> Iterator[None]:
    if shutil.which("pcscd") is None and not os.path.exists("/usr/sbin/pcscd"):
        pytest.skip("pcscd is not installed (Debian package pcscd)")
    if not VPCD_LIB.exists():
        pytest.skip("vpcd reader driver is not installed (Debian package vsmartcard-vpcd)")
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        pytest.fail("pcscd is installed but pyscard is not: pip install 'hall-queue[pcsc]'")
    from smartcard import scard

    for attempt in (1, 2):
        ctx = _hold_pcscd()
        if ctx is None:
            pytest.fail("pcscd started but no client could connect to it")
        deadline = time.monotonic() + WAIT
        while READER0 not in _scard_readers() and time.monotonic() < deadline:
            time.sleep(0.2)
        if READER0 in _scard_readers():
            break
        readers = _scard_readers()
        scard.SCardReleaseContext(ctx)
        stop = subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=30)
        if attempt == 2 or stop.returncode != 0:  # ours is restarted once
            pytest.fail(f"pcscd runs but the reader {READER0!r} never appeared; readers: {readers}; "
                        f"restarting it: {stop.stderr.strip() or 'did not help'}")
    try:
        yield
    finally:
        scard.SCardReleaseContext(ctx)


class Recorder:
    """Collects service events and health changes; waits with a wall-clock bound."""

    def __init__(self) -> None:
        self.q: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.q.put(event)

    def wait_for(self, match: Callable[[Any], bool], what: str, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout}s; events so far: {self.seen}")
            try:
                event = self.q.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if match(event):
                return event


def of(cls: type, reader: str | None = None) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, cls) and (reader is None or getattr(e, "reader", None) == reader)


@pytest.fixture
def service(pcscd: None) -> Iterator[tuple[PcscReaderService, Recorder]]:
    rec = Recorder()
    svc = PcscReaderService("kiosk1.cardreader", poll_interval=0.1, max_backoff=1.0)
    svc.subscribe(rec)
    svc.subscribe_health(rec)
    svc.start()
    rec.wait_for(of(ReaderAdded, READER0), "ReaderAdded for the vpcd reader")
    yield svc, rec
    svc.stop()


@pytest.fixture
def cards(pcscd: None) -> Iterator[Callable[..., VpcdCardClient]]:
    """Insert virtual cards; every card still in at the end is taken out again."""
    made: list[VpcdCardClient] = []

    def insert(port: int = PORT0, **options: Any) -> VpcdCardClient:
        client = VpcdCardClient(VirtualSocialSecurityCard(**options), port=port)
        made.append(client)
        return client.insert()

    yield insert
    for client in made:
        client.remove()
    # pcscd notices a removal on its next presence poll; a card put on before that would look like
    # the same card to it, so let each test start with empty readers
    for port in {c.port for c in made}:
        _wait_empty(READER0 if port == PORT0 else READER1)


def _wait_empty(reader: str, timeout: float = 5.0) -> None:
    from smartcard import scard

    hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hr, states = scard.SCardGetStatusChange(ctx, 100, [(reader, scard.SCARD_STATE_UNAWARE)])
            if hr == scard.SCARD_S_SUCCESS and states[0][1] & scard.SCARD_STATE_EMPTY:
                return
            time.sleep(0.05)
        raise AssertionError(f"{reader} still shows a card {timeout}s after the virtual card was removed")
    finally:
        scard.SCardReleaseContext(ctx)


def test_reads_uid_and_social_security_card_then_sees_it_removed(service, cards) -> None:
    svc, rec = service
    assert READER0 in svc.readers and READER1 in svc.readers
    assert svc.health.current is not None and svc.health.current.health == Health.ONLINE

    card = cards(uid=bytes.fromhex("04A1B2C3D4E5F6"), holder=SocialSecurityHolder(name="王小明"))
    inserted = rec.wait_for(of(CardInserted, READER0), "CardInserted")
    assert inserted.uid == bytes.fromhex("04A1B2C3D4E5F6")
    assert inserted.atr == card.card.atr
    read = rec.wait_for(of(SocialSecurityCardRead, READER0), "SocialSecurityCardRead")
    assert read.data.name == "王小明"
    assert read.data.card_number == "A12345678"
    assert read.data.id_number == "11010519491231002X" and read.data.id_number_valid
    assert read.data.sex == "男" and read.data.problems == ()

    card.remove()
    rec.wait_for(of(CardRemoved, READER0), "CardRemoved")


def test_plain_card_gives_uid_and_a_clear_error(service, cards) -> None:
    _, rec = service
    cards(uid=bytes.fromhex("DEADBEEF"), social_security=False)
    assert rec.wait_for(of(CardInserted, READER0), "CardInserted").uid == bytes.fromhex("DEADBEEF")
    error = rec.wait_for(of(CardError, READER0), "CardError")
    assert error.sw == 0x6A82 and "不是社会保障卡" in error.message


def test_pin_protected_card_reports_what_it_could_read(service, cards) -> None:
    _, rec = service
    cards(holder_pin="123456", uid_supported=False)
    assert rec.wait_for(of(CardInserted, READER0), "CardInserted").uid is None
    data = rec.wait_for(of(SocialSecurityCardRead, READER0), "SocialSecurityCardRead").data
    assert data.card_number == "A12345678" and data.name is None
    assert "6982" in data.problems[0]


def test_second_reader_and_a_reader_filter(pcscd, cards) -> None:
    rec = Recorder()
    with PcscReaderService(reader_filter=READER1, poll_interval=0.1) as svc:
        svc.subscribe(rec)
        cards(port=PORT1, uid=b"\x01\x02\x03\x04")
        cards(port=PORT0, uid=b"\x09\x09\x09\x09")
        inserted = rec.wait_for(of(CardInserted), "CardInserted")
        assert (inserted.reader, inserted.uid) == (READER1, b"\x01\x02\x03\x04")
        assert svc.readers == [READER1]
        rec.wait_for(of(SocialSecurityCardRead, READER1), "SocialSecurityCardRead")
    assert not any(getattr(e, "reader", READER1) != READER1 for e in rec.seen)


def test_no_matching_reader_is_offline(pcscd) -> None:
    rec = Recorder()
    svc = PcscReaderService(reader_filter="ACS ACR1281", poll_interval=0.1)
    svc.subscribe_health(rec)  # before it starts: its first health event may come at once
    svc.start()
    try:
        event: HealthEvent = rec.wait_for(of(HealthEvent), "health event")
        assert (event.health, event.reason) == (Health.OFFLINE, NO_READER)
        assert svc.readers == []
    finally:
        svc.stop()


def test_readers_disappear_with_pcscd_and_come_back(service, cards) -> None:
    """Stops the pcscd our script started (not anyone else's) and starts it again."""
    svc, rec = service
    stop = subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=30)
    if stop.returncode == 5:
        pytest.skip(f"pcscd was started outside {SCRIPT.name}; not ours to stop: {stop.stderr.strip()}")
    assert stop.returncode == 0, stop.stderr
    try:
        rec.wait_for(of(ReaderRemoved, READER0), "ReaderRemoved after pcscd stopped")
        offline = rec.wait_for(lambda e: isinstance(e, HealthEvent) and e.health == Health.OFFLINE,
                               "offline health")
        assert offline.reason == NO_READER
        assert svc.readers == []
    finally:
        _start_pcscd()
    rec.wait_for(of(ReaderAdded, READER0), "ReaderAdded after pcscd restarted")
    rec.wait_for(lambda e: isinstance(e, HealthEvent) and e.health == Health.ONLINE, "online health")
    # the service re-established its context: a card put on now is read
    cards(uid=b"\x0A\x0B\x0C\x0D")
    assert rec.wait_for(of(CardInserted, READER0), "CardInserted after restart").uid == b"\x0A\x0B\x0C\x0D"
    rec.wait_for(of(SocialSecurityCardRead, READER0), "SocialSecurityCardRead after restart")


def test_card_pulled_out_while_being_read(service, cards) -> None:
    _, rec = service
    slow = cards(uid=b"\x51\x52")
    slow.card.delay = 0.1  # each answer takes 100 ms: the whole read takes about 2 s
    rec.wait_for(of(CardInserted, READER0), "CardInserted")
    slow.remove()
    error = rec.wait_for(of(CardError, READER0), "CardError")
    assert "请重新放卡" in error.message
    rec.wait_for(of(CardRemoved, READER0), "CardRemoved")
    assert not any(isinstance(e, SocialSecurityCardRead) for e in rec.seen)
    _wait_empty(READER0)
    cards(uid=b"\x61\x62")  # the citizen tries again
    assert rec.wait_for(of(CardInserted, READER0), "CardInserted").uid == b"\x61\x62"
    assert rec.wait_for(of(SocialSecurityCardRead, READER0), "SocialSecurityCardRead").data.complete


def test_card_from_options_as_a_config_file_would_give_them() -> None:
    client = VpcdCardClient.from_options({"port": 35964, "label": "kiosk2", "uid": "A1B2", "name": "李四",
                                          "birth_date": "1990-02-03", "holder_pin": "123456"})
    assert (client.port, client.name, client.card.uid) == (35964, "kiosk2", b"\xa1\xb2")
    assert client.card.holder.name == "李四" and client.card.holder.birth_date.year == 1990
    assert client.card.holder_pin == "123456"
    with pytest.raises(ValueError, match="colour"):
        VpcdCardClient.from_options({"colour": "red"})

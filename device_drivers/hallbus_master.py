"""Hall bus master: one port, several addressed devices, one thread that owns the port.

RS-485 is half duplex and the host is the only master: a device speaks only when a request addressed
to it arrives, so every exchange is "send, wait for the reply or a timeout". One thread (run by a
:class:`~device_drivers.supervisor.DeviceSupervisor`, which reopens the port with backoff when it
fails) does all reads and writes. Other threads hand it requests with :meth:`HallBusMaster.submit`
and get a :class:`concurrent.futures.Future` back.

Per address the master keeps a :class:`~device_drivers.health.HealthReporter`: a device that stops
answering after all retries is reported offline and probed again every ``offline_retry_interval``
with a single attempt, so it does not slow the bus for the others; when it answers it is online again
and ``on_online`` listeners run (an LED board driver repaints its last content). Pads are polled for
key events every ``poll_interval``; LED boards get a PING every ``heartbeat_interval`` so a dead board
shows as offline even when nobody writes to it.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import serial

from . import hallbus as hb
from .health import Health, HealthEvent, HealthListener, HealthReporter
from .supervisor import DeviceSupervisor
from .transport import open_port

log = logging.getLogger(__name__)

EventListener = Callable[[int, list[hb.RawEvent]], None]
OnlineListener = Callable[[int], None]


class HallBusError(Exception):
    """A request on the hall bus failed."""


class BusNotConnected(HallBusError):
    """The bus port is not open (yet, or any more); the supervisor is reconnecting."""


class NoReply(HallBusError):
    def __init__(self, address: int, attempts: int) -> None:
        super().__init__(f"设备 {address} 无应答 (no reply after {attempts} attempt(s))")
        self.address = address
        self.attempts = attempts


class NakError(HallBusError):
    def __init__(self, address: int, reason: hb.NakReason | int) -> None:
        label = reason.label if isinstance(reason, hb.NakReason) else f"未知原因 0x{reason:02X}"
        super().__init__(f"设备 {address} 拒绝命令: {label}")
        self.address = address
        self.reason = reason


def acked(source: "Future[Any]") -> "Future[None]":
    """A future that completes with None when ``source`` does, or with its exception: what a
    driver returns for "the device accepted it"."""
    out: Future[None] = Future()

    def _copy(f: "Future[Any]") -> None:
        exc = f.exception()
        if exc is not None:
            out.set_exception(exc)
        else:
            out.set_result(None)

    source.add_done_callback(_copy)
    return out


@dataclass
class AddressStats:
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    naks: int = 0


@dataclass
class _Device:
    address: int
    device_type: hb.DeviceType
    reporter: HealthReporter
    seq: int = field(default_factory=lambda: random.randrange(256))
    online: bool | None = None  # None until the first exchange
    next_check: float = 0.0  # next poll (pads), heartbeat (LED) or offline probe
    stats: AddressStats = field(default_factory=AddressStats)

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFF
        return self.seq


@dataclass
class _Job:
    address: int
    cmd: int
    payload: bytes
    future: Future


class HallBusMaster:
    """Owns one port URL shared by several addressed hall devices."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "hallbus",
        baudrate: int = 9600,
        reply_timeout: float = 0.2,
        retries: int = 3,
        poll_interval: float = 0.2,
        heartbeat_interval: float = 5.0,
        offline_retry_interval: float = 2.0,
        broadcast_repeats: int = 2,
        inter_byte_timeout: float = 0.05,
        log_traffic: bool = False,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = url
        self.name = name
        self.baudrate = baudrate
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.offline_retry_interval = offline_retry_interval
        self.broadcast_repeats = max(1, broadcast_repeats)
        self.inter_byte_timeout = inter_byte_timeout
        self.log_traffic = log_traffic
        self.reporter = HealthReporter(name, "hallbus")
        self.parser = hb.FrameParser()
        self._devices: dict[int, _Device] = {}
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._connected = False
        self._bus_thread: threading.Thread | None = None
        self._broadcast_seq = random.randrange(256)
        self._event_listeners: dict[int, list[EventListener]] = {}
        self._online_listeners: dict[int, list[OnlineListener]] = {}
        self._health_listeners: list[HealthListener] = []
        self._supervisor = DeviceSupervisor(
            self.reporter, self._connect, self._serve, self._close,
            initial_backoff=initial_backoff, max_backoff=max_backoff,
        )

    # ---- configuration ---------------------------------------------------------------------
    def add_device(self, address: int, device_type: hb.DeviceType | int) -> HealthReporter:
        """Declare that ``address`` on this bus is a device of ``device_type``; idempotent."""
        if address not in hb.DEVICE_ADDRESSES:
            raise ValueError(f"device address {address} outside 1..254 (0 is the host, 255 broadcast)")
        dtype = hb.DeviceType(device_type)
        with self._cond:
            dev = self._devices.get(address)
            if dev is not None:
                if dev.device_type != dtype:
                    raise ValueError(f"address {address} on {self.name} is already a "
                                     f"{dev.device_type.name}, not a {dtype.name}")
                return dev.reporter
            reporter = HealthReporter(f"{self.name}.{address}", dtype.kind)
            for listener in self._health_listeners:
                reporter.subscribe(listener)
            self._devices[address] = _Device(address, dtype, reporter)
            self._cond.notify_all()
            return reporter

    def on_events(self, address: int, listener: EventListener) -> None:
        """``listener(address, events)`` runs on the bus thread for every non-empty poll reply."""
        self._event_listeners.setdefault(address, []).append(listener)

    def on_online(self, address: int, listener: OnlineListener) -> None:
        """``listener(address)`` runs on the bus thread when ``address`` starts answering again."""
        self._online_listeners.setdefault(address, []).append(listener)

    def subscribe_health(self, listener: HealthListener) -> None:
        """Health of the port and of every address (present and future)."""
        self._health_listeners.append(listener)
        self.reporter.subscribe(listener)
        with self._cond:
            for dev in self._devices.values():
                dev.reporter.subscribe(listener)

    # ---- state -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def is_online(self, address: int) -> bool:
        dev = self._devices.get(address)
        return bool(dev and dev.online)

    def health(self, address: int) -> HealthEvent | None:
        dev = self._devices.get(address)
        return dev.reporter.current if dev else None

    def stats(self, address: int) -> AddressStats:
        return self._devices[address].stats

    @property
    def supervisor(self) -> DeviceSupervisor[Any]:
        return self._supervisor

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> "HallBusMaster":
        self._supervisor.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._supervisor.stop_event.set()
        with self._cond:
            self._cond.notify_all()
        self._supervisor.stop(timeout)

    def __enter__(self) -> "HallBusMaster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- requests --------------------------------------------------------------------------
    def submit(self, address: int, cmd: int, payload: bytes = b"") -> "Future[hb.Frame]":
        """Queue a request; the future gets the reply frame (ACK, INFO, EVENTS) or an exception:
        :class:`NoReply`, :class:`NakError`, :class:`BusNotConnected`."""
        future: Future[hb.Frame] = Future()
        if address == hb.BROADCAST:
            raise ValueError("use broadcast() for the broadcast address")
        hb.Frame(address, 0, cmd, payload)  # validates ranges before queueing
        with self._cond:
            if address not in self._devices:
                raise KeyError(f"address {address} is not declared on {self.name}; "
                               f"known: {sorted(self._devices)}")
            if not self._connected:
                future.set_exception(BusNotConnected(f"总线 {self.name} 端口 {self.url} 未连接"))
                return future
            self._jobs.append(_Job(address, cmd, payload, future))
            self._cond.notify_all()
        return future

    def request(self, address: int, cmd: int, payload: bytes = b"",
                timeout: float | None = None) -> hb.Frame:
        """Blocking :meth:`submit`; ``timeout`` defaults to the worst case of all retries."""
        if threading.current_thread() is self._bus_thread:
            raise RuntimeError("request() would deadlock on the bus thread; use submit()")
        if timeout is None:
            timeout = (self.retries + 1) * (self.reply_timeout + 0.5) + 5.0
        return self.submit(address, cmd, payload).result(timeout)

    def broadcast(self, cmd: int, payload: bytes = b"") -> "Future[None]":
        """Send to every device (address 255); nobody answers, so it is sent
        ``broadcast_repeats`` times with one sequence number and devices run it once."""
        future: Future[None] = Future()
        hb.Frame(hb.BROADCAST, 0, cmd, payload)
        with self._cond:
            if not self._connected:
                future.set_exception(BusNotConnected(f"总线 {self.name} 端口 {self.url} 未连接"))
                return future
            self._jobs.append(_Job(hb.BROADCAST, cmd, payload, future))  # type: ignore[arg-type]
            self._cond.notify_all()
        return future

    # ---- the bus thread --------------------------------------------------------------------
    def _connect(self) -> Any:
        port = open_port(self.url, baudrate=self.baudrate, timeout=0.02, name=self.name,
                         log_traffic=self.log_traffic)
        return port

    def _close(self, port: Any) -> None:
        port.close()

    def _serve(self, port: Any, stop: threading.Event) -> None:
        self._bus_thread = threading.current_thread()
        self.parser.reset()
        with self._cond:
            self._connected = True
            now = time.monotonic()
            for dev in self._devices.values():
                dev.next_check = now  # probe everybody at once
        log.info("%s: bus open on %s", self.name, self.url)
        current: _Job | None = None
        try:
            prefer_job = True
            while not stop.is_set():
                job, due = self._next_work(prefer_job)
                if job is not None:
                    current = job
                    self._run_job(port, job)
                    current = None
                    prefer_job = False
                elif due is not None:
                    self._run_check(port, due)
                    prefer_job = True
                else:
                    prefer_job = True
        finally:
            with self._cond:
                self._connected = False
                pending = list(self._jobs)
                self._jobs.clear()
                devices = list(self._devices.values())
            if current is not None:
                pending.insert(0, current)
            err = BusNotConnected(f"总线 {self.name} 端口 {self.url} 断开")
            for job in pending:
                if not job.future.done():
                    job.future.set_exception(err)
            for dev in devices:
                dev.online = False
                dev.reporter.report(Health.OFFLINE, "总线端口断开")

    def _next_work(self, prefer_job: bool) -> tuple[_Job | None, _Device | None]:
        """One queued job or one due check, alternating so polls are not starved; waits if idle."""
        with self._cond:
            now = time.monotonic()
            due = min(self._devices.values(), key=lambda d: d.next_check, default=None)
            due_now = due if due is not None and due.next_check <= now else None
            if self._jobs and (prefer_job or due_now is None):
                return self._jobs.popleft(), None
            if due_now is not None:
                return None, due_now
            wait = 0.5 if due is None else min(0.5, due.next_check - now)
            self._cond.wait(max(wait, 0.001))
            return None, None

    def _attempts_for(self, dev: _Device) -> int:
        # a device known to be offline gets one try so it does not hold up the bus for the others
        return 1 if dev.online is False else self.retries + 1

    def _run_job(self, port: Any, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        if job.address == hb.BROADCAST:
            self._send_broadcast(port, job)
            return
        dev = self._devices[job.address]
        try:
            reply = self._exchange(port, dev, job.cmd, job.payload, self._attempts_for(dev))
        except HallBusError as exc:
            job.future.set_exception(exc)
        else:
            job.future.set_result(reply)

    def _send_broadcast(self, port: Any, job: _Job) -> None:
        self._broadcast_seq = (self._broadcast_seq + 1) & 0xFF
        data = hb.encode(hb.Frame(hb.BROADCAST, self._broadcast_seq, job.cmd, job.payload))
        for i in range(self.broadcast_repeats):
            port.write(data)
            port.flush()
            time.sleep(self._tx_time(len(data)) + 0.01)
        job.future.set_result(None)

    def _run_check(self, port: Any, dev: _Device) -> None:
        """Poll a pad, ping an LED board, or probe an offline device."""
        was_online = dev.online
        if dev.device_type.is_pad and dev.online:
            cmd = hb.Command.POLL
        else:
            cmd = hb.Command.PING
        try:
            reply = self._exchange(port, dev, cmd, b"", self._attempts_for(dev))
        except NakError:
            reply = None  # it answered: the exchange marked it online
        except HallBusError:
            reply = None
        now = time.monotonic()
        if not dev.online:
            dev.next_check = now + self.offline_retry_interval
        elif dev.device_type.is_pad:
            dev.next_check = now + (0 if was_online is not True else self.poll_interval)
        else:
            dev.next_check = now + self.heartbeat_interval
        if reply is None:
            return
        if reply.cmd == hb.Command.INFO:
            self._check_info(dev, reply)
        elif reply.cmd == hb.Command.EVENTS:
            try:
                events = hb.unpack_events(reply.payload)
            except hb.FrameError as exc:
                log.warning("%s: bad EVENTS from %d: %s", self.name, dev.address, exc)
                return
            if events:
                for listener in list(self._event_listeners.get(dev.address, ())):
                    try:
                        listener(dev.address, events)
                    except Exception:
                        log.exception("%s: event listener for %d failed", self.name, dev.address)

    def _check_info(self, dev: _Device, reply: hb.Frame) -> None:
        try:
            info = hb.unpack_info(reply.payload)
        except hb.FrameError as exc:
            log.warning("%s: bad INFO from %d: %s", self.name, dev.address, exc)
            return
        if info.device_type != dev.device_type:
            log.warning("%s: address %d reports device type 0x%02X, configured %s", self.name,
                        dev.address, info.device_type, dev.device_type.name)

    def _tx_time(self, nbytes: int) -> float:
        return nbytes * 10.0 / self.baudrate

    def _exchange(self, port: Any, dev: _Device, cmd: int, payload: bytes, attempts: int) -> hb.Frame:
        """Send one request (same sequence number on every retry) and return its reply."""
        seq = dev.next_seq()
        data = hb.encode(hb.Frame(dev.address, seq, cmd, payload))
        dev.stats.requests += 1
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                dev.stats.retries += 1
                log.debug("%s: retry %d to %d seq %d", self.name, attempt - 1, dev.address, seq)
            self._discard_input(port)
            try:
                port.write(data)
                port.flush()
            except serial.SerialTimeoutException as exc:
                raise serial.SerialException(f"write to {self.url} timed out") from exc
            reply = self._read_reply(port, dev.address, seq, len(data))
            if reply is None:
                dev.stats.timeouts += 1
                continue
            self._mark_online(dev)
            if reply.cmd == hb.Command.NAK:
                dev.stats.naks += 1
                reason = hb.unpack_nak(reply.payload)
                log.info("%s: %d refused 0x%02X: %s", self.name, dev.address, cmd, reason)
                if isinstance(reason, hb.NakReason) and reason.transient and attempt < attempts:
                    continue
                raise NakError(dev.address, reason)
            return reply
        self._mark_offline(dev, attempts)
        raise NoReply(dev.address, attempts)

    def _discard_input(self, port: Any) -> None:
        port.reset_input_buffer()
        self.parser.reset()

    def _read_reply(self, port: Any, address: int, seq: int, sent: int) -> hb.Frame | None:
        now = time.monotonic()
        deadline = now + self._tx_time(sent) + self.reply_timeout
        last_rx = now
        while True:
            now = time.monotonic()
            if now >= deadline:
                # a reply still arriving on a slow line gets a little longer
                if self.parser.in_frame and now - last_rx < self.inter_byte_timeout:
                    deadline = now + self.inter_byte_timeout
                else:
                    return None
            chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                continue
            last_rx = time.monotonic()
            for frame in self.parser.feed(chunk):
                if not frame.is_reply:
                    continue  # our own echo on a bus adapter that echoes
                if frame.address == address and frame.seq == seq:
                    return frame
                log.debug("%s: stray frame %s", self.name, frame.describe())

    def _mark_online(self, dev: _Device) -> None:
        if dev.online:
            return
        dev.online = True
        dev.reporter.report(Health.ONLINE)
        log.info("%s: device %d (%s) online", self.name, dev.address, dev.device_type.name)
        if dev.device_type.is_pad:
            dev.next_check = time.monotonic()
        for listener in list(self._online_listeners.get(dev.address, ())):
            try:
                listener(dev.address)
            except Exception:
                log.exception("%s: online listener for %d failed", self.name, dev.address)

    def _mark_offline(self, dev: _Device, attempts: int) -> None:
        if dev.online is False:
            return
        dev.online = False
        dev.reporter.report(Health.OFFLINE, f"无应答 (重试 {attempts - 1} 次后)")
        log.warning("%s: device %d (%s) offline after %d attempt(s)", self.name, dev.address,
                    dev.device_type.name, attempts)

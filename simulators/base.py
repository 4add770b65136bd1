"""Serve a simulated device over a real pty and over TCP.

A simulated device is an object with ``receive(data: bytes)`` that answers by calling the ``send``
function it was attached with. :class:`SimulatorServer` gives it a pty (``pty_path``, opened by the
driver like any ``/dev/ttyUSB0``) and a TCP listener (``tcp_url`` = ``socket://127.0.0.1:PORT``, like a
serial device server), so the real driver code runs unchanged against it.

Fault switches shared by all simulators: ``silent`` (swallow input, answer nothing, like a device that
is powered off) and ``delay`` (seconds to wait before each answer, like a slow device).
"""
from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import tty
from typing import Callable, Protocol

log = logging.getLogger(__name__)

Send = Callable[[bytes], None]


class SimulatedDevice(Protocol):
    def attach(self, send: Send) -> None: ...

    def receive(self, data: bytes) -> None: ...


class DeviceBase:
    """Convenience base: stores ``send`` and applies the shared fault switches."""

    silent: bool = False
    delay: float = 0.0

    def __init__(self) -> None:
        self._send: Send = lambda data: None

    def attach(self, send: Send) -> None:
        self._send = send

    def send(self, data: bytes) -> None:
        if self.silent:
            return
        if self.delay:
            time.sleep(self.delay)
        self._send(data)

    def receive(self, data: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class SimulatorServer:
    """Runs one simulated device on a pty and on a TCP port at once."""

    def __init__(
        self,
        device: SimulatedDevice,
        *,
        name: str = "device",
        pty: bool = True,
        tcp_host: str = "127.0.0.1",
        tcp_port: int | None = 0,
    ) -> None:
        self.device = device
        self.name = name
        self._want_pty = pty
        self._tcp_addr = (tcp_host, tcp_port) if tcp_port is not None else None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # serialises writes from the device to the endpoints
        self._master: int | None = None
        self._slave: int | None = None
        self.pty_path: str | None = None
        self._listener: socket.socket | None = None
        self._clients: list[socket.socket] = []
        self.tcp_port: int | None = None
        self._threads: list[threading.Thread] = []
        device.attach(self._broadcast)

    # ---- endpoints -------------------------------------------------------------------------
    @property
    def tcp_url(self) -> str:
        if self.tcp_port is None:
            raise RuntimeError(f"{self.name}: no TCP endpoint")
        return f"socket://127.0.0.1:{self.tcp_port}"

    def _broadcast(self, data: bytes) -> None:
        with self._lock:
            if self._master is not None:
                try:
                    written = os.write(self._master, data)
                except BlockingIOError:
                    written = 0
                except OSError:
                    log.debug("%s: pty write failed", self.name, exc_info=True)
                    written = len(data)
                if written < len(data):  # nobody reads the line: its bytes are lost, as on a real one
                    log.debug("%s: pty full, %d byte(s) dropped", self.name, len(data) - written)
            for client in list(self._clients):
                try:
                    client.sendall(data)
                except OSError:
                    self._clients.remove(client)

    def _pty_loop(self) -> None:
        assert self._master is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                time.sleep(0.05)
                continue
            if data:
                self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        try:
            self.device.receive(data)
        except Exception:  # a simulator bug must not kill the endpoint
            log.exception("%s: simulator failed on %r", self.name, data[:64])

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.append(client)
            t = threading.Thread(target=self._client_loop, args=(client,), daemon=True)
            t.start()

    def _client_loop(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = client.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            self._deliver(data)
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
        client.close()

    def drop_clients(self) -> None:
        """Cut every TCP connection, as a rebooting serial device server would."""
        with self._lock:
            for client in self._clients:
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                client.close()
            self._clients.clear()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> "SimulatorServer":
        if self._want_pty:
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)  # no echo, no line discipline: bytes pass unchanged
            # a write to a pty nobody reads would block once its buffer is full, holding the lock
            # that stop() needs (a demo stopped after its kiosks hung for minutes)
            os.set_blocking(self._master, False)
            self.pty_path = os.ttyname(self._slave)
            self._spawn(self._pty_loop, "pty")
        if self._tcp_addr is not None:
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(self._tcp_addr)
            self._listener.listen(8)
            self._listener.settimeout(0.2)
            self.tcp_port = self._listener.getsockname()[1]
            self._spawn(self._accept_loop, "tcp")
        log.info("%s: simulator on pty %s and %s", self.name, self.pty_path,
                 self.tcp_url if self.tcp_port else "no tcp")
        return self

    def _spawn(self, target: Callable[[], None], what: str) -> None:
        t = threading.Thread(target=target, name=f"sim-{self.name}-{what}", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        self.drop_clients()
        for t in self._threads:
            t.join(2)
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    def __enter__(self) -> "SimulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The simulators' pty and TCP endpoints (simulators/base.py)."""
from __future__ import annotations

import threading

from simulators.base import DeviceBase, SimulatorServer


class Chatty(DeviceBase):
    """A device that keeps sending, like a reader reporting cards, whatever it is told."""

    def receive(self, data: bytes) -> None:
        pass


def test_a_device_talking_to_a_pty_nobody_reads_neither_blocks_nor_holds_up_stop() -> None:
    """When the program on the other end of the line is gone (a stopped kiosk), the device's bytes are
    lost as on a real serial line; neither the device nor stop() waits for a reader (a stopped demo
    hung for minutes in stop())."""
    dev = Chatty()
    server = SimulatorServer(dev, name="chatty", tcp_port=None).start()
    sent = threading.Event()

    def talk() -> None:
        for _ in range(256):
            dev.send(b"x" * 1024)  # 256 KB: far more than a pty holds
        sent.set()

    threading.Thread(target=talk, daemon=True).start()
    assert sent.wait(10), "the device blocked writing to a pty nobody reads"
    stopped = threading.Event()
    threading.Thread(target=lambda: (server.stop(), stopped.set()), daemon=True).start()
    assert stopped.wait(10), "stop() hung"


def test_a_reader_on_the_pty_still_gets_every_byte() -> None:
    import os

    dev = Chatty()
    server = SimulatorServer(dev, name="chatty", tcp_port=None).start()
    try:
        fd = os.open(server.pty_path, os.O_RDWR | os.O_NOCTTY)
        try:
            dev.send(b"\x02card 330102199001011234\x03")
            got = b""
            while not got.endswith(b"\x03"):
                got += os.read(fd, 64)
            assert got == b"\x02card 330102199001011234\x03"
        finally:
            os.close(fd)
    finally:
        server.stop()

"""Ports by URL.

Every device is opened with pyserial's ``serial_for_url`` so that a device path, ``socket://host:port``
(serial device servers), ``rfc2217://``, ``loop://`` and ``hwgrep://VID:PID`` (a USB-serial adapter found
wherever it is plugged in; pyserial matches the regular expression against the port's hardware id,
e.g. ``hwgrep://1a86:7523``) all work the same, and a simulator can sit behind any of them.

Raw traffic of one device is logged in hex on the logger ``device_drivers.traffic.<name>`` at DEBUG
level when ``log_traffic`` is true, which is how a hall's wiring problems are diagnosed.
"""
from __future__ import annotations

import logging
from typing import Any

import serial

log = logging.getLogger(__name__)


class PortError(OSError):
    """The port could not be opened, or it failed while in use."""


class LoggedPort:
    """Wraps a pyserial port and logs every byte read and written (works for every URL scheme,
    unlike pyserial's ``spy://`` which only wraps native ports)."""

    def __init__(self, port: serial.SerialBase, name: str) -> None:
        self._port = port
        self._log = logging.getLogger(f"device_drivers.traffic.{name}")

    def write(self, data: bytes) -> int | None:
        self._log.debug("TX %s", data.hex(" "))
        return self._port.write(data)

    def read(self, size: int = 1) -> bytes:
        data = self._port.read(size)
        if data:
            self._log.debug("RX %s", data.hex(" "))
        return data

    def __getattr__(self, item: str) -> Any:
        return getattr(self._port, item)


def open_port(
    url: str,
    *,
    baudrate: int = 9600,
    timeout: float | None = 0.5,
    write_timeout: float | None = 2.0,
    name: str | None = None,
    log_traffic: bool = False,
) -> Any:
    """Open ``url``; raise :class:`PortError` with the URL in the message when that fails."""
    try:
        port = serial.serial_for_url(
            url, baudrate=baudrate, timeout=timeout, write_timeout=write_timeout
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(f"cannot open port {url!r}: {exc}") from exc
    log.debug("opened %s at %d baud", url, baudrate)
    if log_traffic:
        return LoggedPort(port, name or url)
    return port

"""A virtual 社保卡 for vsmartcard's vpcd, so a real pcscd shows a real reader with our card in it.

vpcd (Debian ``vsmartcard-vpcd``) is a pcscd reader driver that listens on TCP (35963 for the reader
"Virtual PCD 00 00", 35964 for "... 00 01"). A virtual card *connects* to it: connecting is putting the
card on the reader, closing the socket is taking it away. Every message either way is a 2-byte
big-endian length and a payload; from vpcd a 1-byte payload is a control (00 power off, 01 power on,
02 reset, 04 "send your ATR"), anything longer a command APDU that must be answered.

We speak this ourselves (:class:`VpcdCardClient`, ~60 lines) instead of running Debian's ``vicc``:
vicc needs a PYTHONPATH into Debian's tree plus PyPI's pycryptodome, answers ``FF CA`` with an error,
and has no hooks to insert and remove a card on cue from a test. The card itself
(:class:`VirtualSocialSecurityCard`) is a plain object whose :meth:`process_apdu` is the whole card,
so unit tests can also drive it on bytes without pcscd.

Fault switches: ``silent`` / ``delay`` (shared, from :class:`DeviceBase`; a silent card makes pcscd
wait on it), ``social_security=False`` (a plain card: SELECT answers 6A82), ``holder_pin`` (EF06 needs
VERIFY first: 6982 until then), ``uid_supported=False`` (FF CA answers 6A81, like a contact reader),
``t0_style`` (answers 6C xx to Le 00 and 61 xx to SELECT, as T=0 cards do).
"""
from __future__ import annotations

import datetime as _dt
import logging
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any

from .base import DeviceBase

log = logging.getLogger(__name__)

SSSE_AID = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")
DEFAULT_ATR = bytes.fromhex("3B6800000073C84013009000")  # a short, plausible T=0 ATR
DEFAULT_UID = bytes.fromhex("04A1B2C3D4E5F6")
VPCD_PORT = 35963

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0x00, 0x01, 0x02, 0x04

SW_OK = b"\x90\x00"


def _sw(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _tlv(tag: int, value: bytes) -> bytes:
    # written out here on purpose, not borrowed from the driver: the two sides must agree on bytes
    return bytes([tag, len(value)]) + value


def _bcd(digits: str) -> bytes:
    return bytes.fromhex(digits)


@dataclass
class SocialSecurityHolder:
    """A made-up card holder. The ID number carries a valid MOD 11-2 check character."""

    card_number: str = "A12345678"
    name: str = "张三丰"
    id_number: str = "11010519491231002X"
    sex_code: str = "1"
    nation_code: str = "01"
    birth_place_code: str = "110105"
    birth_date: _dt.date = _dt.date(1949, 12, 31)
    card_id_code: str = "110100D15600000500A1B2C3D4E5F6A7"
    card_type: str = "3"
    spec_version: str = "3.00"
    issuer_code: str = "110100000000000000000001"
    issue_date: _dt.date = _dt.date(2020, 6, 1)
    expiry_date: _dt.date = _dt.date(2030, 6, 1)

    def ef05_records(self) -> list[bytes]:
        return [
            _tlv(0x01, bytes.fromhex(self.card_id_code)),
            _tlv(0x02, self.card_type.encode("ascii")),
            _tlv(0x03, self.spec_version.encode("ascii")),
            _tlv(0x04, bytes.fromhex(self.issuer_code)),
            _tlv(0x05, _bcd(self.issue_date.strftime("%Y%m%d"))),
            _tlv(0x06, _bcd(self.expiry_date.strftime("%Y%m%d"))),
            _tlv(0x07, self.card_number.encode("ascii")),
        ]

    def ef06_records(self) -> list[bytes]:
        name = self.name.encode("gbk").ljust(30, b" ")  # fixed 30-byte field, space padded
        return [
            _tlv(0x08, self.id_number.encode("ascii")),
            _tlv(0x09, name),
            _tlv(0x0A, self.sex_code.encode("ascii")),
            _tlv(0x0B, _bcd(self.nation_code)),
            _tlv(0x0C, _bcd(self.birth_place_code)),
            _tlv(0x0D, _bcd(self.birth_date.strftime("%Y%m%d"))),
        ]


class VirtualSocialSecurityCard(DeviceBase):
    """The card's logic: an ISO 7816-4 subset (SELECT, READ RECORD, VERIFY, GET RESPONSE) plus the
    reader's GET UID pseudo-APDU, which on real hardware the reader answers."""

    def __init__(
        self,
        *,
        uid: bytes = DEFAULT_UID,
        atr: bytes = DEFAULT_ATR,
        holder: SocialSecurityHolder | None = None,
        social_security: bool = True,
        uid_supported: bool = True,
        holder_pin: str | None = None,
        pin_tries: int = 3,
        t0_style: bool = False,
        extra_ef06_records: list[bytes] | None = None,
    ) -> None:
        super().__init__()
        self.uid = uid
        self.atr = atr
        self.holder = holder or SocialSecurityHolder()
        self.social_security = social_security
        self.uid_supported = uid_supported
        self.holder_pin = holder_pin
        self.pin_tries = pin_tries
        self.t0_style = t0_style
        self.extra_ef06_records = list(extra_ef06_records or [])
        self.apdu_log: list[bytes] = []  # every command APDU received, for tests
        self.power_on()

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "VirtualSocialSecurityCard":
        opts = dict(options)
        holder_keys = set(SocialSecurityHolder.__dataclass_fields__)
        holder_opts = {k: opts.pop(k) for k in list(opts) if k in holder_keys}
        for key in ("birth_date", "issue_date", "expiry_date"):
            if isinstance(holder_opts.get(key), str):
                holder_opts[key] = _dt.date.fromisoformat(holder_opts[key])
        for key in ("uid", "atr"):
            if isinstance(opts.get(key), str):
                opts[key] = bytes.fromhex(opts[key])
        allowed = {"uid", "atr", "social_security", "uid_supported", "holder_pin", "pin_tries", "t0_style"}
        unknown = set(opts) - allowed
        if unknown:
            raise ValueError(f"pcsc card: unknown option(s) {', '.join(sorted(unknown))}")
        return cls(holder=SocialSecurityHolder(**holder_opts), **opts)

    # ---- card state ----------------------------------------------------------------------------
    def power_on(self) -> None:
        """Power-up or reset: nothing selected, PIN state forgotten."""
        self._app_selected = False
        self._current_ef: int | None = None
        self._pin_ok = False
        self._pending = b""

    def _records(self, fid: int) -> list[bytes]:
        if fid == 0xEF05:
            return self.holder.ef05_records()
        return self.holder.ef06_records() + self.extra_ef06_records

    def _answer(self, data: bytes, le: int | None) -> bytes:
        """Data with 90 00, or the T=0 dialogue: 6C xx when Le is wrong."""
        if self.t0_style and le is not None and le != len(data) and not (le == 0 and len(data) == 256):
            return _sw(0x6C00 | len(data))
        if le:
            data = data[:le]
        return data + SW_OK

    def process_apdu(self, apdu: bytes) -> bytes:
        """One command APDU in, one response APDU (data + SW1 SW2) out."""
        self.apdu_log.append(bytes(apdu))
        if len(apdu) < 4:
            return _sw(0x6700)
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        lc_data = b""
        le: int | None = None
        if len(body) == 1:
            le = body[0]
        elif len(body) > 1:
            lc = body[0]
            lc_data = body[1:1 + lc]
            if len(lc_data) != lc:
                return _sw(0x6700)
            rest = body[1 + lc:]
            le = rest[0] if rest else None

        if cla == 0xFF and ins == 0xCA:  # GET DATA (UID) pseudo-APDU, PC/SC part 3
            if not self.uid_supported or p1 != 0x00:
                return _sw(0x6A81)
            return self._answer(self.uid, le)
        if cla != 0x00:
            return _sw(0x6E00)
        if ins == 0xA4:
            return self._select(p1, lc_data)
        if ins == 0xB2:
            return self._read_record(p1, p2, le)
        if ins == 0x20:
            return self._verify(lc_data)
        if ins == 0xC0:
            data, self._pending = self._pending, b""
            if not data:
                return _sw(0x6985)
            return self._answer(data, le)
        return _sw(0x6D00)

    def _select(self, p1: int, data: bytes) -> bytes:
        if p1 == 0x04:
            if not self.social_security or data != SSSE_AID:
                return _sw(0x6A82)
            self._app_selected = True
            self._current_ef = None
            if self.t0_style:  # announce an FCI, fetched with GET RESPONSE
                self._pending = _tlv(0x6F, _tlv(0x84, SSSE_AID))
                return _sw(0x6100 | len(self._pending))
            return SW_OK
        if p1 in (0x00, 0x02) and len(data) == 2:
            fid = int.from_bytes(data, "big")
            if not self._app_selected or fid not in (0xEF05, 0xEF06):
                return _sw(0x6A82)
            self._current_ef = fid
            return SW_OK
        return _sw(0x6A86)

    def _read_record(self, number: int, p2: int, le: int | None) -> bytes:
        if self._current_ef is None:
            return _sw(0x6986)
        if p2 != 0x04:
            return _sw(0x6A86)
        if self._current_ef == 0xEF06 and self.holder_pin is not None and not self._pin_ok:
            return _sw(0x6982)
        records = self._records(self._current_ef)
        if not 1 <= number <= len(records):
            return _sw(0x6A83)
        return self._answer(records[number - 1], le)

    def _verify(self, pin_field: bytes) -> bytes:
        if self.holder_pin is None:
            return SW_OK
        if self.pin_tries <= 0:
            return _sw(0x6983)
        if pin_field.hex().upper().rstrip("F") == self.holder_pin:
            self._pin_ok = True
            return SW_OK
        self.pin_tries -= 1
        return _sw(0x6983) if self.pin_tries == 0 else _sw(0x63C0 | self.pin_tries)

    # ---- vpcd messages -------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """One whole vpcd message (the client frames them): a control byte or a command APDU."""
        if len(data) == 1:
            control = data[0]
            if control in (CTRL_ON, CTRL_RESET):
                self.power_on()
            elif control == CTRL_ATR:
                self.send(self.atr)
            elif control != CTRL_OFF:
                log.warning("vpcd: unknown control byte %02X", control)
            return
        self.send(self.process_apdu(data))


class VpcdCardClient:
    """Puts a virtual card on a vpcd reader (connect) and takes it away (disconnect)."""

    def __init__(self, card: VirtualSocialSecurityCard, *, host: str = "127.0.0.1", port: int = VPCD_PORT,
                 name: str = "pcsc-card") -> None:
        self.card = card
        self.host = host
        self.port = port
        self.name = name
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        card.attach(self._send)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "VpcdCardClient":
        opts = dict(options)
        host = opts.pop("host", "127.0.0.1")
        port = int(opts.pop("port", VPCD_PORT))
        label = opts.pop("label", "pcsc-card")  # "name" is the card holder's name
        return cls(VirtualSocialSecurityCard.from_options(opts), host=host, port=port, name=label)

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, timeout: float = 5.0) -> "VpcdCardClient":
        """Connect to vpcd: pcscd then sees a card in the reader. Raises ConnectionError when vpcd
        (pcscd with the vpcd driver) is not listening."""
        if self._sock is not None:
            return self
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as exc:
            raise ConnectionError(f"{self.name}: vpcd not listening on {self.host}:{self.port}: {exc}") from exc
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self.card.power_on()
        self._thread = threading.Thread(target=self._loop, args=(sock,), name=f"vpcd-{self.name}", daemon=True)
        self._thread.start()
        log.info("%s: card inserted into vpcd %s:%d", self.name, self.host, self.port)
        return self

    def remove(self) -> None:
        """Disconnect: pcscd sees the card taken out."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        if self._thread is not None:
            self._thread.join(2)
        log.info("%s: card removed", self.name)

    start = insert  # the SimulatorServer-like lifecycle, for a "start all simulators" command
    stop = remove

    def __enter__(self) -> "VpcdCardClient":
        return self.insert()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _send(self, payload: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        with self._lock:
            try:
                sock.sendall(struct.pack("!H", len(payload)) + payload)
            except OSError:
                log.debug("%s: send failed", self.name, exc_info=True)

    @staticmethod
    def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                # vpcd writes the length and the APDU in two sends without TCP_NODELAY: acknowledge
                # at once, or Nagle on its side waits for our delayed ACK (40 ms per APDU)
                if hasattr(socket, "TCP_QUICKACK"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                chunk = sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _loop(self, sock: socket.socket) -> None:
        while True:
            header = self._recv_exact(sock, 2)
            if header is None:
                break
            (size,) = struct.unpack("!H", header)
            if size == 0:
                continue
            message = self._recv_exact(sock, size)
            if message is None:
                break
            try:
                self.card.receive(message)
            except Exception:  # a card bug must not kill the link silently
                log.exception("%s: card failed on %s", self.name, message.hex())
        if self._sock is sock:  # vpcd went away (pcscd stopped): the card is out
            self._sock = None
            sock.close()

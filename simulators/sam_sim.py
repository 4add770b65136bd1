"""Simulated SAM ID card reader: answers the GA 467 frames byte-exactly from a set of fake citizens.

Start one by hand (prints the pty path and TCP URL, then serves until Ctrl-C)::

    .venv/bin/python -m simulators.sam_sim --place wang

Faults, switchable while running: no card (``remove_card``), ``read_failure`` (30 01 answers SW3
0x41), ``force_status`` (any command answers a chosen SW3), ``bad_checksum`` (replies carry a wrong
CHK), ``truncate`` (replies are cut in half), ``corrupt_id_check`` (the card's ID number gets a wrong
check character), ``foreign_card`` (text byte 248 = 'I'), and the shared ``silent`` / ``delay``.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import threading
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Sequence

from device_drivers.sam import (
    BAUD_PARAMS,
    LONG_TERM,
    PHOTO_LEN,
    PREAMBLE,
    SET_BAUD_CMD,
    FrameParser,
    IdCardData,
    Rejected,
    RejectReason,
    Reply,
    Request,
    SamStatus,
    encode_read_data,
    encode_sam_id,
    id_check_char,
)

from .base import DeviceBase, SimulatorServer

log = logging.getLogger(__name__)

CITIZENS_FILE = Path(__file__).with_name("data") / "citizens.toml"
DEFAULT_SAM_ID = "05.01-20101111-0012345678-1234567890"
_BAUDS_BY_PARAM = {v: k for k, v in BAUD_PARAMS.items()}


def fake_blob(seed: str, size: int, tag: bytes) -> bytes:
    """Deterministic filler standing in for a WLT photo or fingerprint template."""
    out = bytearray(tag)
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    blob = bytes(out[:size])
    # never let filler look like a frame start: a real reader's data would, with odds of 2^-40
    return blob.replace(PREAMBLE, b"\xaa\xaa\xaa\x96\x00")


def load_citizens(path: str | Path | None = None) -> list[tuple[str, IdCardData]]:
    """Read ``(key, IdCardData)`` pairs from a citizens TOML file (see data/citizens.toml)."""
    path = Path(path) if path else CITIZENS_FILE
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    people: list[tuple[str, IdCardData]] = []
    for i, entry in enumerate(doc.get("citizen", [])):
        where = f"{path}: citizen #{i + 1}"
        try:
            valid_to = entry["valid_to"]
            if valid_to == LONG_TERM:
                valid_to = None
            elif not isinstance(valid_to, date):
                raise ValueError(f"valid_to must be a date or {LONG_TERM!r}, got {valid_to!r}")
            id_number = str(entry["id_number"])
            card = IdCardData.build(
                name=entry["name"], sex_code=str(entry["sex"]), nation_code=str(entry["nation"]),
                birth_date=entry["birth_date"], address=entry["address"], id_number=id_number,
                issuing_authority=entry["issuing_authority"], valid_from=entry["valid_from"],
                valid_to=valid_to,
                photo_wlt=fake_blob(id_number, PHOTO_LEN, b"WLT-FAKE"),
                fingerprint=(fake_blob(id_number + "/fp", 1024, b"FP-FAKE")
                             if entry.get("fingerprint") else b""),
            )
            card.to_text_block()  # field widths
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        people.append((str(entry.get("key", i)), card))
    if not people:
        raise ValueError(f"{path}: no [[citizen]] entries")
    return people


class SamReaderSimulator(DeviceBase):
    """A SAM reader with a card slot. Thread-safe: tests flip faults while the server answers."""

    def __init__(
        self,
        citizens: Sequence[tuple[str, IdCardData]] | None = None,
        *,
        sam_id: str = DEFAULT_SAM_ID,
    ) -> None:
        super().__init__()
        self.citizens: list[tuple[str, IdCardData]] = list(citizens) if citizens else load_citizens()
        self.sam_id_bytes = encode_sam_id(sam_id)
        self._lock = threading.RLock()
        self._parser = FrameParser(min_body=2, on_reject=self._on_bad_request)
        self.card: IdCardData | None = None
        self._found = False
        self._selected = False
        self.baudrate = 115200
        self.requests: list[Request] = []  # every good request, in order
        self._outbox: list[bytes] = []
        # faults
        self.read_failure = False
        self.force_status: dict[tuple[int, int], int] = {}  # (cmd, para) -> SW3 to answer instead
        self.bad_checksum = False
        self.truncate = False
        self.corrupt_id_check = False
        self.foreign_card = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "SamReaderSimulator":
        """Options: citizens_file, sam_id, place (key, ID number or index), silent, delay."""
        known = {"citizens_file", "sam_id", "place", "silent", "delay"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"sam simulator: unknown options {sorted(unknown)}; known: {sorted(known)}")
        sim = cls(
            load_citizens(options.get("citizens_file")),
            sam_id=str(options.get("sam_id", DEFAULT_SAM_ID)),
        )
        if options.get("place") is not None:
            sim.place_card(options["place"])
        sim.silent = bool(options.get("silent", False))
        sim.delay = float(options.get("delay", 0.0))
        return sim

    # ---- the card slot ---------------------------------------------------------------------
    def citizen(self, which: int | str) -> IdCardData:
        """By list index, key (``"wang"``) or ID number."""
        if isinstance(which, int):
            return self.citizens[which][1]
        for key, card in self.citizens:
            if which in (key, card.id_number):
                return card
        raise KeyError(f"no fake citizen {which!r}; keys: {[k for k, _ in self.citizens]}")

    def place_card(self, which: int | str) -> IdCardData:
        card = self.citizen(which)
        with self._lock:
            self.card = card
            self._found = self._selected = False
        log.debug("card placed: %s", card.name)
        return card

    def remove_card(self) -> None:
        with self._lock:
            self.card = None
            self._found = self._selected = False

    # ---- protocol --------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        with self._lock:
            for frame in self._parser.feed(data):
                request = Request.from_frame(frame)
                self.requests.append(request)
                self._answer(self._handle(request))
            outbox, self._outbox = self._outbox, []
        for raw in outbox:  # outside the lock: ``delay`` must not block place_card()
            self.send(raw)

    def _on_bad_request(self, rejected: Rejected) -> None:
        code = SamStatus.CHECKSUM_ERROR if rejected.reason is RejectReason.CHECKSUM else SamStatus.LENGTH_ERROR
        self._answer(Reply(0, 0, code))

    def _answer(self, reply: Reply) -> None:
        raw = reply.encode()
        if self.bad_checksum:
            raw = raw[:-1] + bytes([raw[-1] ^ 0xFF])
        if self.truncate:
            raw = raw[: max(len(PREAMBLE) + 2, len(raw) // 2)]
        self._outbox.append(raw)

    def _handle(self, req: Request) -> Reply:
        forced = self.force_status.get((req.cmd, req.para))
        if forced is not None:
            return Reply(0, 0, forced)
        key = (req.cmd, req.para)
        if key == (0x20, 0x01):
            if self.card is None:
                return Reply(0, 0, SamStatus.FIND_FAILED)
            self._found = True
            return Reply(0, 0, SamStatus.CARD_FOUND, bytes(4))
        if key == (0x20, 0x02):
            if self.card is None or not self._found:
                return Reply(0, 0, SamStatus.SELECT_FAILED)
            self._selected = True
            return Reply(0, 0, SamStatus.OK, bytes(8))
        if key in ((0x30, 0x01), (0x30, 0x10)):
            if self.card is None or not self._selected or self.read_failure:
                return Reply(0, 0, SamStatus.READ_FAILED)
            self._found = self._selected = False  # the next read needs find + select again
            return Reply(0, 0, SamStatus.OK, self._card_data(with_fp=req.para == 0x10))
        if key == (0x10, 0xFF):
            self._found = self._selected = False
            return Reply(0, 0, SamStatus.OK)
        if key == (0x11, 0xFF):
            return Reply(0, 0, SamStatus.OK)
        if key == (0x12, 0xFF):
            return Reply(0, 0, SamStatus.OK, self.sam_id_bytes)
        if req.cmd == SET_BAUD_CMD and req.para in _BAUDS_BY_PARAM:
            self.baudrate = _BAUDS_BY_PARAM[req.para]
            return Reply(0, 0, SamStatus.OK)
        return Reply(0, 0, SamStatus.BAD_COMMAND)

    def _card_data(self, with_fp: bool) -> bytes:
        card = self.card
        assert card is not None
        text = bytearray(card.to_text_block("I" if self.foreign_card else " "))
        if self.corrupt_id_check:
            good = id_check_char(card.id_number[:17])
            wrong = "0" if good != "0" else "1"
            text[122 + 34 : 122 + 36] = wrong.encode("utf-16-le")
        return encode_read_data(bytes(text), card.photo_wlt, card.fingerprint if with_fp else None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulated SAM ID card reader on a pty and TCP.")
    parser.add_argument("--citizens", help="citizens TOML file (default: simulators/data/citizens.toml)")
    parser.add_argument("--place", help="put this citizen's card on the reader (key, ID number or index)")
    parser.add_argument("--tcp-port", type=int, default=0, help="TCP port (default: any free port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    place: int | str | None = args.place
    if isinstance(place, str) and place.isdigit() and len(place) < 18:
        place = int(place)
    sim = SamReaderSimulator.from_options({"citizens_file": args.citizens, "place": place})
    with SimulatorServer(sim, name="sam", tcp_port=args.tcp_port) as server:
        print(f"SAM reader simulator: pty {server.pty_path}  tcp {server.tcp_url}")
        print("citizens: " + ", ".join(f"{k}={c.name}" for k, c in sim.citizens))
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

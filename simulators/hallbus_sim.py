"""Simulated hall bus: several addressed LED boards and pads behind one port.

One :class:`HallBusSim` is one RS-485 bus (one DeviceBase served by SimulatorServer on a pty and a TCP
port) with N devices of mixed types, speaking the hall bus protocol (``docs/protocols.md``) from the
device side: it answers only requests addressed to one of its devices, repeats its cached reply when
the master retries with the same sequence number, and executes broadcasts without answering.

* LED boards remember their lines (text, colour, blink) and render them as text and as a red-LED
  PNG (Pillow, WenQuanYi Zen Hei).
* Caller pads: :meth:`SimCallerPad.press` queues a key event for the next poll.
* Evaluation pads: :meth:`SimEvalPad.press_grade` answers the current prompt; left alone, the prompt
  times out on the pad and the pad reports the timeout.

Faults, per address: :meth:`HallBusSim.set_silent` (powered off), :meth:`HallBusSim.drop_next`
(requests lost on the line), :meth:`HallBusSim.corrupt_next` (replies with a bad CRC); plus the
bus-wide ``silent`` and ``delay`` of DeviceBase.

Run it alone: ``python -m simulators.hallbus_sim --devices 1:led,2:led,9:composite,20:caller,30:evalpad``.
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import logging
import struct
import threading
import time
from typing import Any, Iterable

from device_drivers import hallbus as hb
from device_drivers.caller_pad import CallerKey, encode_caller_event
from device_drivers.eval_pad import Grade
from device_drivers.hallbus import Colour, DeviceType, LedLine, Mode

from .base import DeviceBase, SimulatorServer

log = logging.getLogger(__name__)

FONT_PATH = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
LED_RGB = {Colour.RED: (255, 40, 20), Colour.GREEN: (40, 255, 60), Colour.YELLOW: (255, 190, 20)}
LED_OFF_RGB = (40, 8, 6)
COLOUR_NAMES = {Colour.RED: "红", Colour.GREEN: "绿", Colour.YELLOW: "黄"}
MODE_NAMES = {Mode.STEADY: "", Mode.BLINK: "闪烁", Mode.SCROLL: "滚动"}


class Nak(Exception):
    def __init__(self, reason: hb.NakReason) -> None:
        super().__init__(reason.label)
        self.reason = reason


class SimBusDevice:
    """One addressed device on the simulated bus."""

    device_type: DeviceType = DeviceType.WINDOW_LED

    def __init__(self, address: int, *, model: str = "") -> None:
        if address not in hb.DEVICE_ADDRESSES:
            raise ValueError(f"device address {address} outside 1..254")
        self.address = address
        self.model = model or f"SIM-{self.device_type.name}"
        self.lock = threading.RLock()
        self.received: list[hb.Frame] = []  # every request executed (not the deduplicated repeats)

    def handle(self, frame: hb.Frame) -> tuple[int, bytes]:
        """Execute one request; return (reply command, payload)."""
        with self.lock:
            self.received.append(frame)
            try:
                if frame.cmd == hb.Command.PING:
                    return hb.Command.INFO, hb.pack_info(hb.DeviceInfo(int(self.device_type), model=self.model))
                return self._handle(frame.cmd, frame.payload)
            except Nak as nak:
                return hb.Command.NAK, hb.pack_nak(nak.reason)
            except hb.FrameError as exc:
                log.info("sim %d: bad payload: %s", self.address, exc)
                return hb.Command.NAK, hb.pack_nak(hb.NakReason.BAD_PAYLOAD)

    def _handle(self, cmd: int, payload: bytes) -> tuple[int, bytes]:
        raise Nak(hb.NakReason.UNKNOWN_COMMAND)


class SimLedBoard(SimBusDevice):
    """An LED board: ``rows`` lines of ``width`` pixels at 16 px per character row."""

    def __init__(self, address: int, *, composite: bool = False, rows: int | None = None,
                 width: int | None = None, model: str = "") -> None:
        self.device_type = DeviceType.COMPOSITE_LED if composite else DeviceType.WINDOW_LED
        super().__init__(address, model=model)
        self.rows = rows or (8 if composite else 2)
        self.width = width or (192 if composite else 128)
        self.brightness = 15
        self._lines: list[LedLine] = []
        self._blink_until: float | None = None  # SHOW_CALLED: blink, then steady
        self.called: hb.CalledInfo | None = None

    def _handle(self, cmd: int, payload: bytes) -> tuple[int, bytes]:
        if cmd == hb.Command.SHOW_LINES:
            lines = hb.unpack_lines(payload)
            if len(lines) > self.rows:
                raise Nak(hb.NakReason.BAD_VALUE)
            self._set(lines, None, None)
        elif cmd == hb.Command.CLEAR:
            self._set([], None, None)
        elif cmd == hb.Command.SHOW_CALLED:
            info = hb.unpack_called(payload)
            until = time.monotonic() + info.blink_seconds if info.blink_seconds else None
            self._set([LedLine(f"请{info.ticket}号", info.colour, Mode.BLINK),
                       LedLine(info.window, info.colour, Mode.BLINK)][:self.rows], info, until)
        elif cmd == hb.Command.SET_BRIGHTNESS:
            if len(payload) != 1 or payload[0] > 15:
                raise Nak(hb.NakReason.BAD_VALUE)
            self.brightness = payload[0]
        else:
            raise Nak(hb.NakReason.UNKNOWN_COMMAND)
        return hb.Command.ACK, b""

    def _set(self, lines: list[LedLine], called: hb.CalledInfo | None, until: float | None) -> None:
        self._lines = list(lines)
        self.called = called
        self._blink_until = until

    @property
    def lines(self) -> list[LedLine]:
        """What the board shows now (a called number stops blinking after its blink time)."""
        with self.lock:
            if self._blink_until is not None and time.monotonic() >= self._blink_until:
                self._lines = [LedLine(l.text, l.colour, Mode.STEADY) for l in self._lines]
                self._blink_until = None
            return list(self._lines)

    def render_text(self) -> str:
        """The visible text, one line per board row."""
        return "\n".join(line.text for line in self.lines)

    def describe(self) -> str:
        """Text with colour and effect, e.g. "[红 闪烁] 请A001号"."""
        out = []
        for line in self.lines:
            tag = " ".join(t for t in (COLOUR_NAMES[line.colour], MODE_NAMES[line.mode]) if t)
            out.append(f"[{tag}] {line.text}")
        return "\n".join(out)

    def render_png(self, path: str | None = None, *, scale: int = 4) -> bytes:
        """A picture of the board as a person would see it (blinking lines in their lit phase)."""
        from PIL import Image, ImageDraw, ImageFont

        try:
            font: Any = ImageFont.truetype(FONT_PATH, 16)
        except OSError:
            font = ImageFont.load_default()
        lines = self.lines
        height = self.rows * 16
        mask = Image.new("L", (self.width, height), 0)
        draw = ImageDraw.Draw(mask)
        draw.fontmode = "1"  # crisp 1-bit glyphs, as a dot-matrix controller draws them
        for row, line in enumerate(lines[:self.rows]):
            draw.text((0, row * 16), line.text, fill=255, font=font)
        out = Image.new("RGB", (self.width * scale, height * scale), (10, 4, 4))
        dots = ImageDraw.Draw(out)
        px = mask.load()
        dim = self.brightness / 15
        for y in range(height):
            row = y // 16
            lit_rgb = LED_RGB[lines[row].colour] if row < len(lines) else LED_OFF_RGB
            lit_rgb = tuple(int(c * (0.4 + 0.6 * dim)) for c in lit_rgb)
            for x in range(self.width):
                rgb = lit_rgb if px[x, y] else LED_OFF_RGB
                x0, y0 = x * scale, y * scale
                dots.ellipse((x0, y0, x0 + scale - 1, y0 + scale - 1), fill=rgb)
        buf = io.BytesIO()
        out.save(buf, format="PNG")
        data = buf.getvalue()
        if path:
            with open(path, "wb") as fh:
                fh.write(data)
        return data


class _SimPad(SimBusDevice):
    """Pads queue events; a POLL returns the queued ones. Events in a reply are forgotten when the
    next new POLL arrives (the master got them), and repeated if the master retries."""

    max_events_per_reply = 8

    def __init__(self, address: int, *, model: str = "") -> None:
        super().__init__(address, model=model)
        self._queue: collections.deque[hb.RawEvent] = collections.deque(maxlen=16)  # oldest dropped

    def queue_event(self, event: hb.RawEvent) -> None:
        with self.lock:
            self._queue.append(event)

    @property
    def pending_events(self) -> int:
        with self.lock:
            return len(self._queue)

    def _poll(self) -> tuple[int, bytes]:
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_events_per_reply))]
        return hb.Command.EVENTS, hb.pack_events(batch)


class SimCallerPad(_SimPad):
    device_type = DeviceType.CALLER_PAD

    def __init__(self, address: int, *, model: str = "") -> None:
        super().__init__(address, model=model)
        self.display = hb.PadDisplay("", 0, "")

    def press(self, key: CallerKey | str, target: str | None = None) -> None:
        """The clerk presses ``key`` (TRANSFER needs a ``target``)."""
        key = CallerKey(key) if not isinstance(key, CallerKey) else key
        if key is CallerKey.TRANSFER and not target:
            raise ValueError("TRANSFER needs a target window or business")
        self.queue_event(encode_caller_event(key, target))

    def render_text(self) -> str:
        d = self.display
        text = f"当前: {d.ticket or '--'}  等候: {d.waiting}"
        return text + (f"\n{d.message}" if d.message else "")

    def _handle(self, cmd: int, payload: bytes) -> tuple[int, bytes]:
        if cmd == hb.Command.POLL:
            return self._poll()
        if cmd == hb.Command.PAD_DISPLAY:
            self.display = hb.unpack_pad_display(payload)
            return hb.Command.ACK, b""
        raise Nak(hb.NakReason.UNKNOWN_COMMAND)


class SimEvalPad(_SimPad):
    device_type = DeviceType.EVAL_PAD

    def __init__(self, address: int, *, model: str = "") -> None:
        super().__init__(address, model=model)
        self.prompt: hb.EvalPromptPayload | None = None
        self._deadline = 0.0
        self.prompts_seen = 0

    def press_grade(self, grade: Grade | int) -> None:
        """The citizen presses one of the five grade keys for the prompt on screen."""
        grade = Grade(grade)
        with self.lock:
            if self.prompt is None:
                raise RuntimeError(f"eval pad {self.address} shows no prompt to grade")
            self.queue_event(hb.RawEvent(hb.EventCode.GRADE, bytes((self.prompt.prompt_id, int(grade)))))
            self.prompt = None

    def press_cancel(self) -> None:
        with self.lock:
            if self.prompt is None:
                raise RuntimeError(f"eval pad {self.address} shows no prompt to cancel")
            self.queue_event(hb.RawEvent(hb.EventCode.EVAL_CANCELLED, bytes((self.prompt.prompt_id,))))
            self.prompt = None

    def wait_for_prompt(self, timeout: float) -> hb.EvalPromptPayload | None:
        """Test helper: the prompt on screen once one arrives (bounded wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.prompt is not None:
                    return self.prompt
            time.sleep(0.01)
        return None

    def render_text(self) -> str:
        p = self.prompt
        if p is None:
            return "欢迎评价"
        return (f"{p.ticket} {p.matter}\n{p.clerk_name} 工号 {p.staff_no}\n"
                "非常满意 满意 基本满意 不满意 非常不满意")

    def _check_timeout(self) -> None:
        if self.prompt is not None and time.monotonic() >= self._deadline:
            self.queue_event(hb.RawEvent(hb.EventCode.EVAL_TIMEOUT, bytes((self.prompt.prompt_id,))))
            self.prompt = None

    def _handle(self, cmd: int, payload: bytes) -> tuple[int, bytes]:
        if cmd == hb.Command.POLL:
            self._check_timeout()
            return self._poll()
        if cmd == hb.Command.EVAL_PROMPT:
            self.prompt = hb.unpack_eval_prompt(payload)
            self._deadline = time.monotonic() + self.prompt.timeout_s
            self.prompts_seen += 1
            return hb.Command.ACK, b""
        if cmd == hb.Command.EVAL_CANCEL:
            if len(payload) != 1:
                raise Nak(hb.NakReason.BAD_PAYLOAD)
            if self.prompt is not None and self.prompt.prompt_id == payload[0]:
                self.prompt = None
            return hb.Command.ACK, b""
        raise Nak(hb.NakReason.UNKNOWN_COMMAND)


_TYPES = {
    "led": lambda a, o: SimLedBoard(a, rows=o.get("rows"), width=o.get("width"), model=o.get("model", "")),
    "window_led": lambda a, o: SimLedBoard(a, rows=o.get("rows"), width=o.get("width"), model=o.get("model", "")),
    "composite": lambda a, o: SimLedBoard(a, composite=True, rows=o.get("rows"), width=o.get("width"),
                                          model=o.get("model", "")),
    "composite_led": lambda a, o: SimLedBoard(a, composite=True, rows=o.get("rows"), width=o.get("width"),
                                              model=o.get("model", "")),
    "caller": lambda a, o: SimCallerPad(a, model=o.get("model", "")),
    "evalpad": lambda a, o: SimEvalPad(a, model=o.get("model", "")),
}


class HallBusSim(DeviceBase):
    """One RS-485 bus with several simulated devices behind it."""

    def __init__(self, devices: Iterable[SimBusDevice]) -> None:
        super().__init__()
        self.devices: dict[int, SimBusDevice] = {}
        for dev in devices:
            if dev.address in self.devices:
                raise ValueError(f"two simulated devices at address {dev.address}")
            self.devices[dev.address] = dev
        self.parser = hb.FrameParser()
        self._lock = threading.Lock()
        self._silent: set[int] = set()
        self._drop: collections.Counter[int] = collections.Counter()
        self._corrupt: collections.Counter[int] = collections.Counter()
        self._last: dict[int, tuple[tuple[int, int, int], bytes]] = {}  # address -> (key, reply bytes)
        self._last_broadcast: tuple[int, int, int] | None = None
        self.requests_seen: collections.Counter[int] = collections.Counter()
        self.broadcasts_executed = 0

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "HallBusSim":
        """``{"devices": [{"address": 1, "type": "led"}, {"address": 20, "type": "caller"}, ...],
        "silent": [addresses]}``; types: led (window board), composite, caller, evalpad."""
        specs = options.get("devices")
        if not isinstance(specs, list) or not specs:
            raise ValueError("hallbus simulator options: 'devices' must be a non-empty list")
        devices = []
        for i, spec in enumerate(specs):
            try:
                address = int(spec["address"])
                kind = spec["type"]
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"hallbus simulator options: devices[{i}] needs 'address' (int) and "
                                 f"'type' ({', '.join(_TYPES)})") from None
            if kind not in _TYPES:
                raise ValueError(f"hallbus simulator options: devices[{i}].type {kind!r} is not one of "
                                 f"{', '.join(_TYPES)}")
            devices.append(_TYPES[kind](address, spec))
        sim = cls(devices)
        for address in options.get("silent", []):
            sim.set_silent(int(address))
        return sim

    # ---- accessors -------------------------------------------------------------------------
    def led(self, address: int) -> SimLedBoard:
        return self._typed(address, SimLedBoard)

    def caller(self, address: int) -> SimCallerPad:
        return self._typed(address, SimCallerPad)

    def evalpad(self, address: int) -> SimEvalPad:
        return self._typed(address, SimEvalPad)

    def _typed(self, address: int, cls: type) -> Any:
        dev = self.devices.get(address)
        if not isinstance(dev, cls):
            raise KeyError(f"no simulated {cls.__name__} at address {address}")
        return dev

    # ---- faults ----------------------------------------------------------------------------
    def set_silent(self, address: int, silent: bool = True) -> None:
        """The device at ``address`` stops (or resumes) answering, like a board switched off."""
        with self._lock:
            (self._silent.add if silent else self._silent.discard)(address)

    def drop_next(self, address: int, count: int = 1) -> None:
        """Lose the next ``count`` requests to ``address`` on the line (no reply, not executed)."""
        with self._lock:
            self._drop[address] += count

    def corrupt_next(self, address: int, count: int = 1) -> None:
        """Send the next ``count`` replies from ``address`` with a wrong CRC."""
        with self._lock:
            self._corrupt[address] += count

    # ---- the wire --------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        with self._lock:
            frames = self.parser.feed(data)
        for frame in frames:
            if frame.is_reply:
                continue  # another device's reply on the shared bus
            self._on_request(frame)

    def _on_request(self, frame: hb.Frame) -> None:
        key = (frame.seq, frame.cmd, hb.crc16_arc(frame.payload))
        if frame.address == hb.BROADCAST:
            with self._lock:
                if key == self._last_broadcast:
                    return
                self._last_broadcast = key
                self.broadcasts_executed += 1
            for dev in self.devices.values():
                if dev.address not in self._silent:
                    dev.handle(frame)
            return
        dev = self.devices.get(frame.address)
        if dev is None:
            return
        with self._lock:
            self.requests_seen[frame.address] += 1
            if frame.address in self._silent:
                return
            if self._drop[frame.address] > 0:
                self._drop[frame.address] -= 1
                return
            corrupt = self._corrupt[frame.address] > 0
            if corrupt:
                self._corrupt[frame.address] -= 1
            last = self._last.get(frame.address)
        if last is not None and last[0] == key:
            reply = last[1]  # the master retried: same answer, not executed twice
        else:
            cmd, payload = dev.handle(frame)
            reply = hb.encode(hb.Frame(frame.address, frame.seq, cmd, payload))
            with self._lock:
                self._last[frame.address] = (key, reply)
        if corrupt:
            reply = _corrupted(reply)
        self.send(reply)


def _corrupted(wire: bytes) -> bytes:
    """The same frame with its CRC broken (still well framed, so the receiver counts a CRC error)."""
    parser = hb.FrameParser()
    (frame,) = parser.feed(wire)
    body = hb.body_of(frame)
    (crc,) = struct.unpack("<H", body[-2:])
    return bytes((hb.SOF,)) + hb.escape(body[:-2] + struct.pack("<H", crc ^ 0x0101)) + bytes((hb.EOF,))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulated hall bus (LED boards and pads)")
    parser.add_argument("--config", help="JSON file with {'devices': [{'address': 1, 'type': 'led'}, ...]}")
    parser.add_argument("--devices", default="1:led,9:composite,20:caller,30:evalpad",
                        help="address:type list, e.g. 1:led,2:led,9:composite,20:caller,30:evalpad")
    parser.add_argument("--tcp-port", type=int, default=0)
    parser.add_argument("--png-dir", help="write each LED board's picture here every second")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            options = json.load(fh)
    else:
        options = {"devices": [{"address": int(a), "type": t} for a, t in
                               (item.split(":") for item in args.devices.split(","))]}
    sim = HallBusSim.from_options(options)
    with SimulatorServer(sim, name="hallbus", tcp_port=args.tcp_port) as server:
        print(f"hall bus simulator: pty {server.pty_path}  tcp {server.tcp_url}", flush=True)
        shown: dict[int, str] = {}
        try:
            while True:
                time.sleep(1)
                for address, dev in sim.devices.items():
                    if isinstance(dev, SimLedBoard):
                        text = dev.describe()
                        if shown.get(address) != text:
                            shown[address] = text
                            print(f"LED {address}: {text!r}", flush=True)
                        if args.png_dir:
                            dev.render_png(f"{args.png_dir}/led-{address}.png")
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

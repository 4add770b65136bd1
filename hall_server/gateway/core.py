"""The gateway itself: the hall's buses, boards, pads and voice, driven by the server's live events.

Threads, and why each exists:

* ``gateway-state`` (one): applies server events to :class:`~.state.HallState` in arrival order,
  then writes to each board or pad only what changed (so a reconnect that finds nothing new writes
  nothing) and queues announcements. Nothing here blocks on the bus or the network: bus writes are
  futures served by each bus master's own thread, announcements go to the Announcer's FIFO.
* one bus thread per :class:`~device_drivers.hallbus_master.HallBusMaster` (owns its port,
  reconnects with backoff, polls pads, probes offline devices).
* ``pad-<window>`` (one per window with a caller pad): turns key presses into REST calls, in order.
  A slow or unreachable server delays only that window's keys.
* ``gateway-health``: sends every device's health to the server on change and every
  ``report_interval`` seconds.
* python-socketio's threads for the live link(s); the Announcer's render and playback threads.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from device_drivers.caller_pad import CallerEvent, CallerKey, CallerPad
from device_drivers.eval_pad import EvalOutcome, EvalPad, EvalPrompt, EvaluationResult
from device_drivers.hallbus_master import HallBusMaster
from device_drivers.health import Health, HealthEvent
from device_drivers.led_board import Colour, CompositeLedBoard, WindowLedBoard

from .config import BusDevice, GatewayConfig
from .link import ActionError, LiveLink, Rest
from .state import Announce, BoardView, HallState, PadView

log = logging.getLogger(__name__)

KEY_PATHS: dict[CallerKey, str] = {
    CallerKey.CALL_NEXT: "call-next", CallerKey.RECALL: "recall", CallerKey.START: "start",
    CallerKey.FINISH: "finish", CallerKey.NO_SHOW: "no-show", CallerKey.TRANSFER: "transfer",
    CallerKey.PAUSE: "pause", CallerKey.RESUME: "resume",
}
KEY_DONE: dict[CallerKey, str] = {
    CallerKey.RECALL: "已重呼", CallerKey.START: "开始办理", CallerKey.FINISH: "已办结",
    CallerKey.NO_SHOW: "已过号", CallerKey.TRANSFER: "已转移", CallerKey.PAUSE: "已暂停", CallerKey.RESUME: "已恢复",
}

# a ticket now waiting: render its "请A001号" ahead, so its call only joins two cached WAVs
PREPARE_KINDS = ("issued", "transferred", "reactivated")


class Gateway:
    def __init__(self, cfg: GatewayConfig, *, announcer: Any = None) -> None:
        self.cfg = cfg
        tokens = cfg.tokens()
        self.token = cfg.gateway_token()
        self.rest = Rest(cfg.server, self.token, timeout=cfg.request_timeout, retry_seconds=cfg.action_retry_seconds)
        self.state = HallState(cfg.windows(), composite_size=cfg.display.composite_lines,
                               window_label=cfg.display.window_label)
        self._load_state()
        self._inbox: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.server_online = False
        # ---- devices
        self.buses: dict[str, HallBusMaster] = {}
        self.devices: dict[str, BusDevice] = {}  # device id -> config
        self._health_name: dict[str, str] = {}  # "bus1.5" -> device id
        self.boards: dict[str, list[tuple[str, WindowLedBoard]]] = {}
        self.composites: list[tuple[str, CompositeLedBoard]] = []
        self.callers: dict[str, list[tuple[str, CallerPad]]] = {}
        self.evalpads: dict[str, tuple[str, EvalPad]] = {}
        self.pad_tokens: dict[str, str] = {}
        for bus_cfg in cfg.buses:
            bus = HallBusMaster(bus_cfg.port, name=bus_cfg.name, baudrate=bus_cfg.baudrate,
                                reply_timeout=bus_cfg.reply_timeout, retries=bus_cfg.retries,
                                poll_interval=bus_cfg.poll_interval, heartbeat_interval=bus_cfg.heartbeat_interval,
                                offline_retry_interval=bus_cfg.offline_retry_interval, log_traffic=bus_cfg.log_traffic)
            self.buses[bus_cfg.name] = bus
            for d in bus_cfg.devices:
                self.devices[d.id] = d
                self._health_name[f"{bus_cfg.name}.{d.address}"] = d.id
                name = f"{bus_cfg.name}.{d.address}"
                if d.kind == "led":
                    self.boards.setdefault(d.window or "", []).append((d.id, WindowLedBoard.on_bus(bus, d.address, name=name)))
                elif d.kind == "composite":
                    self.composites.append((d.id, CompositeLedBoard.on_bus(
                        bus, d.address, name=name, max_lines=cfg.display.composite_lines,
                        title=cfg.display.composite_title)))
                elif d.kind == "caller":
                    pad = CallerPad(bus, d.address, name=name)
                    pad.on_event(lambda ev, w=d.window: self._inbox.put(("key", (w, ev))))
                    bus.on_online(d.address, lambda _a, i=d.id: self._inbox.put(("repaint", i)))
                    self.callers.setdefault(d.window or "", []).append((d.id, pad))
                elif d.kind == "evalpad":
                    self.evalpads[d.window or ""] = (d.id, EvalPad(bus, d.address, name=name))
                    if d.id in tokens:
                        self.pad_tokens[d.id] = tokens[d.id]
                    else:
                        log.warning("evaluation pad %s has no token: grades cannot be submitted "
                                    "(hall device-token %s %s)", d.id, cfg.hall, d.id)
        self._written: dict[str, Any] = {}  # device id -> what was last sent to it
        self._pad_message: dict[str, str] = {}  # window -> transient message after a key
        self._pad_workers: dict[str, ThreadPoolExecutor] = {}
        self._health_changed = threading.Event()
        self._health: dict[str, HealthEvent] = {}
        for bus in self.buses.values():
            bus.subscribe_health(self._on_health)
        # ---- voice
        self.announcer = announcer
        if self.announcer is None and cfg.voice is not None:
            from device_drivers.voice import Announcer

            self.announcer = Announcer.from_options(dict(cfg.voice), name="voice")
        if self.announcer is not None:
            self.announcer.reporter.subscribe(self._on_health)
        self.announcements: list[Any] = []  # Announcement objects, newest last (tests, bench)
        self.on_announce: list[Callable[[Any], None]] = []
        # ---- live links
        self.link = LiveLink(cfg.server, cfg.hall, self.token, lambda n, d: self._inbox.put((n, d)),
                             on_state=self._on_link_state, name="server")
        self.eval_links = [
            LiveLink(cfg.server, cfg.hall, self.token, lambda n, d: self._inbox.put((n, d)), window=w,
                     events=("evaluation_request",), name=f"server-window-{w}")
            for w in self.evalpads]
        self._eval_seen: set[tuple[int, str]] = set()
        self.known_devices: set[str] | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Gateway":
        if self.announcer is not None:
            self.announcer.start()
            self.announcer.prepare_windows(list(self.state.windows))  # "到3号窗口办理", rendered once
        for bus in self.buses.values():
            bus.start()
        self._spawn(self._loop, "gateway-state")
        self._spawn(self._health_loop, "gateway-health")
        self.link.start()
        for link in self.eval_links:
            link.start()
        log.info("gateway %s for hall %s: %d bus(es), %d device(s), server %s", self.cfg.device, self.cfg.hall,
                 len(self.buses), len(self.devices), self.cfg.server)
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(("stop", None))
        self._health_changed.set()
        stoppers = [threading.Thread(target=link.stop, daemon=True) for link in [self.link, *self.eval_links]]
        for t in stoppers:  # each waits for its websocket to close: in parallel
            t.start()
        for t in [*stoppers, *self._threads]:
            t.join(5)
        for ex in self._pad_workers.values():
            ex.shutdown(wait=False, cancel_futures=True)
        for bus in self.buses.values():
            bus.stop()
        if self.announcer is not None:
            self.announcer.stop()
        self._save_state(force=True)

    def wait_synced(self, timeout: float) -> bool:
        """Until the first snapshot has been applied (tests, demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state.synced:
                return True
            time.sleep(0.02)
        return False

    # ---- the state thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            name, data = self._inbox.get()
            if name == "stop":
                break
            try:
                self._handle(name, data)
                while True:  # apply whatever else has arrived, then write once
                    try:
                        name, data = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if name == "stop":
                        return
                    self._handle(name, data)
                self._render()
                self._save_state()
            except Exception:
                log.exception("gateway: handling %s failed", name)

    def _handle(self, name: str, data: Any) -> None:
        if name == "snapshot":
            calls = self.state.apply_snapshot(data)
            log.info("snapshot of %s: last seq %s, %d missed call(s) to announce", data.get("hall"),
                     data.get("last_seq"), len(calls))
            self._announce(calls)
        elif name == "ticket":
            if self.announcer is not None and data.get("type") in PREPARE_KINDS:
                ticket = data.get("ticket") or {}
                self.announcer.prepare(str(ticket.get("number", "")), ticket.get("queue_name") or "")
            self._announce(self.state.apply_ticket(data))
        elif name == "window":
            self.state.apply_window(data)
        elif name == "queues":
            self.state.apply_queues(data)
        elif name == "key":
            window, event = data
            self._pad_message.pop(window, None)
            self._pad_worker(window).submit(self._do_key, window, event)
        elif name == "pad_message":
            window, text = data
            self._pad_message[window] = text
        elif name == "repaint":
            self._written.pop(data, None)
        elif name == "evaluation_request":
            self._evaluation_request(data)

    def _announce(self, calls: list[Announce]) -> None:
        for call in calls:
            log.info("叫号 %s -> %s号窗口%s", call.number, call.window, " (重呼)" if call.recall else "")
            if self.announcer is None:
                continue
            try:
                item = self.announcer.announce(call.number, call.window, queue=call.queue_name)
            except ValueError as exc:  # a number the phrase builder cannot speak
                log.warning("cannot announce %s: %s", call.number, exc)
                continue
            self.announcements.append(item)
            del self.announcements[:-500]
            for cb in list(self.on_announce):
                cb(item)

    def _render(self) -> None:
        if not self.state.synced:
            return
        for window, boards in self.boards.items():
            view = self.state.board(window)
            for device_id, board in boards:
                if view.kind == "unknown" or self._written.get(device_id) == view:
                    continue
                self._written[device_id] = view
                self._show_board(device_id, board, view)
        recent = tuple(self.state.composite())
        for device_id, comp in self.composites:
            if self._written.get(device_id) != recent:
                self._written[device_id] = recent
                self._watch(device_id, comp.show_recent(list(recent)))
        for window, pads in self.callers.items():
            pv = self.state.pad(window)
            msg = self._pad_message.get(window)
            if msg:
                pv = PadView(pv.ticket, pv.waiting, msg)
            for device_id, pad in pads:
                if self._written.get(device_id) != pv:
                    self._written[device_id] = pv
                    self._watch(device_id, pad.show(pv.ticket, min(pv.waiting, 0xFFFF), pv.message))

    def _show_board(self, device_id: str, board: WindowLedBoard, view: BoardView) -> None:
        d = self.cfg.display
        fmt = {"number": view.ticket or "", "window": view.label}
        if view.kind == "called":
            fut = board.show_called(view.ticket or "", view.label, blink_seconds=d.blink_seconds)
        elif view.kind == "serving":
            fut = board.show_text(f"{d.serving_text.format(**fmt)}\n{view.label}", colour=Colour.RED)
        elif view.kind == "paused":
            fut = board.show_paused(d.paused_text.format(**fmt))
        elif view.kind == "closed":
            fut = board.show_paused(d.closed_text.format(**fmt))
        else:
            fut = board.show_idle(f"{d.idle_text.format(**fmt)}\n{view.label}")
        self._watch(device_id, fut)

    def _watch(self, device_id: str, fut: Any) -> None:
        def done(f: Any) -> None:
            exc = f.exception()
            if exc is not None:
                # An offline board is repainted by its driver when it answers again; anything else
                # (bus down) is retried by writing again on the next change or reconnect.
                log.info("%s: write failed: %s", device_id, exc)
        fut.add_done_callback(done)

    # ---- caller pads -----------------------------------------------------------------------------
    def _pad_worker(self, window: str) -> ThreadPoolExecutor:
        ex = self._pad_workers.get(window)
        if ex is None:
            ex = self._pad_workers[window] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pad-{window}")
        return ex

    def _do_key(self, window: str, event: CallerEvent) -> None:
        path = f"/halls/{self.cfg.hall}/windows/{window}/{KEY_PATHS[event.key]}"
        body: dict[str, Any] | None = None
        if event.key is CallerKey.FINISH:
            body = {"outcome": self.cfg.finish_outcome}
        elif event.key is CallerKey.PAUSE:
            body = {"reason": self.cfg.pause_reason}
        elif event.key is CallerKey.TRANSFER:
            target = (event.target or "").strip()
            body = {"to_window": target} if target.isdigit() or target in self.state.windows else {"to_queue": target}
        message = ""
        try:
            result = self.rest.post(path, body)
            if event.key is CallerKey.CALL_NEXT and not (result or {}).get("ticket"):
                message = "当前没有等候的号"
            else:
                message = KEY_DONE.get(event.key, "")
        except ActionError as exc:
            log.info("pad %s %s: %s", window, event.key.value, exc.message)
            message = exc.message
        if message:
            self._inbox.put(("pad_message", (window, message)))

    def _on_link_state(self, up: bool) -> None:
        if up != self.server_online:
            self.server_online = up
            self._health_changed.set()
        for window in self.callers:
            self._inbox.put(("pad_message", (window, "" if up else "服务器连接中断")))

    # ---- evaluation pads -------------------------------------------------------------------------
    def _evaluation_request(self, data: dict[str, Any]) -> None:
        window = str(data.get("window"))
        entry = self.evalpads.get(window)
        if entry is None:
            return
        key = (int(data["ticket_id"]), str(data.get("stage") or ""))
        if key in self._eval_seen:
            return  # the same request again (a reconnect)
        self._eval_seen.add(key)
        device_id, pad = entry
        timeout = max(1, min(255, int(data.get("timeout_seconds") or 30)))
        prompt = EvalPrompt(str(data.get("ticket_number") or ""), str(data.get("clerk_name") or ""),
                            str(data.get("staff_no") or ""), str(data.get("matter_name") or ""), timeout)
        fut = pad.prompt(prompt)
        fut.add_done_callback(lambda f: self._evaluation_done(window, device_id, key[0], f))

    def _evaluation_done(self, window: str, device_id: str, ticket_id: int, fut: Any) -> None:
        exc = fut.exception()
        if exc is not None:
            log.warning("evaluation pad %s could not be asked: %s", device_id, exc)
            return
        result: EvaluationResult = fut.result()
        if result.outcome is not EvalOutcome.GRADED or result.grade is None:
            log.info("evaluation at window %s: %s", window, result.outcome.value)
            return
        token = self.pad_tokens.get(device_id)
        if token is None:
            log.warning("grade %s from %s dropped: no token for the pad", result.grade.label, device_id)
            return

        def submit() -> None:
            try:
                self.rest.post(f"/halls/{self.cfg.hall}/evaluations",
                               {"window": window, "ticket_id": ticket_id, "grade": int(result.grade)}, token=token)
                log.info("evaluation of ticket %d at window %s: %s", ticket_id, window, result.grade.label)
            except ActionError as exc:
                log.warning("evaluation of ticket %d not accepted: %s", ticket_id, exc.message)

        self._pad_worker(f"eval-{window}").submit(submit)

    # ---- health ----------------------------------------------------------------------------------
    def _on_health(self, event: HealthEvent) -> None:
        self._health[event.device] = event
        self._health_changed.set()

    def health_report(self) -> list[dict[str, Any]]:
        """The body's ``devices`` list: one entry per bus device, one for the gateway itself."""
        out = []
        parts: dict[str, str] = {"server": "online" if self.server_online else "offline"}
        problems: list[str] = []
        for name, event in sorted(self._health.items()):
            device_id = self._health_name.get(name)
            if device_id is not None:
                out.append({"device": device_id, "state": event.health.value, "detail": event.reason or None,
                            "parts": {"bus": name}})
            else:  # a bus port or the voice: parts of the gateway
                parts[name] = event.health.value
                if event.health is not Health.ONLINE:
                    problems.append(f"{name}: {event.reason or event.health.value}")
        out.append({"device": self.cfg.device, "state": "degraded" if problems else "online",
                    "detail": "; ".join(problems)[:200] or None, "parts": parts})
        if self.known_devices is not None:
            out = [e for e in out if e["device"] in self.known_devices]
        return out

    def _health_loop(self) -> None:
        path = f"/halls/{self.cfg.hall}/devices"
        last_sent = 0.0
        while not self._stop.is_set():
            self._health_changed.wait(1.0)
            if self._stop.is_set():
                break
            due = time.monotonic() - last_sent >= self.cfg.report_interval
            if not (self._health_changed.is_set() or due):
                continue
            self._health_changed.clear()
            try:
                if self.known_devices is None:
                    listed = self.rest.get(path, retry_seconds=0)
                    self.known_devices = {d["device"] for d in listed.get("devices", [])}
                    unknown = set(self.devices) - self.known_devices
                    if unknown:
                        log.warning("devices not in the hall config, not reported: %s", ", ".join(sorted(unknown)))
                body = self.health_report()
                if body:
                    self.rest.post(f"{path}/status", {"devices": body}, retry_seconds=0)
                last_sent = time.monotonic()
            except ActionError as exc:
                log.info("health report not sent: %s", exc.message)
                self._health_changed.set()
                self._stop.wait(2.0)

    # ---- state file ------------------------------------------------------------------------------
    _last_saved: Any = None

    def _load_state(self) -> None:
        if not self.cfg.state_file:
            return
        try:
            self.state.load(json.loads(Path(self.cfg.state_file).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("state file %s unusable (%s); starting fresh", self.cfg.state_file, exc)

    def _save_state(self, force: bool = False) -> None:
        if not self.cfg.state_file:
            return
        data = self.state.dump()
        if data == self._last_saved and not force:
            return
        path = Path(self.cfg.state_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
            self._last_saved = data
        except OSError as exc:
            log.warning("cannot write state file %s: %s", path, exc)

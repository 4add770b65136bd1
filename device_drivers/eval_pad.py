"""Evaluation pads (评价器) on the hall bus: the citizen grades the service (好差评).

The host sends a prompt (ticket, clerk name, staff number, matter, timeout); the pad shows it and a
countdown, and reports one of the five national 好差评 grades, a timeout, or that the citizen
cancelled. Each prompt carries an id so a late answer to an older prompt is never taken for the
current one. The host also keeps its own guard timer (timeout plus a margin), so a pad that dies
mid-prompt still yields a result.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from . import hallbus as hb
from .hallbus_master import acked

log = logging.getLogger(__name__)


class Grade(enum.IntEnum):
    """The five 好差评 grades; the value is the wire byte and the usual 5..1 score."""

    VERY_SATISFIED = 5
    SATISFIED = 4
    BASIC = 3
    DISSATISFIED = 2
    VERY_DISSATISFIED = 1

    @property
    def label(self) -> str:
        return _GRADE_LABELS[self]


_GRADE_LABELS = {
    Grade.VERY_SATISFIED: "非常满意",
    Grade.SATISFIED: "满意",
    Grade.BASIC: "基本满意",
    Grade.DISSATISFIED: "不满意",
    Grade.VERY_DISSATISFIED: "非常不满意",
}


class EvalOutcome(str, enum.Enum):
    GRADED = "graded"
    TIMEOUT = "timeout"  # nobody pressed a key in time
    CANCELLED = "cancelled"  # citizen pressed cancel, the host cancelled, or a newer prompt replaced it


@dataclass(frozen=True)
class EvalPrompt:
    ticket_no: str
    clerk_name: str
    staff_no: str
    matter: str
    timeout_s: int = 30

    def __post_init__(self) -> None:
        if not 1 <= self.timeout_s <= 255:
            raise ValueError(f"评价超时 timeout_s={self.timeout_s} must be 1..255 seconds")


@dataclass(frozen=True)
class EvaluationResult:
    prompt: EvalPrompt
    outcome: EvalOutcome
    grade: Grade | None = None
    pad: str = ""
    address: int = 0
    by_pad: bool = True  # False when the host's guard timer decided (pad silent)
    at: float = field(default_factory=time.time)


ResultListener = Callable[[EvaluationResult], None]


@dataclass
class _Pending:
    prompt_id: int
    prompt: EvalPrompt
    future: "Future[EvaluationResult]"
    timer: threading.Timer | None = None


class EvalPad:
    """An evaluation pad at ``address`` on a :class:`~device_drivers.hallbus_master.HallBusMaster`."""

    def __init__(self, bus: Any, address: int, *, name: str | None = None,
                 guard_margin: float = 3.0) -> None:
        self.bus = bus
        self.address = address
        self.name = name or f"{bus.name}.{address}"
        self.guard_margin = guard_margin
        self.reporter = bus.add_device(address, hb.DeviceType.EVAL_PAD)
        self._lock = threading.Lock()
        self._pending: _Pending | None = None
        self._prompt_id = int(time.time()) % 255  # differs across restarts
        self._listeners: list[ResultListener] = []
        bus.on_events(address, self._on_raw_events)

    def on_result(self, listener: ResultListener) -> None:
        """``listener(result)`` for every finished prompt (runs on the thread that finished it)."""
        self._listeners.append(listener)

    @property
    def online(self) -> bool:
        return self.bus.is_online(self.address)

    def prompt(self, prompt: EvalPrompt) -> "Future[EvaluationResult]":
        """Show ``prompt``; the future gets the result, or NoReply/NakError/BusNotConnected if the
        pad could not be asked. A prompt still open is finished as CANCELLED first."""
        with self._lock:
            old = self._pending
            self._pending = None
            self._prompt_id = self._prompt_id % 255 + 1
            pending = _Pending(self._prompt_id, prompt, Future())
            self._pending = pending
        if old is not None:
            self._finish(old, EvalOutcome.CANCELLED, None, by_pad=False)
        payload = hb.pack_eval_prompt(hb.EvalPromptPayload(
            pending.prompt_id, prompt.timeout_s, prompt.ticket_no, prompt.clerk_name,
            prompt.staff_no, prompt.matter))
        sent = self.bus.submit(self.address, hb.Command.EVAL_PROMPT, payload)
        sent.add_done_callback(lambda f: self._on_sent(pending, f))
        return pending.future

    def evaluate(self, prompt: EvalPrompt, timeout: float | None = None) -> EvaluationResult:
        """Blocking :meth:`prompt`, bounded by ``timeout`` (default: the prompt's timeout plus the
        guard margin plus bus time)."""
        if timeout is None:
            timeout = prompt.timeout_s + self.guard_margin + 5.0
        return self.prompt(prompt).result(timeout)

    def cancel(self) -> "Future[None]":
        """Withdraw the open prompt (e.g. the clerk called the next citizen)."""
        with self._lock:
            pending = self._pending
        if pending is None:
            f: Future[None] = Future()
            f.set_result(None)
            return f
        self._finish(pending, EvalOutcome.CANCELLED, None, by_pad=False)
        return acked(self.bus.submit(self.address, hb.Command.EVAL_CANCEL,
                                     bytes((pending.prompt_id,))))

    # ---- internals -------------------------------------------------------------------------
    def _on_sent(self, pending: _Pending, sent: "Future[hb.Frame]") -> None:
        exc = sent.exception()
        if exc is not None:
            with self._lock:
                if self._pending is pending:
                    self._pending = None
            if not pending.future.done():
                pending.future.set_exception(exc)
            return
        timer = threading.Timer(pending.prompt.timeout_s + self.guard_margin, self._guard, (pending,))
        timer.daemon = True
        pending.timer = timer
        timer.start()

    def _guard(self, pending: _Pending) -> None:
        log.warning("%s: no answer to prompt %d from the pad; timing out on the host side",
                    self.name, pending.prompt_id)
        self._finish(pending, EvalOutcome.TIMEOUT, None, by_pad=False)

    def _finish(self, pending: _Pending, outcome: EvalOutcome, grade: Grade | None, *,
                by_pad: bool) -> None:
        with self._lock:
            if self._pending is pending:
                self._pending = None
            if pending.future.done():
                return
            result = EvaluationResult(pending.prompt, outcome, grade, self.name, self.address, by_pad)
            pending.future.set_result(result)
        if pending.timer is not None:
            pending.timer.cancel()
        log.info("%s: prompt %d -> %s %s", self.name, pending.prompt_id, outcome.value,
                 grade.label if grade else "")
        for listener in list(self._listeners):
            try:
                listener(result)
            except Exception:
                log.exception("%s: result listener failed", self.name)

    def _on_raw_events(self, address: int, events: list[hb.RawEvent]) -> None:
        for raw in events:
            if not raw.data:
                log.warning("%s: event 0x%02X without a prompt id", self.name, raw.code)
                continue
            prompt_id = raw.data[0]
            with self._lock:
                pending = self._pending
            if pending is None or pending.prompt_id != prompt_id:
                log.info("%s: stale answer for prompt %d ignored", self.name, prompt_id)
                continue
            if raw.code == hb.EventCode.GRADE and len(raw.data) == 2:
                try:
                    grade = Grade(raw.data[1])
                except ValueError:
                    log.warning("%s: unknown grade %d", self.name, raw.data[1])
                    continue
                self._finish(pending, EvalOutcome.GRADED, grade, by_pad=True)
            elif raw.code == hb.EventCode.EVAL_TIMEOUT:
                self._finish(pending, EvalOutcome.TIMEOUT, None, by_pad=True)
            elif raw.code == hb.EventCode.EVAL_CANCELLED:
                self._finish(pending, EvalOutcome.CANCELLED, None, by_pad=True)
            else:
                log.warning("%s: unexpected event 0x%02X", self.name, raw.code)

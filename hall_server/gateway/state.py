"""The hall as the gateway knows it, rebuilt from the server's live events. Pure: no I/O, no threads.

The server sends a ``snapshot`` on every (re)connect, then the ticket events committed after it, then
live ``ticket`` / ``window`` / ``queues`` events. From those this object says what each board and
pad should show (:meth:`HallState.board`, :meth:`composite`, :meth:`pad`) and which calls to announce
(the return value of the ``apply_*`` methods).

Rules that make a reconnect show the true state without announcing anything twice or skipping a call:

* Every ticket event has a ``seq``; one that was already applied is dropped (a set of seqs, not just
  the highest one, because the server's catch-up and its live stream can interleave at connect).
* What was announced is remembered per window as (ticket id, recall count). After a reconnect, a
  window whose ticket is still being called but differs from what was announced there (called or
  recalled while the gateway was away) is announced now, once. A call that was already answered
  during the outage (the citizen is at the window) is not announced late; the boards show it.
* The composite board is the server's list of recent calls from the snapshot, extended by live calls.
* Window events are authoritative for a window board; ticket events older than the last one applied
  to a window do not move that window back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

BoardKind = Literal["called", "serving", "paused", "idle", "closed", "unknown"]


@dataclass(frozen=True)
class BoardView:
    """What one window's LED board should show. ``call`` identifies a call (ticket id, recalls):
    a new value means a new call and so a fresh blink."""

    kind: BoardKind
    label: str
    ticket: str | None = None
    call: tuple[int, int] | None = None


@dataclass(frozen=True)
class PadView:
    ticket: str | None
    waiting: int
    message: str = ""


@dataclass(frozen=True)
class Announce:
    number: str
    window: str
    recall: bool
    seq: int | None  # None: found missing after a reconnect
    queue_name: str = ""


@dataclass
class _Window:
    status: str = "unknown"
    ticket_id: int | None = None
    ticket: str | None = None
    recalls: int = 0
    queues: list[str] = field(default_factory=list)
    pause_reason: str | None = None
    mark: int = 0  # highest seq that has shaped this window


CALL_KINDS = ("called", "recalled")
LEAVE_KINDS = ("finished", "no_show", "transferred", "cancelled", "expired")


class HallState:
    def __init__(self, windows: Iterable[str], *, composite_size: int = 8,
                 window_label: str = "{window}号窗口") -> None:
        self.windows: dict[str, _Window] = {str(w): _Window() for w in windows}
        self.composite_size = composite_size
        self.window_label = window_label
        self.recent: list[tuple[int, str, str]] = []  # (seq, ticket number, window), newest first
        self.waiting: dict[str, int] = {}
        self.last_seq = 0
        self.base = 0  # seq of the last snapshot: everything up to it is in the snapshot
        # ticket events applied since the last snapshot, by seq: drops repeats, and should one ever be
        # applied before the snapshot it follows (the link keeps arrival order; this does not rely on
        # it), it is applied again on top of that snapshot
        self._applied: dict[int, dict[str, Any]] = {}
        self.announced: dict[str, tuple[int, int]] = {}
        self.synced = False  # a snapshot has been applied since start
        self.hall_name = ""

    # ---- persistence (state file) --------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {"last_seq": self.last_seq, "announced": {w: list(v) for w, v in self.announced.items()}}

    def load(self, data: dict[str, Any]) -> None:
        self.last_seq = int(data.get("last_seq", 0))
        self.announced = {str(w): (int(v[0]), int(v[1])) for w, v in data.get("announced", {}).items()}

    # ---- events ------------------------------------------------------------------------------
    def apply_snapshot(self, snap: dict[str, Any]) -> list[Announce]:
        """A (re)connect: take the hall as it is now; return the calls to announce that were made
        while we were away and are still waiting for their citizen."""
        known_before = self.last_seq > 0 or bool(self.announced)
        self.hall_name = snap.get("hall_name", self.hall_name)
        base = int(snap.get("last_seq") or 0)
        newer = [e for seq, e in sorted(self._applied.items()) if seq > base]  # overtook the snapshot
        self._applied = {}
        moved = {str(e.get("window") or e["ticket"].get("window") or "") for e in newer}
        self.base = base
        self.last_seq = base
        self.recent = [(int(ev["seq"]), ev["ticket"]["number"], str(ev.get("window") or ev["ticket"].get("window")))
                       for ev in reversed(snap.get("recent_calls") or [])][: self.composite_size]
        self.apply_queues({"queues": snap.get("queues") or []})
        out: list[Announce] = []
        for wp in snap.get("windows") or []:
            number = str(wp["number"])
            if number not in self.windows:
                continue
            self._set_window(number, wp, base)
            w = self.windows[number]
            w.mark = base
            if number in moved:
                continue  # the newer events below decide what this window shows and says
            if w.status == "calling" and w.ticket_id is not None:
                key = (w.ticket_id, w.recalls)
                if self.announced.get(number) != key:
                    if known_before:
                        queue_name = ((wp.get("ticket") or {}).get("queue_name")) or ""
                        out.append(Announce(w.ticket or "", number, w.recalls > 0, None, queue_name))
                    self.announced[number] = key
        for e in newer:  # announced when they came, so only what the snapshot changed is said again
            out += self.apply_ticket(e)
        self.synced = True
        return out

    def apply_ticket(self, ev: dict[str, Any]) -> list[Announce]:
        seq = int(ev["seq"])
        if seq <= self.base or seq in self._applied:
            return []  # reflected in the snapshot, or applied already
        self._applied[seq] = ev
        if len(self._applied) > 2000:
            floor = sorted(self._applied)[-1000]
            self._applied = {s: e for s, e in self._applied.items() if s >= floor}
            self.base = max(self.base, floor - 1)
        self.last_seq = max(self.last_seq, seq)
        kind = ev["type"]
        t = ev["ticket"]
        window = str(ev.get("window") or t.get("window") or "")
        out: list[Announce] = []
        if kind in CALL_KINDS and window:
            self.recent.insert(0, (seq, t["number"], window))
            self.recent.sort(key=lambda r: r[0], reverse=True)  # by the server's order, not arrival
            del self.recent[self.composite_size:]
        w = self.windows.get(window)
        if w is None:
            return out
        if kind in CALL_KINDS:
            key = (int(t["id"]), int(t.get("recalls") or 0))
            if self.announced.get(window) != key:
                self.announced[window] = key
                out.append(Announce(t["number"], window, kind == "recalled", seq, t.get("queue_name") or ""))
        if seq < w.mark:
            return out  # the window has moved on already (a window event told us)
        w.mark = seq
        if kind in CALL_KINDS:
            w.status, w.ticket_id, w.ticket, w.recalls = "calling", int(t["id"]), t["number"], int(t.get("recalls") or 0)
        elif kind == "started" and w.ticket_id == int(t["id"]):
            w.status = "serving"
        elif kind in LEAVE_KINDS and w.ticket_id == int(t["id"]):
            w.status = "paused" if w.pause_reason else "idle"
            w.ticket_id, w.ticket, w.recalls = None, None, 0
        return out

    def apply_window(self, wp: dict[str, Any]) -> None:
        number = str(wp["number"])
        if number in self.windows:
            self._set_window(number, wp, self.last_seq)

    def _set_window(self, number: str, wp: dict[str, Any], mark: int) -> None:
        w = self.windows[number]
        t = wp.get("ticket")
        w.status = wp.get("status") or "unknown"
        w.ticket_id = int(t["id"]) if t else None
        w.ticket = t["number"] if t else None
        w.recalls = int(t.get("recalls") or 0) if t else 0
        w.queues = list(wp.get("queues") or [])
        w.pause_reason = wp.get("pause_reason") if w.status == "paused" else None
        w.mark = max(w.mark, mark)

    def apply_queues(self, payload: dict[str, Any]) -> None:
        for q in payload.get("queues") or []:
            self.waiting[q["id"]] = int(q.get("waiting") or 0)

    # ---- what to show ------------------------------------------------------------------------
    def label(self, window: str) -> str:
        return self.window_label.format(window=window)

    def board(self, window: str) -> BoardView:
        w = self.windows[window]
        label = self.label(window)
        if w.status == "calling" and w.ticket:
            return BoardView("called", label, w.ticket, (w.ticket_id or 0, w.recalls))
        if w.status == "serving" and w.ticket:
            return BoardView("serving", label, w.ticket)
        if w.status in ("paused", "idle", "closed"):
            return BoardView(w.status, label)  # type: ignore[arg-type]
        return BoardView("unknown", label)

    def composite(self) -> list[tuple[str, str]]:
        """(ticket, window label) of the latest calls, newest first."""
        return [(number, self.label(window)) for _seq, number, window in self.recent]

    def pad(self, window: str) -> PadView:
        w = self.windows[window]
        waiting = sum(self.waiting.get(q, 0) for q in w.queues)
        message = {"paused": "暂停服务中", "closed": "窗口未签到", "serving": "办理中", "calling": "呼叫中"}.get(w.status, "")
        return PadView(w.ticket if w.status in ("calling", "serving") else None, waiting, message)

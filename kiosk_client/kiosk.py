"""What happens when a citizen taps 取号 or 签到: issue on the server, print, confirm, or void.

A tap carries a ``tap_id`` chosen by the screen; the server request id is ``<device>-<tap_id>``.
The same tap (a double tap, the 重试 button, a retry after the server came back) therefore never
makes a second ticket: in this process a tap still running is joined, a finished one is answered
from memory, and the server replays a request id it has already seen.

A ticket counts as issued only when the printer has confirmed the slip (see
:meth:`EscPosPrinter.print_ticket`). When printing fails the ticket is **voided**, not kept for a
reprint: the citizen has just been told 请到导服台取号 and walked away, so a slip printed minutes later
at an unattended kiosk would be picked up by the next person or called to nobody (a no-show that
costs a clerk a recall), and a kept ticket would count against the citizen's per-person limit when
the guide desk issues the replacement. A tap whose answer never arrived (server unreachable) is
remembered as unconfirmed; if the citizen does not retry it within ``abandon_seconds`` it is voided by
its request id once the server is back, so no ticket is left waiting without a printed slip. The
unconfirmed list is kept in ``state_dir`` so a restart of the kiosk does not forget it.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from device_drivers.escpos_printer import PaperOut, PrinterError, TicketSlip
from device_drivers.transport import PortError

from .config import KioskConfig
from .devices import PRINTER_PARTS, KioskDevices
from .link import HallLink, ServerError, ServerUnreachable

log = logging.getLogger(__name__)

TAP_RE = re.compile(r"^[A-Za-z0-9_\-]{8,60}$")
GO_TO_DESK = "请到导服台取号"
MSG_SERVER_DOWN = "服务器连接中断，正在重新连接，请稍候再试"


def hall_zone(catalogue: dict[str, Any] | None) -> ZoneInfo | None:
    """The hall's time zone (from the catalogue): the slip and the screen go by the hall's clock, whatever
    the kiosk PC's own time zone is set to; None (the PC's) if the catalogue has none."""
    return _zone((catalogue or {}).get("hall", {}).get("timezone"))


@functools.lru_cache(maxsize=8)
def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown hall time zone %r: this PC's time is used", name)  # once per name
        return None


def hall_today(catalogue: dict[str, Any] | None) -> dt.date:
    """Today in the hall: a citizen's age (the elderly badge) turns on the hall's date, not the PC's."""
    return dt.datetime.now(hall_zone(catalogue)).date()


class KioskError(Exception):
    def __init__(self, code: str, message: str, *, retry: bool = False, status: int = 409) -> None:
        super().__init__(message)
        self.code, self.message, self.retry, self.status = code, message, retry, status

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "retry": self.retry}}


@dataclass
class _Tap:
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: KioskError | None = None
    at: float = field(default_factory=time.monotonic)


class Kiosk:
    def __init__(self, cfg: KioskConfig, link: HallLink, devices: KioskDevices) -> None:
        self.cfg = cfg
        self.link = link
        self.devices = devices
        self.catalogue: dict[str, Any] | None = None
        self._taps: dict[str, _Tap] = {}
        self._lock = threading.Lock()
        self._print_lock = threading.Lock()  # one slip at a time
        self._unconfirmed: dict[str, float] = {}  # request id -> wall time of the unanswered tap
        self._to_void: list[dict[str, Any]] = []  # voids that could not reach the server yet
        self._journal = Path(cfg.state_dir) / f"{cfg.device}-pending.json" if cfg.state_dir else None
        self._load_journal()
        self._last_report: tuple[str, str | None, dict[str, str]] | None = None
        self._last_report_at = 0.0
        self._report_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_printer_problem: str | None = None
        devices.on_change = self._wake.set
        link.on_change(lambda _online: self._wake.set())

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Kiosk":
        for target, name in ((self._health_loop, "kiosk-health"), (self._status_loop, "kiosk-status")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(5)

    def _health_loop(self) -> None:
        next_catalogue = 0.0
        while not self._stop.is_set():
            online = self.link.probe()
            if online:
                if time.monotonic() >= next_catalogue or self.catalogue is None:
                    try:
                        self.catalogue = self.link.catalogue()
                        next_catalogue = time.monotonic() + 15
                    except (ServerUnreachable, ServerError) as exc:
                        log.warning("catalogue not loaded: %s", exc)
                self._settle_pending()
            self._stop.wait(self.cfg.health_seconds)

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.report_status()
            except Exception:
                log.exception("device status report failed")

    # ---- device status -----------------------------------------------------------------------
    def device_summary(self) -> tuple[str, str | None, dict[str, str]]:
        printer = self.devices.printer_state()
        reader = self.devices.reader_state()
        parts = {"printer": printer}
        if reader != "none":
            parts["reader"] = reader
        problems = []
        if printer != "ok":
            problems.append(PRINTER_PARTS[printer])
        if reader in ("offline", "degraded"):
            problems.append("身份证阅读器离线" if reader == "offline" else "身份证阅读器读卡异常")
        state = "online" if not problems else "degraded"
        return state, ("；".join(problems) or None), parts

    def report_status(self, force: bool = False) -> None:
        """Send this kiosk's state on change, and every ``status_seconds`` as a heartbeat."""
        with self._report_lock:
            summary = self.device_summary()
            due = time.monotonic() - self._last_report_at >= self.cfg.status_seconds
            if not (force or due or summary != self._last_report):
                return
            if not self.link.online and not force:
                return
            try:
                self.link.report_status(*summary)
            except ServerUnreachable:
                return
            except ServerError as exc:
                log.warning("device status refused: %s", exc)
            self._last_report, self._last_report_at = summary, time.monotonic()

    # ---- what the screen polls ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        printer = self.devices.printer_state()
        card = self.devices.card.current()
        err = self.devices.card.error()
        elderly_age = (self.catalogue or {}).get("hall", {}).get("elderly_age")
        can_issue = self.devices.printer_ready()
        if not self.link.online:
            notice = MSG_SERVER_DOWN
        elif not can_issue:
            notice = f"{PRINTER_PARTS[printer]}，暂停自助取号，{GO_TO_DESK}"
        else:
            notice = None
        return {
            "server_online": self.link.online,
            "printer": printer,
            "reader": self.devices.reader_state(),
            "can_issue": can_issue,
            "notice": notice,
            "card": card.public(elderly_age, hall_today(self.catalogue)) if card else None,
            "card_error": {"message": err[0], "seq": err[1]} if err else None,
            "catalogue_loaded": self.catalogue is not None,
        }

    # ---- taps --------------------------------------------------------------------------------
    def _run_tap(self, tap_id: str, fn: Any) -> dict[str, Any]:
        if not TAP_RE.match(tap_id or ""):
            raise KioskError("bad_tap", "请求无效，请返回首页重试", status=400)
        with self._lock:
            tap = self._taps.get(tap_id)
            owner = tap is None or (tap.done.is_set() and tap.error is not None and tap.error.retry)
            if owner:
                tap = self._taps[tap_id] = _Tap()
            self._forget_old_taps()
        assert tap is not None
        if not owner:
            tap.done.wait(120)
        else:
            try:
                tap.result = fn()
            except KioskError as exc:
                tap.error = exc
            except Exception:
                log.exception("tap %s failed", tap_id)
                tap.error = KioskError("internal", f"取号机故障，{GO_TO_DESK}", status=500)
            finally:
                tap.done.set()
        if tap.error is not None:
            raise tap.error
        assert tap.result is not None
        return tap.result

    def _forget_old_taps(self) -> None:
        cutoff = time.monotonic() - 600
        for k in [k for k, t in self._taps.items() if t.done.is_set() and t.at < cutoff]:
            del self._taps[k]

    def _request_id(self, tap_id: str) -> str:
        return f"{self.cfg.device}-{tap_id}"

    def take_ticket(self, tap_id: str, *, matter: str | None = None, bundle: str | None = None,
                    queue: str | None = None, optional: list[str] | None = None,
                    use_card: bool = True) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            self._require_ready()
            body: dict[str, Any] = {"request_id": self._request_id(tap_id), "channel": "kiosk"}
            for key, val in (("matter", matter), ("bundle", bundle), ("queue", queue)):
                if val:
                    body[key] = val
            needs = False
            if matter and self.catalogue:
                needs = any(mm["id"] == matter and mm["needs_identity"] for mm in self.catalogue["matters"])
            card = self.devices.card.current() if use_card or needs else None
            if needs and card is None:
                raise KioskError("identity_required", "办理该事项需要刷身份证，请将身份证放在感应区")
            if card is not None:
                body["id_number"] = card.id_number
            notes = []
            if bundle and self.catalogue:
                b = next((x for x in self.catalogue["bundles"] if x["id"] == bundle), None)
                if b is not None:
                    names = {x["id"]: x["name"] for x in b["optional"]}
                    chosen = [names[x] for x in (optional or []) if x in names]
                    notes.append(f"一件事：{b['name']}")
                    if chosen:
                        body["note"] = ("选办：" + "、".join(chosen))[:200]
                        notes.append(body["note"])
            issued = self._issue(body, lambda: self.link.issue(body, self.cfg.issue_retry_seconds))
            return self._print_and_confirm(issued, notes, void={"request_id": body["request_id"]})

        return self._run_tap(tap_id, work)

    def check_in(self, tap_id: str, *, code: str | None = None) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            self._require_ready()
            body: dict[str, Any] = {}
            if code:
                body["code"] = code.strip()
            else:
                card = self.devices.card.current()
                if card is None:
                    raise KioskError("identity_required", "请输入预约码，或将身份证放在感应区")
                body["id_number"] = card.id_number
            issued = self._issue(None, lambda: self.link.check_in(body, self.cfg.issue_retry_seconds))
            appt = issued.get("appointment") or {}
            notes = [f"预约签到：{appt.get('slot_label', '')}"] if appt else []
            return self._print_and_confirm(issued, notes, void={"ticket_id": issued["ticket"]["id"]})

        return self._run_tap(tap_id, work)

    def _require_ready(self) -> None:
        if not self.devices.printer_ready():
            state = self.devices.printer_state()
            raise KioskError("printer_unavailable", f"{PRINTER_PARTS[state]}，{GO_TO_DESK}")

    def _issue(self, body: dict[str, Any] | None, call: Any) -> dict[str, Any]:
        rid = body["request_id"] if body else None
        if rid:
            self._remember(rid)
        try:
            issued = call()
        except ServerUnreachable:
            raise KioskError("server_unreachable", MSG_SERVER_DOWN, retry=True, status=503) from None
        except ServerError as exc:
            if rid:
                self._settled(rid)
            raise KioskError(exc.code, exc.message, status=409 if exc.status < 500 else 502) from None
        if issued["ticket"]["status"] != "waiting":
            if rid:
                self._settled(rid)
            raise KioskError("ticket_void", "本次取号已超时作废，请返回首页重新取号")
        return issued

    def _print_and_confirm(self, issued: dict[str, Any], notes: list[str], void: dict[str, Any]) -> dict[str, Any]:
        t = issued["ticket"]
        prio_label = None
        if t.get("priority") and t.get("priority_class") and self.catalogue:
            prio_label = next((p["name"] for p in self.catalogue["priority_classes"]
                               if p["id"] == t["priority_class"]), None)
        hall_name = (self.catalogue or {}).get("hall", {}).get("name", "")
        issued_at = dt.datetime.fromisoformat(t["issued_at"]).astimezone(hall_zone(self.catalogue))
        slip = TicketSlip(
            hall_name=hall_name, ticket_number=t["number"], queue_name=t["queue_name"],
            people_ahead=int(issued["people_ahead"]), wait_minutes=int(issued["estimated_wait_minutes"]),
            issued_at=issued_at, qr_url=issued["status_url"],
            notes=tuple(notes + list(self.cfg.printer.notes if self.cfg.printer else [])),
            priority_label=prio_label,
        )
        try:
            with self._print_lock:
                if self.devices.printer is None:
                    raise PaperOut("未配置打印机")
                self.devices.printer.print_ticket(slip)
        except (PrinterError, PortError) as exc:
            reason = "打印机连接中断" if isinstance(exc, PortError) else (str(exc) or "打印失败")
            self.last_printer_problem = str(reason)
            log.warning("slip %s not printed (%s): voiding the ticket", t["number"], reason)
            self._void(void, f"取号机未能出票（{reason}），已作废")
            self._wake.set()
            raise KioskError("print_failed", f"{reason}，本次取号已作废，{GO_TO_DESK}") from None
        if "request_id" in void:
            self._settled(void["request_id"])
        self.devices.card.clear()
        log.info("ticket %s printed for %s", t["number"], t["queue_name"])
        return {
            "ticket": t, "people_ahead": issued["people_ahead"], "estimated_wait_minutes": issued["estimated_wait_minutes"],
            "status_url": issued["status_url"], "priority_label": prio_label, "person_masked": issued.get("person_masked"),
            "appointment": issued.get("appointment"),
        }

    # ---- voids and unconfirmed requests --------------------------------------------------------
    def _void(self, target: dict[str, Any], reason: str) -> None:
        try:
            self.link.retrying("POST", f"/halls/{self.cfg.hall}/tickets/void", {**target, "reason": reason}, 3.0)
            if "request_id" in target:
                self._settled(target["request_id"])
        except ServerUnreachable:
            with self._lock:
                self._to_void.append({**target, "reason": reason})
            self._save_journal()
        except ServerError as exc:
            log.error("could not void %s: %s", target, exc)

    def _remember(self, rid: str) -> None:
        with self._lock:
            self._unconfirmed[rid] = time.time()
        self._save_journal()

    def _settled(self, rid: str) -> None:
        with self._lock:
            self._unconfirmed.pop(rid, None)
        self._save_journal()

    def _settle_pending(self) -> None:
        """Void what a lost answer may have left waiting without a slip, once the server is back."""
        with self._lock:
            todo = list(self._to_void)
            self._to_void.clear()
            cutoff = time.time() - self.cfg.abandon_seconds
            stale = [rid for rid, at in self._unconfirmed.items() if at < cutoff]
            running = {self._request_id(k) for k, t in self._taps.items() if not t.done.is_set()}
        stale = [rid for rid in stale if rid not in running]
        for rid in stale:
            todo.append({"request_id": rid, "reason": "取号机未收到服务器应答、未出票，已作废"})
        for item in todo:
            reason = item.pop("reason")
            try:
                r = self.link.request("POST", f"/halls/{self.cfg.hall}/tickets/void", {**item, "reason": reason})[1]
                if r.get("voided"):
                    log.warning("voided unprinted ticket %s", r.get("ticket", {}).get("number"))
                if "request_id" in item:
                    self._settled(item["request_id"])
            except ServerUnreachable:
                with self._lock:
                    self._to_void.append({**item, "reason": reason})
            except ServerError as exc:
                log.error("could not void %s: %s", item, exc)
                if "request_id" in item:
                    self._settled(item["request_id"])
        if todo:
            self._save_journal()

    def _load_journal(self) -> None:
        if self._journal is None or not self._journal.exists():
            return
        try:
            doc = json.loads(self._journal.read_text(encoding="utf-8"))
            self._unconfirmed = {str(k): float(v) for k, v in doc.get("unconfirmed", {}).items()}
            self._to_void = list(doc.get("to_void", []))
        except (OSError, ValueError) as exc:
            log.error("unreadable journal %s: %s", self._journal, exc)

    def _save_journal(self) -> None:
        if self._journal is None:
            return
        with self._lock:
            doc = {"unconfirmed": dict(self._unconfirmed), "to_void": list(self._to_void)}
        try:
            self._journal.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._journal.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            tmp.replace(self._journal)
        except OSError as exc:
            log.error("cannot write journal %s: %s", self._journal, exc)

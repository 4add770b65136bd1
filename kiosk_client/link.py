"""The kiosk's line to the hall server: REST with its device token, retries with backoff
(tenacity) for the requests that are safe to repeat, and a reachability flag the UI shows."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({502, 503, 504})


class ServerUnreachable(Exception):
    """No answer from the hall server (refused, timed out, or a proxy said it is down)."""


class ServerError(Exception):
    """The server answered with an error: ``code`` and a Chinese ``message`` for the citizen."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class HallLink:
    def __init__(self, base_url: str, hall: str, device: str, token: str, *, timeout: float = 5.0) -> None:
        self.base = base_url.rstrip("/")
        self.hall = hall
        self.device = device
        self.token = token
        self.timeout = timeout
        self._local = threading.local()
        self._online: bool | None = None
        self._listeners: list[Callable[[bool], None]] = []

    # ---- reachability ------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        return bool(self._online)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def _mark(self, online: bool) -> None:
        if self._online == online:
            return
        first = self._online is None
        self._online = online
        if first and online:
            log.info("hall server %s reachable", self.base)
        else:
            log.warning("hall server %s %s", self.base, "reachable again" if online else "unreachable")
        for listener in list(self._listeners):
            try:
                listener(online)
            except Exception:
                log.exception("link listener failed")

    def probe(self) -> bool:
        try:
            r = self._session().get(f"{self.base}/healthz", timeout=min(self.timeout, 3.0))
            ok = r.status_code == 200
        except requests.RequestException:
            ok = False
        self._mark(ok)
        return ok

    # ---- requests ----------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.headers["Authorization"] = f"Bearer {self.token}"
        return s

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """One attempt. Raises :class:`ServerUnreachable` or :class:`ServerError` (status >= 400)."""
        url = f"{self.base}/api/v1{path}"
        try:
            r = self._session().request(method, url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            self._mark(False)
            raise ServerUnreachable(str(exc)) from exc
        if r.status_code in RETRYABLE_STATUS:
            self._mark(False)
            raise ServerUnreachable(f"{r.status_code} from {url}")
        self._mark(True)
        try:
            data = r.json()
        except ValueError:
            data = {}
        if r.status_code >= 400:
            err = data.get("error") or {}
            raise ServerError(r.status_code, err.get("code", "error"), err.get("message", f"服务器错误 {r.status_code}"))
        return r.status_code, data

    def retrying(self, method: str, path: str, body: dict[str, Any] | None, within: float) -> tuple[int, dict[str, Any]]:
        """Repeat an idempotent request (same request id) until answered or ``within`` seconds pass."""
        for attempt in Retrying(stop=stop_after_delay(within), wait=wait_exponential_jitter(multiplier=0.3, max=2.0),
                                retry=retry_if_exception_type(ServerUnreachable), reraise=True):
            with attempt:
                return self.request(method, path, body)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- what the kiosk asks -----------------------------------------------------------------
    def catalogue(self) -> dict[str, Any]:
        return self.request("GET", f"/halls/{self.hall}/catalogue")[1]

    def issue(self, body: dict[str, Any], within: float) -> dict[str, Any]:
        return self.retrying("POST", f"/halls/{self.hall}/tickets", body, within)[1]

    def check_in(self, body: dict[str, Any], within: float) -> dict[str, Any]:
        return self.retrying("POST", f"/halls/{self.hall}/appointments/check-in", body, within)[1]

    def void(self, *, request_id: str | None = None, ticket_id: int | None = None, reason: str) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason}
        if request_id is not None:
            body["request_id"] = request_id
        else:
            body["ticket_id"] = ticket_id
        return self.request("POST", f"/halls/{self.hall}/tickets/void", body)[1]

    def report_status(self, state: str, detail: str | None, parts: dict[str, str]) -> None:
        self.request("POST", f"/halls/{self.hall}/devices/status",
                     {"devices": [{"device": self.device, "state": state, "detail": detail, "parts": parts}]})

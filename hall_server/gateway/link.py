"""The gateway's two lines to the hall server: Socket.IO for what happens, REST for what pads do.

:class:`LiveLink` keeps one Socket.IO connection up by itself (python-socketio reconnects with capped
exponential backoff once connected; the first connection is retried here the same way) and hands
every event to a callback in arrival order, from one thread. :class:`Rest` makes the window actions
and reports with a device token; a request that could not reach the server at all (connection refused
or reset before it was sent) is retried for a bounded time, since it cannot have taken effect. A
request that reached the server and timed out is not retried: window actions are not idempotent (a
second call-next calls a second ticket), so the pad is told to look at the board instead.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable

import engineio
import requests
import socketio

log = logging.getLogger(__name__)


class _InOrderEngineIO(engineio.Client):
    """python-engineio's client hands every received message to a thread of its own, so two messages
    can reach the handlers in either order: a board could go back to an older window state, or an
    event be applied before the snapshot it follows. Here each message is handled on the reading
    thread, one after another, as it arrived. The handlers only queue it (``EventSink``): reading never
    waits on a device."""

    def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class InOrderClient(socketio.Client):
    def _engineio_client_class(self) -> type[engineio.Client]:
        return _InOrderEngineIO


EventSink = Callable[[str, Any], None]


class ActionError(Exception):
    """A window action was refused or could not be made; ``message`` is short Chinese for a pad."""

    def __init__(self, message: str, code: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def short_message(message: str, limit: int = 24) -> str:
    """The Chinese part of a server message ("当前没有等候的号 (no one waiting)" -> "当前没有等候的号")."""
    text = message.split(" (", 1)[0].split("（", 1)[0].strip() or message
    return text[:limit]


class Rest:
    def __init__(self, base: str, token: str, *, timeout: float = 5.0, retry_seconds: float = 5.0) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._local = threading.local()  # requests.Session is not thread-safe: one per thread

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                retry_seconds: float | None = None) -> Any:
        """JSON of a 2xx answer; :class:`ActionError` otherwise (message from the server's error body)."""
        url = f"{self.base}/api/v1{path}"
        headers = {"Authorization": f"Bearer {token or self.token}"}
        deadline = time.monotonic() + (self.retry_seconds if retry_seconds is None else retry_seconds)
        delay = 0.2
        while True:
            try:
                r = self._session().request(method, url, json=body, headers=headers, timeout=self.timeout)
                break
            except requests.ConnectionError:  # includes ConnectTimeout: nothing was sent
                if time.monotonic() + delay > deadline:
                    raise ActionError("无法连接服务器", "unreachable") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except requests.Timeout:
                raise ActionError("服务器响应超时，请看屏幕确认", "timeout") from None
        if r.status_code >= 400:
            try:
                err = r.json()["error"]
                raise ActionError(short_message(str(err.get("message", ""))), str(err.get("code", "error")),
                                  r.status_code)
            except (ValueError, KeyError, TypeError):
                raise ActionError(f"服务器错误 {r.status_code}", "http", r.status_code) from None
        return r.json() if r.content else None

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)


class LiveLink:
    """One Socket.IO connection to a hall (optionally a window room), kept up for good."""

    def __init__(self, url: str, hall: str, token: str, sink: EventSink, *, window: str | None = None,
                 events: tuple[str, ...] = ("snapshot", "ticket", "window", "queues"),
                 on_state: Callable[[bool], None] | None = None, name: str = "server") -> None:
        self.url = url
        self.auth: dict[str, Any] = {"hall": hall, "token": token}
        if window is not None:
            self.auth["window"] = window
        self.name = name
        self.on_state = on_state
        self.connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = InOrderClient(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=5,
                                      randomization_factor=0.5, logger=False, engineio_logger=False)
        for name_ in events:
            self.client.on(name_, (lambda n: (lambda data=None: sink(n, data)))(name_))
        self.client.on("connect", self._connected)
        self.client.on("disconnect", self._disconnected)

    def _connected(self) -> None:
        self.connected = True
        log.info("%s: connected to %s", self.name, self.url)
        if self.on_state:
            self.on_state(True)

    def _disconnected(self, reason: Any = None) -> None:
        self.connected = False
        log.warning("%s: connection to %s lost (%s); reconnecting", self.name, self.url, reason)
        if self.on_state:
            self.on_state(False)

    def start(self) -> "LiveLink":
        self._thread = threading.Thread(target=self._first_connect, name=f"link-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _first_connect(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self.client.connect(self.url, auth=self.auth, transports=["websocket"], wait_timeout=10)
                return  # from here python-socketio reconnects by itself
            except socketio.exceptions.ConnectionError as exc:
                log.warning("%s: cannot connect to %s (%s); retry in %.1f s", self.name, self.url, exc, delay)
                if self.on_state:
                    self.on_state(False)
            self._stop.wait(delay + random.uniform(0, delay / 2))
            delay = min(delay * 2, 5.0)

    def stop(self) -> None:
        self._stop.set()
        try:
            self.client.disconnect()
        except Exception:  # already gone
            log.debug("%s: disconnect failed", self.name, exc_info=True)
        if self._thread is not None:
            self._thread.join(5)

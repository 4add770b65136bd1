"""Supervised reconnect loop shared by every device.

A device session is ``connect()`` (opens the port, returns a handle) followed by ``serve(handle)``
(runs until the device fails or stop is requested). When either raises, the supervisor reports the
device offline, waits with capped exponential backoff plus jitter (tenacity's
``wait_exponential_jitter``) and tries again. A successful connect resets the backoff and reports online.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Generic, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from .health import Health, HealthReporter

log = logging.getLogger(__name__)
T = TypeVar("T")


class DeviceSupervisor(Generic[T]):
    def __init__(
        self,
        reporter: HealthReporter,
        connect: Callable[[], T],
        serve: Callable[[T, threading.Event], None],
        close: Callable[[T], None] | None = None,
        *,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        jitter: float = 0.5,
    ) -> None:
        self.reporter = reporter
        self._connect = connect
        self._serve = serve
        self._close = close
        self._wait = wait_exponential_jitter(multiplier=initial_backoff, max=max_backoff, jitter=jitter)
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.attempts = 0  # connection attempts so far, for health pages and tests

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = f"连接失败: {exc}" if exc else "连接失败"
        self.reporter.report(Health.OFFLINE, reason)
        log.warning(
            "%s: connect failed (%s); retry %d in %.1fs",
            self.reporter.device, exc, state.attempt_number,
            state.next_action.sleep if state.next_action else 0,
        )

    def _connect_with_backoff(self) -> T | None:
        retrying = Retrying(
            wait=self._wait,
            retry=retry_if_exception_type(Exception),
            stop=lambda _state: self.stop_event.is_set(),
            sleep=self.stop_event.wait,
            before_sleep=self._log_retry,
            reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.attempts += 1
                    if self.stop_event.is_set():
                        return None
                    return self._connect()
        except Exception:  # stopped while retrying
            return None
        return None

    def run(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            handle = self._connect_with_backoff()
            if handle is None:
                break
            failures = 0
            if self.reporter.current is None or self.reporter.current.health == Health.OFFLINE:
                self.reporter.report(Health.ONLINE)
            try:
                self._serve(handle, self.stop_event)
            except Exception as exc:  # the device failed while in use
                failures += 1
                log.warning("%s: device failed: %s", self.reporter.device, exc)
                self.reporter.report(Health.OFFLINE, f"设备故障: {exc}")
            finally:
                if self._close is not None:
                    try:
                        self._close(handle)
                    except Exception:  # closing a broken port may fail too
                        log.debug("%s: close failed", self.reporter.device, exc_info=True)
            if not self.stop_event.is_set():
                self.stop_event.wait(min(0.5 * (2 ** min(failures, 6)), 30.0))

    def start(self) -> "DeviceSupervisor[T]":
        self._thread = threading.Thread(target=self.run, name=f"dev-{self.reporter.device}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

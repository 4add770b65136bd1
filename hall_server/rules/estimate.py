"""The estimated wait printed on a ticket and shown on pages.

estimate = people ahead x mean handling time / windows serving the queue

- *people ahead*: waiting tickets of the same queue that the routing rule would call first (earlier
  place; priority tickets count as ahead of a normal ticket).
- *mean handling time*: the mean of the queue's recent handling times (call to finish, so walking
  time is included), or the queue's configured default when there are too few today.
- *windows serving*: open, unpaused windows that list the queue; a window serving k queues counts
  as 1/k of a window for each, since its time is shared.
With no window open the estimate falls back to one window, so a citizen is never told "0 minutes".
"""
from __future__ import annotations

import datetime as dt
import statistics
from typing import Any, Mapping


def mean_handling(recent_seconds: list[float], default_seconds: float, min_samples: int = 3) -> float:
    if len(recent_seconds) < min_samples:
        return default_seconds
    return statistics.fmean(recent_seconds)


def window_share(queue_counts_of_open_windows: list[int]) -> float:
    """Windows serving a queue, each weighted by 1 / number of queues it serves."""
    return sum(1.0 / k for k in queue_counts_of_open_windows if k > 0)


def estimate_wait(people_ahead: int, handling_seconds: float, windows: float) -> float:
    """Seconds until a ticket with ``people_ahead`` in front of it is called."""
    if people_ahead <= 0:
        return 0.0
    return people_ahead * handling_seconds / (windows if windows > 0 else 1.0)


# ---- candidates measured by `hall simulate` (docs/benchmarks.md) ------------------------------------
RATE_WINDOW_SECONDS = 1800.0
MIN_RATE_CALLS = 5


def estimate_wait_departures(people_ahead: int, handling_seconds: float, windows: float, free_windows: int = 0) -> float:
    """Time until ``people_ahead + 1`` windows have come free: the ticket itself needs a window too,
    unless one serving its queue is idle now."""
    needed = people_ahead + 1 - free_windows
    if needed <= 0:
        return 0.0
    return needed * handling_seconds / (windows if windows > 0 else 1.0)


def estimate_wait_rate(people_ahead: int, recent_calls: int, span_seconds: float, handling_seconds: float,
                       windows: float, free_windows: int = 0) -> float:
    """From the queue's own call rate over the last ``span_seconds`` (which already reflects pauses,
    priority tickets and multi-queue windows); the departure estimate while there are too few calls."""
    if recent_calls < MIN_RATE_CALLS:
        return estimate_wait_departures(people_ahead, handling_seconds, windows, free_windows)
    needed = people_ahead + 1 - free_windows
    return max(0, needed) * span_seconds / recent_calls


def waiting_since(issued_at: dt.datetime, data: Mapping[str, Any] | None) -> dt.datetime:
    """When an issued ticket starts waiting, for the measured waits of the dashboard and the reports:
    its issue time, or, for an appointment checked in before its slot, the slot (``wait_from`` in the
    ``issued`` event's data). Coming early is the citizen's choice: the hall is measured on how long
    it kept them past the time it gave them. A late check-in waits from its check-in."""
    since = (data or {}).get("wait_from")
    if not since:
        return issued_at
    try:
        slot = dt.datetime.fromisoformat(str(since))
    except ValueError:
        return issued_at
    return max(issued_at, slot) if slot.tzinfo else issued_at

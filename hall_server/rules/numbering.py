"""Service days and ticket numbers. Numbers restart at local midnight in the hall's time zone."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def service_day(now: dt.datetime, tz: ZoneInfo) -> dt.date:
    """The hall-local calendar day of an aware UTC instant."""
    if now.tzinfo is None:
        raise ValueError("service_day needs an aware datetime")
    return now.astimezone(tz).date()


def format_number(prefix: str, number: int) -> str:
    """A001 ... A999, then A1000: the width grows rather than wrapping, so numbers stay unique."""
    return f"{prefix}{number:03d}"


def within_hours(now: dt.datetime, tz: ZoneInfo, periods: list[tuple[dt.time, dt.time]]) -> bool:
    if not periods:
        return True
    local = now.astimezone(tz).time()
    return any(start <= local < end for start, end in periods)

"""Typed live events. Built inside a transaction, published only after it commits.

Socket.IO event names and payloads (documented in docs/events.md):

- ``ticket`` (:class:`TicketEventPayload`): ``type`` is one of issued, called, recalled, started,
  finished, no_show, reactivated, transferred, cancelled, expired. Sent to the rooms
  ``hall:<id>`` and, when a window is involved, ``hall:<id>:window:<no>``.
- ``window`` (:class:`WindowPayload`): a window's status changed (signed in/out, paused, resumed,
  ticket called/finished).
- ``queues`` (:class:`QueuesPayload`): waiting counts and estimates per queue; coalesced.
- ``snapshot`` (:class:`SnapshotPayload`): the whole hall, sent first to every client that connects
  or reconnects.

No payload carries personal data: tickets are shown by number only.
"""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel

TicketEventType = Literal[
    "issued", "called", "recalled", "started", "finished", "no_show", "reactivated",
    "transferred", "cancelled", "expired",
]


class TicketView(BaseModel):
    id: int
    number: str
    queue: str
    queue_name: str
    status: str
    status_label: str
    stage: str
    priority: bool
    priority_class: str | None = None
    window: str | None = None
    recalls: int = 0
    issued_at: dt.datetime
    called_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class TicketEventPayload(BaseModel):
    type: TicketEventType
    hall: str
    seq: int  # the ticket_events row id: orders events of one hall
    at: dt.datetime
    window: str | None = None
    ticket: TicketView


class WindowPayload(BaseModel):
    hall: str
    number: str
    name: str
    status: str
    status_label: str
    clerk: str | None = None
    clerk_name: str | None = None
    pause_reason: str | None = None
    ticket: TicketView | None = None
    queues: list[str]
    since: dt.datetime | None = None


class QueueView(BaseModel):
    id: str
    prefix: str
    name: str
    waiting: int
    longest_wait_seconds: float
    estimated_wait_seconds: float
    windows_open: int
    issued_today: int
    last_called: str | None = None


class QueuesPayload(BaseModel):
    hall: str
    at: dt.datetime
    queues: list[QueueView]


class SnapshotPayload(BaseModel):
    hall: str
    hall_name: str
    at: dt.datetime
    service_day: dt.date
    queues: list[QueueView]
    windows: list[WindowPayload]
    recent_calls: list[TicketEventPayload]
    last_seq: int


class Outbox:
    """Events collected during a transaction; the web layer publishes them after the commit."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, BaseModel, list[str]]] = []
        self.touched_halls: set[str] = set()

    def add(self, name: str, hall: str, payload: BaseModel, rooms: list[str]) -> None:
        self.items.append((name, hall, payload, rooms))
        self.touched_halls.add(hall)

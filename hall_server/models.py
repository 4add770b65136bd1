"""Database tables. Halls, queues and windows live in the config file; the database holds what
happens: tickets, their events, window state, counters, users and tokens."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text,
    UniqueConstraint, literal_column, text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrement needs INTEGER


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware UTC datetimes; SQLite forgets the zone, so it is put back on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("hall_id", "origin_queue_id", "service_day", "number", name="uq_ticket_number"),
        UniqueConstraint("hall_id", "request_id", name="uq_ticket_request"),
        # a queue's finished tickets of a day, latest first: the recent handling times behind the wait
        # estimates
        Index("ix_ticket_finished", "hall_id", "queue_id", "service_day", "finished_at",
              postgresql_where=text("status = 'finished'"), sqlite_where=text("status = 'finished'")),
        # the waiting pool only (a few dozen rows of a day among months of history): call-next's
        # candidates, the people ahead of a ticket, the waiting counts of the boards; used where the
        # query says status = 'waiting' in its text (status_is)
        Index("ix_ticket_waiting_class", "hall_id", "queue_id", "priority", "place", "id",
              postgresql_where=text("status = 'waiting'"), sqlite_where=text("status = 'waiting'")),
        # waiting tickets sent to a particular window (transfers), looked up at each of its calls
        # (only those: a query of the whole pool must not find this index usable, whatever the statistics)
        Index("ix_ticket_waiting_sent", "hall_id", "target_window", "place", "id",
              postgresql_where=text("status = 'waiting' AND target_window IS NOT NULL"),
              sqlite_where=text("status = 'waiting' AND target_window IS NOT NULL")),
        Index("ix_ticket_person", "hall_id", "person_hash", "service_day"),
        Index("ix_ticket_day", "hall_id", "service_day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(String(64))
    queue_id: Mapped[str] = mapped_column(String(64))
    origin_queue_id: Mapped[str] = mapped_column(String(64))  # the queue whose number it carries
    service_day: Mapped[dt.date] = mapped_column(Date)
    number: Mapped[int] = mapped_column(Integer)
    display: Mapped[str] = mapped_column(String(16))  # "A001"
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    channel: Mapped[str] = mapped_column(String(16))
    priority_class: Mapped[str | None] = mapped_column(String(32))
    priority: Mapped[bool] = mapped_column(Boolean, default=False)
    matter_id: Mapped[str | None] = mapped_column(String(64))
    bundle_id: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32), default="受理")
    place: Mapped[float] = mapped_column(Float)  # position in the queue, epoch seconds
    eligible_at: Mapped[float] = mapped_column(Float, default=0.0)
    target_window: Mapped[str | None] = mapped_column(String(16))
    window: Mapped[str | None] = mapped_column(String(16))  # window serving or last served
    clerk: Mapped[str | None] = mapped_column(String(32))
    recalls: Mapped[int] = mapped_column(Integer, default=0)
    person_hash: Mapped[str | None] = mapped_column(String(64))
    person_masked: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str] = mapped_column(String(80))
    public_token: Mapped[str] = mapped_column(String(48), unique=True)
    note: Mapped[str | None] = mapped_column(Text)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    called_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    case_no: Mapped[str | None] = mapped_column(String(64))


def status_is(column: Any, status: str) -> ColumnElement[bool]:
    """``column = 'waiting'`` with the value written into the statement's text, not bound as a
    parameter. PostgreSQL plans each prepared statement once for all parameter values
    (``db._prepared``): only a literal tells that plan that 'waiting' is a few rows among months of
    finished ones, and lets it use the partial index of the waiting pool; SQLite uses a partial
    index only for a literal too. ``status`` is one of our own state names, never outside input."""
    if not status.replace("_", "").isalnum():
        raise ValueError(f"not a state name: {status!r}")
    return column == literal_column(f"'{status}'")  # type: ignore[no-any-return]


def row_status_is(column: Any, status: str) -> ColumnElement[bool]:
    """``column = 'waiting'`` for rows found by their id, in a form (``column || ''``) that PostgreSQL
    cannot match with a partial index's ``status = 'waiting'``, so the lookup goes by the primary key
    whatever the statistics say. They are stale on a hall's busiest table: the night's vacuum leaves
    the waiting pool's index with 0 rows, autovacuum analyses the table again only after a tenth of
    it has changed (days, with months of history), and a plan believing the pool empty looked the
    ticket up by scanning the whole pool, twice per call: 1.2 ms per scan at 2,200 waiting."""
    if not status.replace("_", "").isalnum():
        raise ValueError(f"not a state name: {status!r}")
    return column.op("||")(literal_column("''")) == literal_column(f"'{status}'")  # type: ignore[no-any-return]


class TicketEvent(Base):
    """Append-only history: every report is recomputable from these rows."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_event_hall_at", "hall_id", "at"), Index("ix_event_ticket", "ticket_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    hall_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    queue_id: Mapped[str] = mapped_column(String(64))
    window: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Counter(Base):
    """Last number issued per queue per service day. Incremented in the issuing transaction, so a
    rolled-back issue leaves no gap."""

    __tablename__ = "counters"

    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class QueueState(Base):
    __tablename__ = "queue_state"

    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    priority_streak: Mapped[int] = mapped_column(Integer, default=0)


class WindowState(Base):
    __tablename__ = "window_state"

    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(16), primary_key=True)
    clerk: Mapped[str | None] = mapped_column(String(32))
    signed_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_reason: Mapped[str | None] = mapped_column(String(64))
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ticket_id: Mapped[int | None] = mapped_column(BigId)
    queues_override: Mapped[list[str] | None] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WindowLog(Base):
    """Sign-in, sign-out, pause and resume, for utilisation and pause-time reports."""

    __tablename__ = "window_log"
    __table_args__ = (Index("ix_window_log", "hall_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    clerk: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))


class HallState(Base):
    __tablename__ = "hall_state"

    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_day: Mapped[dt.date] = mapped_column(Date)  # the last day rolled over to


class User(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    staff_no: Mapped[str] = mapped_column(String(32), default="")
    role: Mapped[str] = mapped_column(String(16))
    halls: Mapped[list[str] | str] = mapped_column(JSON, default="*")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class AuthToken(Base):
    """Bearer tokens of users (expiring) and devices (until revoked). Only a SHA-256 is stored."""

    __tablename__ = "auth_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str | None] = mapped_column(ForeignKey("users.username"))
    hall_id: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


# Feature tables live in their own modules; importing them here registers them with Base.metadata.
from . import device_status_models  # noqa: E402,F401
from . import notice_models  # noqa: E402,F401
from . import evaluation_models  # noqa: E402,F401
from . import alert_models  # noqa: E402,F401
from . import appointment_models  # noqa: E402,F401

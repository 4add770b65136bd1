"""Tables of online appointments (预约): the bookings and a per-slot counter that enforces capacity."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigId, UTCDateTime


class Appointment(Base):
    """One booking. The ID number is kept only as the keyed hash and the masked form (PIPL)."""

    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("hall_id", "code", name="uq_appointment_code"),
        Index("ix_appointment_person", "hall_id", "person_hash", "service_day"),
        Index("ix_appointment_day", "hall_id", "service_day", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(String(64))
    queue_id: Mapped[str] = mapped_column(String(64))
    matter_id: Mapped[str | None] = mapped_column(String(64))
    service_day: Mapped[dt.date] = mapped_column(Date)
    slot_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    slot_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    code: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="booked")  # booked / checked_in / cancelled
    person_hash: Mapped[str] = mapped_column(String(64))
    person_masked: Mapped[str] = mapped_column(String(32))
    name_masked: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(80))
    ticket_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    check_ins: Mapped[int] = mapped_column(Integer, default=0)  # tickets issued for it (a voided one is re-issued)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AppointmentSlot(Base):
    """Bookings held per queue and slot: incremented with a conditional UPDATE (``booked < capacity``),
    so two citizens racing for the last place cannot both get it, on SQLite and PostgreSQL alike."""

    __tablename__ = "appointment_slots"

    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    booked: Mapped[int] = mapped_column(Integer, default=0)

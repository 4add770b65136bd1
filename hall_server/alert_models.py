"""Alerts raised for hall managers (wait over target, queue too long, window paused too long, device
fault, 差评, overdue follow-up), kept so a manager who reconnects sees the list."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Float, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigId, UTCDateTime


class Alert(Base):
    """One alert. ``dedupe_key`` makes raising idempotent across server processes: a condition alert
    holds it (``wait:biz``) while open and drops it (NULL) when the condition clears, so the next
    occurrence opens a new alert; a one-off alert (``bad_review:17``) keeps it for ever."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("hall_id", "dedupe_key", name="uq_alert_dedupe"),
        Index("ix_alert_hall_opened", "hall_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))  # queue id, window number, device id, evaluation or case id
    dedupe_key: Mapped[str | None] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))  # warning | critical
    message: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))

"""Tables of 好差评: one evaluation per ticket per stage (an unrated visit is a row with no grade),
and one follow-up case per bad review."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigId, UTCDateTime


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("ticket_id", "stage", name="uq_evaluation_ticket_stage"),
        Index("ix_evaluation_hall_requested", "hall_id", "requested_at"),
        Index("ix_evaluation_window", "hall_id", "window", "requested_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    stage: Mapped[str] = mapped_column(String(32))
    window: Mapped[str] = mapped_column(String(16))
    clerk: Mapped[str | None] = mapped_column(String(32))
    queue_id: Mapped[str] = mapped_column(String(64))
    matter_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # "pad" | "online"
    grade: Mapped[int | None] = mapped_column(Integer)  # 5 非常满意 ... 1 非常不满意; NULL: unrated
    sub_scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    comment: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    evaluated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class FollowUpCase(Base):
    """回访核实 and 限期整改 of one bad review."""

    __tablename__ = "followup_cases"
    __table_args__ = (Index("ix_followup_hall_status", "hall_id", "status", "deadline"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hall_id: Mapped[str] = mapped_column(String(64))
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    window: Mapped[str] = mapped_column(String(16))
    clerk: Mapped[str | None] = mapped_column(String(32))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[dt.date] = mapped_column(Date)
    assignee: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")  # "open" | "closed"
    callback_note: Mapped[str | None] = mapped_column(Text)
    callback_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    fix_note: Mapped[str | None] = mapped_column(Text)
    fix_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(32))
    overdue_alerted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # the overdue alert went out

"""The hall screen's scrolling notice (滚动公告), one row per hall, set by a manager."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, UTCDateTime


class HallNotice(Base):
    __tablename__ = "hall_notices"

    hall_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(64))

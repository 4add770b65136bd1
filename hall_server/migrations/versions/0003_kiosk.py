"""appointments (online booking, kiosk check-in)

Revision ID: 0003_kiosk
Revises: 0002_devices
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_kiosk"
down_revision = "0002_devices"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("hall_id", sa.String(64), nullable=False),
        sa.Column("queue_id", sa.String(64), nullable=False),
        sa.Column("matter_id", sa.String(64), nullable=True),
        sa.Column("service_day", sa.Date(), nullable=False),
        sa.Column("slot_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("person_hash", sa.String(64), nullable=False),
        sa.Column("person_masked", sa.String(32), nullable=False),
        sa.Column("name_masked", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(80), nullable=True),
        sa.Column("ticket_id", BigId, nullable=True),
        sa.Column("check_ins", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("hall_id", "code", name="uq_appointment_code"),
    )
    op.create_index("ix_appointment_person", "appointments", ["hall_id", "person_hash", "service_day"])
    op.create_index("ix_appointment_day", "appointments", ["hall_id", "service_day", "status"])
    op.create_table(
        "appointment_slots",
        sa.Column("hall_id", sa.String(64), primary_key=True),
        sa.Column("queue_id", sa.String(64), primary_key=True),
        sa.Column("slot_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("booked", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("appointment_slots")
    op.drop_index("ix_appointment_day", table_name="appointments")
    op.drop_index("ix_appointment_person", table_name="appointments")
    op.drop_table("appointments")

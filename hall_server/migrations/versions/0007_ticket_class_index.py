"""waiting tickets by queue and class

Revision ID: 0007_ticket_class_index
Revises: 0006_alerts

Call-next reads the first few tickets of each queue and class (priority or not), and issuing counts
the tickets ahead of a new one per class: both become index range reads instead of scans of the
queue's whole waiting pool.
"""
from __future__ import annotations

from alembic import op

revision = "0007_ticket_class_index"
down_revision = "0006_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ticket_class", "tickets", ["hall_id", "queue_id", "status", "priority", "place", "id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_class", table_name="tickets")

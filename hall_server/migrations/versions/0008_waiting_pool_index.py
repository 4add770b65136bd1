"""the waiting pool's own index

Revision ID: 0008_waiting_pool_index
Revises: 0007_ticket_class_index

``ix_ticket_class`` covered every ticket ever issued; its replacement holds the waiting ones only
(``WHERE status = 'waiting'``), so call-next's candidates, the people-ahead counts and the boards'
waiting counts read a few dozen entries however long the hall's history grows.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_waiting_pool_index"
down_revision = "0007_ticket_class_index"
branch_labels = None
depends_on = None

_WAITING = sa.text("status = 'waiting'")


def upgrade() -> None:
    op.create_index("ix_ticket_waiting_class", "tickets", ["hall_id", "queue_id", "priority", "place", "id"],
                    postgresql_where=_WAITING, sqlite_where=_WAITING)
    op.drop_index("ix_ticket_class", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_ticket_class", "tickets", ["hall_id", "queue_id", "status", "priority", "place", "id"])
    op.drop_index("ix_ticket_waiting_class", table_name="tickets")

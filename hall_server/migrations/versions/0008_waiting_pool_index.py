"""the waiting pool's own indexes

Revision ID: 0008_waiting_pool_index
Revises: 0007_ticket_class_index

``ix_ticket_class`` covered every ticket ever issued; its replacement holds the waiting ones only
(``WHERE status = 'waiting'``), so call-next's candidates, the people-ahead counts and the boards'
waiting counts read a few dozen entries however long the hall's history grows; so does the lookup of
the tickets sent to a window, which read every ticket of the hall before. ``ix_ticket_waiting``
(a queue's tickets by state) is replaced by ``ix_ticket_queue_day``: the recent handling times of a
queue (wait estimates) read that day's finished tickets, not every finished one since the first day.
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
    op.create_index("ix_ticket_waiting_sent", "tickets", ["hall_id", "target_window", "place", "id"],
                    postgresql_where=_WAITING, sqlite_where=_WAITING)
    op.create_index("ix_ticket_queue_day", "tickets", ["hall_id", "queue_id", "service_day", "status", "finished_at"])
    op.drop_index("ix_ticket_class", table_name="tickets")
    op.drop_index("ix_ticket_waiting", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_ticket_waiting", "tickets", ["hall_id", "queue_id", "status", "place"])
    op.drop_index("ix_ticket_queue_day", table_name="tickets")
    op.create_index("ix_ticket_class", "tickets", ["hall_id", "queue_id", "status", "priority", "place", "id"])
    op.drop_index("ix_ticket_waiting_sent", table_name="tickets")
    op.drop_index("ix_ticket_waiting_class", table_name="tickets")

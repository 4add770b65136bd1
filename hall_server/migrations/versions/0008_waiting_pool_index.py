"""the waiting pool's own indexes

Revision ID: 0008_waiting_pool_index
Revises: 0007_ticket_class_index

``ix_ticket_class`` covered every ticket ever issued; its replacement holds the waiting ones only
(``WHERE status = 'waiting'``), so call-next's candidates, the people-ahead counts and the boards'
waiting counts read a few dozen entries however long the hall's history grows; so does the lookup of
the tickets sent to a window, which read every ticket of the hall before. ``ix_ticket_waiting``
(a queue's tickets by state) is replaced by ``ix_ticket_finished``: the recent handling times of a
queue (wait estimates) read that day's finished tickets, not every finished one since the first day.
Each partial index serves only the queries whose text implies its condition, so that a planner
without fresh statistics cannot take one for another.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_waiting_pool_index"
down_revision = "0007_ticket_class_index"
branch_labels = None
depends_on = None

_WAITING = sa.text("status = 'waiting'")
_FINISHED = sa.text("status = 'finished'")
# only the tickets sent to a window: were it all waiting tickets, PostgreSQL could pick it for queries
# of the whole pool when its statistics (taken at night, say) see no waiting ticket at all
_SENT = sa.text("status = 'waiting' AND target_window IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_ticket_waiting_class", "tickets", ["hall_id", "queue_id", "priority", "place", "id"],
                    postgresql_where=_WAITING, sqlite_where=_WAITING)
    op.create_index("ix_ticket_waiting_sent", "tickets", ["hall_id", "target_window", "place", "id"],
                    postgresql_where=_SENT, sqlite_where=_SENT)
    op.create_index("ix_ticket_finished", "tickets", ["hall_id", "queue_id", "service_day", "finished_at"],
                    postgresql_where=_FINISHED, sqlite_where=_FINISHED)
    op.drop_index("ix_ticket_class", table_name="tickets")
    op.drop_index("ix_ticket_waiting", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_ticket_waiting", "tickets", ["hall_id", "queue_id", "status", "place"])
    op.drop_index("ix_ticket_finished", table_name="tickets")
    op.create_index("ix_ticket_class", "tickets", ["hall_id", "queue_id", "status", "priority", "place", "id"])
    op.drop_index("ix_ticket_waiting_sent", table_name="tickets")
    op.drop_index("ix_ticket_waiting_class", table_name="tickets")

"""好差评: evaluations and follow-up cases

Revision ID: 0004_evaluation
Revises: 0003_kiosk
"""
from alembic import op
import sqlalchemy as sa


revision = "0004_evaluation"
down_revision = "0003_kiosk"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", BigId, nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("clerk", sa.String(length=32), nullable=True),
        sa.Column("queue_id", sa.String(length=64), nullable=False),
        sa.Column("matter_id", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=True),
        sa.Column("sub_scores", sa.JSON(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", "stage", name="uq_evaluation_ticket_stage"),
    )
    op.create_index("ix_evaluation_hall_requested", "evaluations", ["hall_id", "requested_at"])
    op.create_index("ix_evaluation_window", "evaluations", ["hall_id", "window", "requested_at"])
    op.create_table(
        "followup_cases",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        sa.Column("evaluation_id", BigId, nullable=False),
        sa.Column("ticket_id", BigId, nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("clerk", sa.String(length=32), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("assignee", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("callback_note", sa.Text(), nullable=True),
        sa.Column("callback_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fix_note", sa.Text(), nullable=True),
        sa.Column("fix_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=32), nullable=True),
        sa.Column("overdue_alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluations.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("evaluation_id"),
    )
    op.create_index("ix_followup_hall_status", "followup_cases", ["hall_id", "status", "deadline"])


def downgrade() -> None:
    op.drop_index("ix_followup_hall_status", table_name="followup_cases")
    op.drop_table("followup_cases")
    op.drop_index("ix_evaluation_window", table_name="evaluations")
    op.drop_index("ix_evaluation_hall_requested", table_name="evaluations")
    op.drop_table("evaluations")

"""hall notice (scrolling text on the hall screen)

Revision ID: 0005_notice
Revises: 0004_evaluation
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_notice"
down_revision = "0004_evaluation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hall_notices",
        sa.Column("hall_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("hall_id"),
    )


def downgrade() -> None:
    op.drop_table("hall_notices")

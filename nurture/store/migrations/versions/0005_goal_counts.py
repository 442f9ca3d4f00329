"""goal counts: readers whose sequence stopped on a goal, as aggregate counts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "goal_counts",
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("goal", sa.String(length=30), nullable=False),
        sa.Column("after_step", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "campaign", "goal", "after_step", "day", name=op.f("pk_goal_counts")
        ),
    )


def downgrade() -> None:
    op.drop_table("goal_counts")

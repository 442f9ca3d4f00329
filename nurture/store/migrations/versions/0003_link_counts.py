"""link counts and retention: link_clicks, outbox_daily, sequence_stops

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link_clicks",
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=150), nullable=False),
        sa.Column("link", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "step", "link", "day", name=op.f("pk_link_clicks")),
    )
    op.create_table(
        "outbox_daily",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=150), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "kind", "campaign", "step", "day", "status", name=op.f("pk_outbox_daily")
        ),
    )
    op.create_table(
        "sequence_stops",
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "received", "day", name=op.f("pk_sequence_stops")),
    )


def downgrade() -> None:
    op.drop_table("sequence_stops")
    op.drop_table("outbox_daily")
    op.drop_table("link_clicks")

"""Rows in flight found through their batch's claim (outbox_claims), not an index:
the outbox's index of rows ``sending`` or ``unknown`` becomes one of rows ``unknown``

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_claims",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=False),
        sa.Column("ids", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_outbox_claims"),
    )
    # Rows sending now (a service stopped mid-batch) get the claim they would have had.
    postgresql = op.get_bind().dialect.name == "postgresql"
    ids = "json_agg(id)::text" if postgresql else "json_group_array(id)"
    op.execute(
        "INSERT INTO outbox_claims (token, lease_until, ids, created_at)"
        f" SELECT COALESCE(worker, 'before-0008'), MAX(COALESCE(lease_until, updated_at)),"
        f" {ids}, MAX(updated_at) FROM outbox WHERE status = 'sending'"
        " GROUP BY COALESCE(worker, 'before-0008')"
    )
    op.execute(
        "UPDATE outbox SET worker = 'before-0008' WHERE status = 'sending' AND worker IS NULL"
    )
    op.drop_index("ix_outbox_in_flight", table_name="outbox")
    op.create_index(
        "ix_outbox_unknown",
        "outbox",
        ["id"],
        sqlite_where=sa.text("status = 'unknown'"),
        postgresql_where=sa.text("status = 'unknown'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unknown", table_name="outbox")
    op.create_index(
        "ix_outbox_in_flight",
        "outbox",
        ["status", "lease_until"],
        sqlite_where=sa.text("status IN ('sending', 'unknown')"),
        postgresql_where=sa.text("status IN ('sending', 'unknown')"),
    )
    op.drop_table("outbox_claims")

"""The outbox's partial indexes keyed on generated columns, not on ``status``, and
room in its pages on PostgreSQL: a row's "sent" mark becomes a HOT update there

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

On PostgreSQL, adding the stored columns rewrites the outbox once (an exclusive lock
for as long as that takes: stop the service first on a large outbox). On SQLite the
columns are virtual: only the new indexes are written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

QUEUED_DUE = "CASE WHEN status = 'queued' THEN due_at END"
UNKNOWN_SINCE = "CASE WHEN status = 'unknown' THEN updated_at END"


def upgrade() -> None:
    # Dropped first: on PostgreSQL the rewrite below would otherwise rebuild them.
    op.drop_index("ix_outbox_queued_due", table_name="outbox")
    op.drop_index("ix_outbox_unknown", table_name="outbox")
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # Set first: the rewrite below fills the pages to it.
        op.execute("ALTER TABLE outbox SET (fillfactor = 60)")
        op.execute(
            "ALTER TABLE outbox"
            f" ADD COLUMN queued_due TIMESTAMP WITHOUT TIME ZONE GENERATED ALWAYS AS ({QUEUED_DUE})"
            " STORED,"
            " ADD COLUMN unknown_since TIMESTAMP WITHOUT TIME ZONE"
            f" GENERATED ALWAYS AS ({UNKNOWN_SINCE}) STORED"
        )
    else:
        for name, expression in (("queued_due", QUEUED_DUE), ("unknown_since", UNKNOWN_SINCE)):
            op.execute(
                f"ALTER TABLE outbox ADD COLUMN {name} DATETIME"
                f" GENERATED ALWAYS AS ({expression}) VIRTUAL"
            )
    for name, columns, key in (
        ("ix_outbox_queue", ["queued_due", "id"], "queued_due"),
        ("ix_outbox_unknown", ["id"], "unknown_since"),
    ):
        where = sa.text(f"{key} IS NOT NULL")
        op.create_index(name, "outbox", columns, sqlite_where=where, postgresql_where=where)
    if postgresql:
        op.execute("ANALYZE outbox")  # statistics for the new columns, before the first take


def downgrade() -> None:
    op.drop_index("ix_outbox_queue", table_name="outbox")
    op.drop_index("ix_outbox_unknown", table_name="outbox")
    for name, columns, predicate in (
        ("ix_outbox_queued_due", ["due_at", "id"], "status = 'queued'"),
        ("ix_outbox_unknown", ["id"], "status = 'unknown'"),
    ):
        where = sa.text(predicate)
        op.create_index(name, "outbox", columns, sqlite_where=where, postgresql_where=where)
    for name in ("unknown_since", "queued_due"):
        op.execute(f"ALTER TABLE outbox DROP COLUMN {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE outbox RESET (fillfactor)")

"""The outbox's unique key names a step by a small integer (outbox_steps), not by its
campaign and step strings

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

Every (campaign, step) already in the outbox gets its id, and every row its step_id.
On PostgreSQL that rewrites the outbox once (an exclusive lock for as long as that
takes: stop the service first on a large outbox); SQLite copies it into a new table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# As 0009 defined them.
QUEUED_DUE = "CASE WHEN status = 'queued' THEN due_at END"
UNKNOWN_SINCE = "CASE WHEN status = 'unknown' THEN updated_at END"


# The outbox's columns as 0009 left them, generated ones aside.
_COLUMNS = (
    "id, subscriber_id, kind, campaign, step, due_at, expires_at, status, attempts,"
    " lease_until, worker, provider_message_id, error, created_at, updated_at, sent_at"
)
_STEP_ID = (
    "(SELECT s.id FROM outbox_steps s WHERE s.campaign = outbox.campaign AND s.step = outbox.step)"
)


def upgrade() -> None:
    op.create_table(
        "outbox_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=150), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_steps"),
        sa.UniqueConstraint("campaign", "step", name="uq_outbox_steps"),
    )
    op.execute(
        "INSERT INTO outbox_steps (campaign, step)"
        " SELECT DISTINCT campaign, step FROM outbox ORDER BY campaign, step"
    )
    if op.get_bind().dialect.name == "postgresql":
        # The old key goes first, so the rewrite does not keep it up to date.
        op.drop_constraint("uq_outbox_send", "outbox", type_="unique")
        op.add_column("outbox", sa.Column("step_id", sa.Integer(), nullable=True))
        op.execute(f"UPDATE outbox SET step_id = {_STEP_ID}")
        op.alter_column("outbox", "step_id", nullable=False)
        op.create_unique_constraint("uq_outbox_send", "outbox", ["subscriber_id", "step_id"])
        op.execute("ANALYZE outbox")
    else:
        _rebuild_sqlite(step_ids=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("uq_outbox_send", "outbox", type_="unique")
        op.drop_column("outbox", "step_id")
        op.create_unique_constraint(
            "uq_outbox_send", "outbox", ["subscriber_id", "campaign", "step"]
        )
    else:
        _rebuild_sqlite(step_ids=False)
    op.drop_table("outbox_steps")


def _rebuild_sqlite(*, step_ids: bool) -> None:
    """SQLite cannot drop a unique constraint: the outbox is copied into a new table.

    Written out by hand, not in batch mode: Alembic reads the generated columns that
    0009 added back wrongly from SQLite's stored DDL. env.py turns foreign keys off
    meanwhile, so dropping the old table cascades into nothing.
    """
    key = "subscriber_id, step_id" if step_ids else "subscriber_id, campaign, step"
    op.execute(
        f"""CREATE TABLE _outbox_new (
    id INTEGER NOT NULL,
    subscriber_id INTEGER,
    kind VARCHAR(16) NOT NULL,
    campaign VARCHAR(100) NOT NULL,
    step VARCHAR(150) NOT NULL,
    {"step_id INTEGER NOT NULL," if step_ids else ""}
    due_at DATETIME NOT NULL,
    expires_at DATETIME,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER DEFAULT 0 NOT NULL,
    lease_until DATETIME,
    worker VARCHAR(64),
    provider_message_id VARCHAR(200),
    error VARCHAR(500),
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    sent_at DATETIME,
    queued_due DATETIME GENERATED ALWAYS AS ({QUEUED_DUE}) VIRTUAL,
    unknown_since DATETIME GENERATED ALWAYS AS ({UNKNOWN_SINCE}) VIRTUAL,
    CONSTRAINT pk_outbox PRIMARY KEY (id),
    CONSTRAINT uq_outbox_send UNIQUE ({key})
)"""
    )
    if step_ids:
        op.execute(
            f"INSERT INTO _outbox_new ({_COLUMNS}, step_id)"
            f" SELECT {_COLUMNS}, {_STEP_ID} FROM outbox"
        )
    else:
        op.execute(f"INSERT INTO _outbox_new ({_COLUMNS}) SELECT {_COLUMNS} FROM outbox")
    op.execute("DROP TABLE outbox")
    op.execute("ALTER TABLE _outbox_new RENAME TO outbox")
    for name, columns, column in (
        ("ix_outbox_queue", ["queued_due", "id"], "queued_due"),
        ("ix_outbox_unknown", ["id"], "unknown_since"),
    ):
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "outbox", columns, sqlite_where=where)

"""outbox.subscriber_id without a foreign key: planning a newsletter checked it once per
row; erasing a subscriber clears their rows' id instead

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows whose subscriber is gone already hold NULL (the key's ON DELETE SET NULL).
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("fk_outbox_subscriber_id", type_="foreignkey")


def downgrade() -> None:
    # A row left pointing at an erased subscriber would fail the key: clear it first.
    op.execute(
        "UPDATE outbox SET subscriber_id = NULL WHERE subscriber_id IS NOT NULL"
        " AND subscriber_id NOT IN (SELECT id FROM subscribers)"
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_outbox_subscriber_id", "subscribers", ["subscriber_id"], ["id"], ondelete="SET NULL"
        )

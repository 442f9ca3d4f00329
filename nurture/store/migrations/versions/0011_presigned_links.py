"""Each subscriber's unsubscribe and preferences tokens, signed ahead of time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Three nullable columns: no table is rewritten. Housekeeping fills them after the
upgrade; until then dispatch signs every link as it sends, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("link_tokens", sa.String(length=140)),
    ("links_key", sa.String(length=16)),
    ("links_signed_at", sa.DateTime()),
)


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("subscribers", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)

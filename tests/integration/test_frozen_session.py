"""A process frozen inside a PostgreSQL transaction does not block the others for ever
(found by the chaos harness: a SIGSTOPped dispatcher held its row locks)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from nurture.store import database

pytestmark = pytest.mark.postgres


def test_sessions_end_when_idle_inside_a_transaction(postgres_schema_url: str) -> None:
    engine = database.make_engine(postgres_schema_url)
    with engine.connect() as conn:
        timeout = conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
        path = conn.execute(text("SHOW search_path")).scalar()
    engine.dispose()
    assert timeout == f"{database.IDLE_IN_TRANSACTION_MS // 60_000}min"
    assert "nurture_test_" in str(path)  # the URL's own options still apply

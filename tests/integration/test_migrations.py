"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from nurture.store import database
from nurture.store.schema import metadata


def test_sqlite_migration_matches_metadata(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    database.upgrade(url)
    engine = database.make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    uniques = inspect(engine).get_unique_constraints("outbox")
    assert any(set(u["column_names"]) == {"subscriber_id", "campaign", "step"} for u in uniques)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_postgres_migration_matches_metadata(postgres_schema_url: str) -> None:
    engine = database.make_engine(postgres_schema_url)
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    engine.dispose()

"""Alembic environment: runs the migrations against the URL nurture passes in."""

from __future__ import annotations

from alembic import context

from nurture.store.database import make_engine
from nurture.store.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "nurture.store.database.upgrade passes the URL"

engine = make_engine(url)
sqlite = engine.dialect.name == "sqlite"
with engine.connect() as connection:
    # SQLite changes a table's constraints by copying it and dropping the old one (batch
    # mode); with foreign keys on, that DROP would first delete its rows and cascade into
    # every table that refers to them. Off for the migration (outside any transaction:
    # the pragma does nothing inside one), and checked before the commit.
    driver = connection.connection.driver_connection if sqlite else None
    if driver is not None:
        driver.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    if driver is not None:
        driver.execute("PRAGMA foreign_keys=ON")
engine.dispose()

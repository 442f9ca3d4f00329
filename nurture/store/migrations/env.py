"""Alembic environment: runs the migrations against the URL nurture passes in."""

from __future__ import annotations

from alembic import context

from nurture.store.database import make_engine
from nurture.store.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "nurture.store.database.upgrade passes the URL"

engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()

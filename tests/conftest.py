"""Shared fixtures: settings, and a database for each storage backend.

``database_url`` is parametrised over SQLite and PostgreSQL, so every test that asks
for it (or for ``engine``) runs on both. PostgreSQL tests use a schema of their own per
session, so parallel runs on one server never meet; with ``CI=true`` an unreachable
PostgreSQL is a failure, elsewhere a skip with the reason printed.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from nurture.settings import Settings, load_settings
from nurture.store import database
from nurture.store.schema import metadata

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "NURTURE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_reason() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no PostgreSQL here"
        return f"PostgreSQL unreachable at {POSTGRES_URL}: {type(exc).__name__}"
    return None


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    reason = _postgres_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
        print(reason)
        pytest.skip(reason)
    schema = f"nurture_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    database.upgrade(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def blank_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database with no migration applied, on each backend (migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    request.getfixturevalue("postgres_schema_url")  # fails or skips as PostgreSQL tests do
    schema = f"nurture_blank_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database built once through the Alembic migrations, as production is;
    each test gets a copy (a copy costs far less than running the migrations)."""
    path = tmp_path_factory.mktemp("template") / "nurture.db"
    database.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "nurture.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_schema_url")
    engine = database.make_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def sqlite_engine(tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    """SQLite only, for tests whose subject is not storage (one backend is enough)."""
    path = tmp_path / "sqlite-only.db"
    shutil.copyfile(sqlite_template, path)
    engine = database.make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = database.make_engine(database_url)
    yield engine
    engine.dispose()


# Debian's chromium, started as the machine's notes advise: without the background
# networking flags it keeps trying (and failing) to reach Google's hosts.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless chromium through Playwright; with ``CI=true`` a missing browser fails."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: browser tests must run)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Development-like settings isolated in a temporary folder."""
    return load_settings(
        env="test",
        var_dir=tmp_path / "var",
        campaigns_dir=ROOT / "campaigns",
        templates_dir=ROOT / "templates",
        secret_keys="test-key-newest,test-key-older",
        base_url="https://practice.test",
        from_email="hello@practice.test",
        postal_address="Example Practice, 1 Test Street, Testville",
        _env_file=None,
    )

"""The Alembic migrations build exactly the schema the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from sapari_server.db import models  # noqa: F401 - registers the tables
from sapari_server.db.base import Base
from sapari_server.db.engine import sync_url
from sapari_server.db.migrate import upgrade

from .conftest import need_service


def _diff(url: str) -> list:
    upgrade(url)
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.services
def test_postgres_schema_matches_models() -> None:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"sapari_mig_{secrets.token_hex(4)}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        assert _diff(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}") == []
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

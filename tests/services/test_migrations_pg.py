"""``sapari-nb db upgrade`` on PostgreSQL: an empty database, and one populated at every older
revision, reach the newest schema with every row kept.

The populated databases are filled generically from the tables as they were at that revision
(reflected, in foreign-key order), so a new migration is covered without editing this test.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.orm import Session

from sapari_server.db import models
from sapari_server.db.base import Base
from sapari_server.db.engine import sync_url
from sapari_server.db.migrate import alembic_config

from ..conftest import need_service
from .fleet import ROOT, cli, pg_database, service_env

pytestmark = pytest.mark.services
ROWS = 3


def _revisions() -> list[str]:
    """Oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _db_upgrade(url: str) -> str:
    r = subprocess.run(cli("db", "upgrade"), cwd=ROOT, env=service_env(database_url=url),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _value(table: Table, col: Any, i: int) -> Any:
    t = col.type
    if isinstance(t, JSON) or type(t).__name__ in ("JSONB", "JSON"):
        return {"n": i, "note": f"{table.name} row {i}"}
    if isinstance(t, Boolean):
        return i % 2 == 1
    if isinstance(t, DateTime):
        return datetime(2026, 1, 1 + i, 12, 0, tzinfo=UTC)
    if isinstance(t, Integer):
        return 1000 + i
    if isinstance(t, Float | Numeric):
        return 1.5 + i
    if isinstance(t, LargeBinary):
        return bytes([i]) * 4
    if isinstance(t, String):
        value = f"{table.name[:8]}-{col.name[:12]}-{i}"
        return value[: t.length] if t.length else value
    raise AssertionError(f"no test value for {table.name}.{col.name} of type {t!r}")


def _populate(conn: Connection) -> dict[str, dict[Any, dict[str, Any]]]:
    """ROWS rows in every table, every column filled; returns table -> pk -> row."""
    meta = MetaData()
    meta.reflect(conn)
    written: dict[str, dict[Any, dict[str, Any]]] = {}
    for table in meta.sorted_tables:
        if table.name == "alembic_version":
            continue
        pk = [c.name for c in table.primary_key.columns]
        assert len(pk) == 1, f"{table.name}: composite keys are not expected"
        written[table.name] = {}
        for i in range(ROWS):
            row: dict[str, Any] = {}
            for col in table.columns:
                if col.server_default is not None and col.primary_key:
                    continue  # a sequence's id
                fks = list(col.foreign_keys)
                if fks:
                    target = fks[0].column
                    rows = list(written.get(target.table.name, {}).values())
                    row[col.name] = rows[i % len(rows)][target.name] if rows else None
                else:
                    row[col.name] = _value(table, col, i)
            made = conn.execute(table.insert().values(**row).returning(*table.columns)).one()
            written[table.name][getattr(made, pk[0])] = dict(made._mapping)
    return written


def _check_kept(conn: Connection, written: dict[str, dict[Any, dict[str, Any]]]) -> None:
    meta = MetaData()
    meta.reflect(conn)
    for name, rows in written.items():
        table = meta.tables[name]
        pk = table.primary_key.columns.values()[0]
        now = {getattr(r, pk.name): dict(r._mapping)
               for r in conn.execute(select(table))}
        assert set(now) == set(rows), f"{name}: rows lost or added by the migration"
        for key, before in rows.items():
            after = {k: now[key][k] for k in before}
            assert after == before, f"{name} {key}: values changed by the migration"


def _assert_schema_is_models(url: str) -> None:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _pg() -> None:
    need_service("PostgreSQL", "127.0.0.1", 5432)


def test_db_upgrade_on_an_empty_database() -> None:
    head = _revisions()[-1]
    with pg_database("sapari_mig_empty") as url:
        assert _db_upgrade(url).endswith(f"upgraded from empty to {head}")
        _assert_schema_is_models(url)
        # Running it again (every deploy does) changes nothing and says so.
        assert _db_upgrade(url).endswith(f"is at the newest schema ({head})")


def test_db_upgrades_at_once_take_turns() -> None:
    """Deploy hooks on several machines may run `db upgrade` together: one upgrades, the
    others wait for it and find the newest schema (without the lock two of three failed on
    duplicate DDL here)."""
    head = _revisions()[-1]
    with pg_database("sapari_mig_race") as url:
        procs = [subprocess.Popen(cli("db", "upgrade"), cwd=ROOT,
                                  env=service_env(database_url=url), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in outs]
        said = [o.strip() for o, _ in outs]
        assert sum("upgraded from empty to" in o for o, _ in outs) == 1, said
        assert sum(f"is at the newest schema ({head})" in o for o, _ in outs) == 2, said
        _assert_schema_is_models(url)


@pytest.mark.parametrize("base", _revisions()[:-1])
def test_db_upgrade_keeps_every_row(base: str) -> None:
    from alembic import command

    head = _revisions()[-1]
    with pg_database("sapari_mig_full") as url:
        command.upgrade(alembic_config(url), base)
        engine = create_engine(sync_url(url))
        try:
            with engine.begin() as conn:
                written = _populate(conn)
            assert _db_upgrade(url).endswith(f"upgraded from {base} to {head}")
            with engine.begin() as conn:
                _check_kept(conn, written)
            _assert_schema_is_models(url)
            with Session(engine) as s, s.begin():
                # The application reads the old rows through its models ...
                for mapper in Base.registry.mappers:
                    cls = mapper.class_
                    if cls.__tablename__ in written:
                        assert len(s.scalars(select(cls)).all()) == ROWS, cls.__name__
                # ... and writes new ones; event ids run past 32 bits (0002 widened them).
                user_id = next(iter(written["users"]))
                s.execute(text("SELECT setval('events_id_seq', 2147483647)"))
                ev = models.Event(user_id=user_id, type="ClipReady", payload={})
                s.add(ev)
                s.flush()
                assert ev.id == 2**31
                assert s.scalar(select(func.count()).select_from(models.Event)) == \
                    len(written.get("events", {})) + 1
        finally:
            engine.dispose()


def test_db_upgrade_names_an_unreachable_database() -> None:
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:5432/sapari_no_such_db"
    r = subprocess.run(cli("db", "upgrade"), cwd=ROOT, env=service_env(database_url=url),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "cannot upgrade the database" in r.stderr and "sapari_no_such_db" in r.stderr
    assert "hunter2" not in r.stderr and "Traceback" not in r.stderr

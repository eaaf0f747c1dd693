"""Engines and sessions: async for the API, plain (sync) for workers, one URL for both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

_SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "sqlite+pysqlite": "sqlite+aiosqlite",
                  "postgresql": "postgresql+psycopg"}


def sync_url(url: str) -> str:
    u = make_url(url)
    return u.set(drivername=_SYNC_DRIVERS.get(u.drivername, u.drivername)).render_as_string(
        hide_password=False
    )


def async_url(url: str) -> str:
    u = make_url(url)
    return u.set(drivername=_ASYNC_DRIVERS.get(u.drivername, u.drivername)).render_as_string(
        hide_password=False
    )


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the API read while workers (threads or processes) write; busy_timeout
    # makes writers wait for each other instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _pre_ping(url: str) -> bool:
    # A pre-ping guards against a server that dropped an idle connection; a SQLite file
    # cannot, and the ping would cost a round trip on every request.
    return make_url(url).get_backend_name() != "sqlite"


def make_async_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(async_url(url), pool_pre_ping=_pre_ping(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def make_sync_engine(url: str) -> Engine:
    engine = create_engine(sync_url(url), pool_pre_ping=_pre_ping(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def async_sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session

"""The same flow on the real services: PostgreSQL for metadata, Redis for the Huey queue."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sapari_nb import Client
from sapari_nb.flow import edit_file
from sapari_server.events.log import record_event
from sapari_testkit.generate import TalkTruth

from ..conftest import need_service, start_server

pytestmark = pytest.mark.services
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture
def pg_database() -> Iterator[str]:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"sapari_test_{secrets.token_hex(4)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG}/{name}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    need_service("Redis", "127.0.0.1", 6379)
    import redis

    url = "redis://127.0.0.1:6379/13"
    r = redis.Redis.from_url(url)
    r.flushdb()
    yield url
    r.flushdb()


def test_flow_on_postgres_and_redis(tmp_path: Path, pg_database: str, redis_url: str,
                                    talk: tuple[Path, TalkTruth]) -> None:
    srv = start_server(tmp_path / "data", database_url=pg_database, queue_url=redis_url)
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            result = edit_file(client, talk[0], tmp_path / "out.mp4")
            assert len(result.cuts) == sum(1 for p in talk[1].pauses if p[1] - p[0] >= 0.5)
            assert result.output_duration < result.input_duration - 3
        import psycopg

        with psycopg.connect(pg_database.replace("+psycopg", "")) as conn:
            kinds = dict(conn.execute(
                "select kind, count(*) from jobs where status = 'succeeded' group by kind"
            ).fetchall())
            assert kinds == {"process_clip": 1, "analyze_project": 1, "render_export": 1}
            version = conn.execute("select version_num from alembic_version").fetchone()
            from alembic.script import ScriptDirectory

            from sapari_server.db.migrate import alembic_config

            head = ScriptDirectory.from_config(alembic_config(pg_database)).get_current_head()
            assert version == (head,)
    finally:
        srv.stop()


def test_event_ids_commit_in_order_on_postgres(pg_database: str) -> None:
    """A later event id can never become visible before an earlier one (SSE would skip it)."""
    import threading
    import time

    from sapari_server.db.engine import make_sync_engine, sync_sessions
    from sapari_server.db.migrate import upgrade
    from sapari_server.db.models import Event, User

    upgrade(pg_database)
    engine = make_sync_engine(pg_database)
    sessions = sync_sessions(engine)
    with sessions() as s, s.begin():
        s.add(User(id="usr_x", name="x"))
    a = sessions()
    a.begin()
    first = Event(user_id="usr_x", type="EditsChanged", payload={})
    a.add(first)
    a.flush()  # holds the event-order lock until commit
    done = threading.Event()

    def second() -> None:
        with sessions() as b, b.begin():
            b.add(Event(user_id="usr_x", type="EditsChanged", payload={}))
        done.set()

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.5)
    assert not done.is_set(), "a second event committed while an earlier one was open"
    a.commit()
    a.close()
    t.join(10)
    assert done.is_set()
    with sessions() as s:
        ids = [e.id for e in s.query(Event).order_by(Event.id)]
    assert ids[0] == first.id and len(ids) == 2
    engine.dispose()


def test_event_ids_past_32_bits_on_postgres(tmp_path: Path, pg_database: str) -> None:
    """events.id was a 32-bit SERIAL on PostgreSQL: past 2^31 inserts failed and streams after
    such an id aborted. Now the column and its sequence are 64-bit."""
    import psycopg

    srv = start_server(tmp_path / "data", database_url=pg_database, embedded_workers=0)
    try:
        with psycopg.connect(pg_database.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("SELECT setval('events_id_seq', %s)", (2**33,))
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("big ids")
            rt = srv.app.state.runtime
            with rt.sync_session() as s, s.begin():
                record_event(s, user_id=client.me().id, project_id=project.id,
                             type="EditsChanged", payload={"edit_ids": []})
            rt.bus.notify(client.me().id)
            got = next(iter(client.events(project_id=project.id, after=2**33 - 1)))
            assert got.id > 2**33 and got.type == "EditsChanged"
            assert client.cursor() > 2**31
    finally:
        srv.stop()

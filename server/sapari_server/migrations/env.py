"""Alembic environment: runs on the sync engine of whatever URL the caller configured."""

from __future__ import annotations

from alembic import context

from sapari_server.db.engine import make_sync_engine
from sapari_server.db.models import Base

config = context.config


def run() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by sapari_server.db.migrate"
    engine = make_sync_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()

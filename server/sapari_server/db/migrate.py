"""Bring a database to the newest schema with Alembic (the embedded server does it on start)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from .engine import sync_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_lock = threading.Lock()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    with _lock:
        command.upgrade(alembic_config(url), "head")

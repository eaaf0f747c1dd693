"""Pick the Huey flavour from ``SAPARI_QUEUE_URL``; tasks are bound by ``queue.tasks``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from huey import Huey, PriorityRedisHuey, SqliteHuey

# Huey runs higher numbers first: a person waiting in a notebook beats a papermill batch.
INTERACTIVE = 10
BATCH = 0
PRIORITIES = {"interactive": INTERACTIVE, "batch": BATCH}


def make_huey(queue_url: str, name: str = "sapari") -> Huey:
    url = urlparse(queue_url)
    if url.scheme == "sqlite":
        path = Path(url.netloc + url.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), utc=True)
    if url.scheme in ("redis", "rediss"):
        return PriorityRedisHuey(name, url=queue_url, utc=True)
    raise ValueError(
        f"SAPARI_QUEUE_URL scheme {url.scheme!r} is not supported; use sqlite:///path "
        "(embedded default) or redis://host:6379/0"
    )

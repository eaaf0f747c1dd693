"""Pick the Huey flavour from ``SAPARI_QUEUE_URL``: one Huey instance per queue.

There are two queues, ``heavy`` (decoding and encoding video: renders, proxies, downloads)
and ``light`` (work that ends quickly or mostly waits: analysis bookkeeping, email, the
periodic sweeps), so a long render never starves a quick job. Every backend gets both, with
the same API; which kind runs where is ``queue.tasks.QUEUE_OF``. Tasks are bound by
``queue.tasks``.

- ``sqlite:///path``: the embedded default; both queues live in one file (Huey keys its
  rows by the instance's name).
- ``redis://host:6379/0``: ``PriorityRedisHuey`` (one sorted set per queue).
- ``amqp://user:pass@host:5672/vhost?results=redis://host:6379/0``: RabbitMQ
  ``x-max-priority`` queues, acknowledged only after the task finished; results, schedule
  and locks in the Redis named by ``results=`` (see ``queue.rabbit``).

Queue names are ``<SAPARI_QUEUE_NAME>_heavy`` and ``<SAPARI_QUEUE_NAME>_light``: deployments
(or tests) sharing one broker keep apart by name.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from huey import Huey, PriorityRedisHuey, SqliteHuey

# Huey runs higher numbers first: a person waiting in a notebook beats a papermill batch.
INTERACTIVE = 10
BATCH = 0
PRIORITIES = {"interactive": INTERACTIVE, "batch": BATCH}

HEAVY = "heavy"
LIGHT = "light"
QUEUES = (HEAVY, LIGHT)


def make_huey(queue_url: str, name: str = "sapari") -> Huey:
    """One Huey instance called ``name`` on the backend ``queue_url`` names."""
    url = urlparse(queue_url)
    if url.scheme == "sqlite":
        path = Path(url.netloc + url.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), utc=True)
    if url.scheme in ("redis", "rediss"):
        return PriorityRedisHuey(name, url=queue_url, utc=True)
    if url.scheme in ("amqp", "amqps"):
        from .rabbit import RabbitHuey, split_amqp_url

        amqp_url, options = split_amqp_url(queue_url)
        return RabbitHuey(name, amqp_url=amqp_url, utc=True, **options)
    raise ValueError(
        f"SAPARI_QUEUE_URL scheme {url.scheme!r} is not supported; use sqlite:///path "
        "(embedded default), redis://host:6379/0 or "
        "amqp://user:pass@host:5672/%2F?results=redis://host:6379/0"
    )


def make_queues(queue_url: str, name: str = "sapari") -> dict[str, Huey]:
    """The heavy and the light queue on one backend."""
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"SAPARI_QUEUE_NAME {name!r} must be letters, digits and '_' "
                         "(it names queues and Redis keys)")
    return {queue: make_huey(queue_url, f"{name}_{queue}") for queue in QUEUES}

"""Running Huey consumers: as threads inside the server process, or as ``sapari-nb worker``."""

from __future__ import annotations

import logging

from huey.consumer import Consumer

from ..runtime import Runtime
from .jobs import clean_scratch
from .tasks import bind_tasks, requeue_orphans

log = logging.getLogger(__name__)


class ThreadConsumer(Consumer):
    """A consumer that can start off the main thread: signals belong to the host process."""

    def _set_signal_handlers(self) -> None:
        pass


def _prepare(rt: Runtime) -> None:
    bind_tasks(rt)
    # A killed render or processing run leaves its scratch folder: remove the stale ones.
    clean_scratch(rt)
    requeue_orphans(rt)


def start_embedded_consumer(rt: Runtime, workers: int) -> ThreadConsumer:
    _prepare(rt)
    consumer = ThreadConsumer(rt.huey, workers=workers, worker_type="thread",
                              periodic=True, check_worker_health=True, scheduler_interval=1)
    consumer.start()
    return consumer


def run_worker(rt: Runtime, workers: int) -> None:
    """Blocking consumer for a separate worker process (handles SIGINT/SIGTERM itself)."""
    _prepare(rt)
    consumer = rt.huey.create_consumer(workers=workers, worker_type="thread", periodic=True,
                                       scheduler_interval=1)
    consumer.run()

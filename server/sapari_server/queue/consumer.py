"""Running Huey consumers: as threads inside the server process, or as ``sapari-nb worker``.

One consumer per queue served (heavy, light or both), each with its own worker threads, so
a long render on the heavy queue never holds up a quick light job. The periodic sweeps run
with the consumer of ``tasks.PERIODIC_QUEUE``.
"""

from __future__ import annotations

import logging
from typing import Any

from huey.consumer import Consumer

from ..runtime import Runtime
from .factory import QUEUES
from .jobs import clean_scratch
from .tasks import PERIODIC_QUEUE, bind_tasks, requeue_orphans

log = logging.getLogger(__name__)
SERVE_CHOICES = ("all", *QUEUES)


class ThreadConsumer(Consumer):
    """A consumer that can start off the main thread: signals belong to the host process."""

    def _set_signal_handlers(self) -> None:
        pass


class ConsumerGroup:
    """Consumers of several queues started and stopped together (the embedded server's)."""

    def __init__(self, consumers: list[Consumer]) -> None:
        self.consumers = consumers

    def start(self) -> ConsumerGroup:
        for c in self.consumers:
            c.start()
        return self

    def stop(self, graceful: bool = False) -> None:
        for c in self.consumers:  # all stop taking work first, then wait for each
            c.stop_flag.set()
        for c in self.consumers:
            c.stop(graceful=graceful)


class MainConsumer(Consumer):
    """``sapari-nb worker``: one consumer owns the signals and stops the others with it."""

    def __init__(self, huey: Any, others: list[Consumer], **kwargs: Any) -> None:
        super().__init__(huey, **kwargs)
        self.others = others

    def start(self) -> None:
        for c in self.others:
            c.start()
        super().start()

    def stop(self, graceful: bool = False) -> None:
        for c in self.others:
            c.stop_flag.set()
        super().stop(graceful=graceful)
        for c in self.others:
            c.stop(graceful=graceful)

    def check_worker_health(self) -> bool:
        healthy = all([c.check_worker_health() for c in self.others])
        return super().check_worker_health() and healthy


def serving(queue: str) -> tuple[str, ...]:
    if queue not in SERVE_CHOICES:
        raise ValueError(f"unknown queue {queue!r}: serve one of {', '.join(SERVE_CHOICES)}")
    return QUEUES if queue == "all" else (queue,)


def _options(rt: Runtime, name: str, workers: int) -> dict[str, Any]:
    return {"workers": workers, "worker_type": "thread", "periodic": name == PERIODIC_QUEUE,
            "check_worker_health": True, "scheduler_interval": 1}


def _prepare(rt: Runtime) -> None:
    bind_tasks(rt)
    # A killed render or processing run leaves its scratch folder: remove the stale ones.
    clean_scratch(rt)
    requeue_orphans(rt)


def start_embedded_consumer(rt: Runtime, workers: int, queue: str = "all") -> ConsumerGroup:
    """Consumer threads in this process: ``workers`` threads for each queue served."""
    names = serving(queue)
    _prepare(rt)
    return ConsumerGroup([ThreadConsumer(rt.queues[n], **_options(rt, n, workers))
                          for n in names]).start()


def run_worker(rt: Runtime, workers: int, queue: str = "all") -> None:
    """Blocking consumer for a separate worker process (handles SIGINT/SIGTERM itself).

    SIGINT: finish the running tasks, then exit. SIGTERM: exit now; the running tasks'
    messages go back to the queue (RabbitMQ) or their jobs are recovered when stale.
    """
    names = serving(queue)
    _prepare(rt)
    others = [ThreadConsumer(rt.queues[n], **_options(rt, n, workers)) for n in names[1:]]
    main = MainConsumer(rt.queues[names[0]], others, **_options(rt, names[0], workers))
    main.run()

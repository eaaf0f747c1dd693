"""Creating a Job row (inside the request's transaction) and enqueueing it (after commit)."""

from __future__ import annotations

import logging
from typing import Any

import anyio

from ..db.base import new_id
from ..db.models import Job
from ..runtime import Runtime
from .factory import PRIORITIES
from .tasks import enqueue

log = logging.getLogger(__name__)


def new_job(session: Any, *, user_id: str, kind: str, target_id: str,
            project_id: str | None, priority: str = "interactive") -> Job:
    # The id is set now, not at flush, so callers can store it on their row at once.
    job = Job(id=new_id("job"), user_id=user_id, kind=kind, target_id=target_id, project_id=project_id,
              priority=PRIORITIES[priority], status="queued")
    session.add(job)
    return job


async def submit(rt: Runtime, job: Job) -> None:
    # Enqueue only after the Job row committed, so a worker always finds it. If this
    # process dies in between, recovery re-enqueues the queued row.
    try:
        await anyio.to_thread.run_sync(enqueue, rt, job.kind, job.id, job.priority)
    except Exception:
        # The broker is unreachable. The job is saved (queued): the request succeeds and
        # recovery (queue.tasks.requeue_orphans) enqueues it once the queue is back.
        log.exception("could not enqueue job %s (%s); it stays queued for recovery",
                      job.id, job.kind)

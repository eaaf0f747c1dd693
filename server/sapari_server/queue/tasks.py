"""The Huey tasks, bound to one runtime: process_clip, analyze_project, render_export.

Each task only carries a Job id; the Job row holds the state, so a retried or
re-enqueued task finds its work in the database.

Tasks are bound at the entry points (the app's start, ``run_worker``, the embedded
consumer), not when a Runtime is built: importing the runtime must not pull in every
pipeline (they import ``queue.jobs``, which needs the runtime's type).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from huey import crontab

from .factory import BATCH
from .jobs import FailHook, Handler, clean_scratch, orphaned_jobs, run_job

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)


def handlers() -> dict[str, tuple[Handler, FailHook]]:
    from ..pipelines.analyze import analyze_failed, analyze_project
    from ..pipelines.process_clip import process_clip, process_clip_failed
    from ..pipelines.render_export import export_failed, render_export

    return {
        "process_clip": (process_clip, process_clip_failed),
        "analyze_project": (analyze_project, analyze_failed),
        "render_export": (render_export, export_failed),
    }


def fail_hook(kind: str) -> FailHook:
    """How a job of this kind marks its target failed (used by cancel)."""
    return handlers()[kind][1]


def bind_tasks(rt: Runtime) -> dict[str, Any]:
    """Register the job tasks and periodic tasks on ``rt.huey`` once; returns ``rt.tasks``."""
    if rt.tasks:
        return rt.tasks
    tasks: dict[str, Any] = {}
    for kind, (handler, on_fail) in handlers().items():
        def body(job_id: str, _h: Handler = handler, _f: FailHook = on_fail) -> None:
            run_job(rt, job_id, _h, _f)

        body.__name__ = kind
        tasks[kind] = rt.huey.task(name=kind)(body)

    @rt.huey.periodic_task(crontab(minute="*"), name="recover_jobs", priority=BATCH)
    def recover_jobs() -> None:
        requeue_orphans(rt)
        clean_scratch(rt)

    @rt.huey.periodic_task(crontab(minute="0"), name="storage_lifecycle", priority=BATCH)
    def storage_lifecycle() -> None:
        # Purges the objects of soft-deleted rows past retention and frees their quota.
        try:
            from ..lifecycle.gc import collect

            collect(rt)
        except Exception:  # a failed sweep is retried next hour; it must not kill a worker
            log.exception("the storage lifecycle sweep failed")

    tasks["recover_jobs"] = recover_jobs
    tasks["storage_lifecycle"] = storage_lifecycle
    rt.tasks = tasks
    return tasks


def enqueue(rt: Runtime, kind: str, job_id: str, priority: int) -> None:
    tasks = rt.tasks or bind_tasks(rt)
    rt.huey.enqueue(tasks[kind].s(job_id, priority=priority))


def requeue_orphans(rt: Runtime, older_than: float | None = None) -> int:
    """Put back on the queue every job whose worker died or whose enqueue was lost."""
    jobs = orphaned_jobs(rt, rt.settings.job_stale_after if older_than is None else older_than)
    for job in jobs:
        log.warning("re-queueing orphaned job %s (%s, %s)", job.id, job.kind, job.status)
        enqueue(rt, job.kind, job.id, job.priority)
    return len(jobs)

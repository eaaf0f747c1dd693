"""The Huey tasks, bound to one runtime: process_clip, analyze_project, render_export.

Each task only carries a Job id; the Job row holds the state, so a retried or
re-enqueued task finds its work in the database.

A new job kind is one line in ``handlers()`` and one in ``QUEUE_OF`` (which queue runs it).

Tasks are bound at the entry points (the app's start, ``run_worker``, the embedded
consumer), not when a Runtime is built: importing the runtime must not pull in every
pipeline (they import ``queue.jobs``, which needs the runtime's type).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from huey import crontab

from .factory import BATCH, HEAVY, LIGHT
from .jobs import FailHook, Handler, clean_scratch, run_job, stale_in, take_orphans

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)


def handlers() -> dict[str, tuple[Handler, FailHook]]:
    from ..notify import export_mail as mail
    from ..pipelines.analyze import analyze_failed, analyze_project
    from ..pipelines.asset_edit import asset_edit, asset_edit_failed
    from ..pipelines.import_url import import_failed, import_url
    from ..pipelines.process_clip import process_clip, process_clip_failed
    from ..pipelines.render_export import export_failed, render_export

    return {
        "process_clip": (process_clip, process_clip_failed),
        "analyze_project": (analyze_project, analyze_failed),
        # Mail (to users who opted in) is queued after the export's outcome commits.
        "render_export": (mail.with_export_mail(render_export),
                          mail.with_failure_mail(export_failed)),
        "import_url": (import_url, import_failed),
        "asset_edit": (asset_edit, asset_edit_failed),
        "send_email": (mail.send_email, mail.send_email_failed),
    }


# Which queue runs each job kind. Heavy: decoding and encoding video (renders, the proxy
# and thumbnails of process_clip, downloads, asset edits). Light: work that ends quickly or
# mostly waits (analysis bookkeeping and its API calls, email). A worker per queue keeps a
# long render from starving a quick job.
QUEUE_OF: dict[str, str] = {
    "process_clip": HEAVY,
    "render_export": HEAVY,
    "analyze_project": LIGHT,
    "import_url": HEAVY,
    "asset_edit": HEAVY,
    "send_email": LIGHT,
}
# The periodic sweeps (recovery, storage lifecycle) run on this queue.
PERIODIC_QUEUE = LIGHT


def queue_of(kind: str) -> str:
    try:
        return QUEUE_OF[kind]
    except KeyError:
        raise LookupError(f"job kind {kind!r} has no queue: add it to QUEUE_OF in "
                          "sapari_server/queue/tasks.py (heavy or light)") from None


def fail_hook(kind: str) -> FailHook:
    """How a job of this kind marks its target failed (used by cancel)."""
    return handlers()[kind][1]


def bind_tasks(rt: Runtime) -> dict[str, Any]:
    """Register the job tasks (each on its queue) and the periodic tasks once; ``rt.tasks``."""
    if rt.tasks:
        return rt.tasks
    tasks: dict[str, Any] = {}
    for kind, (handler, on_fail) in handlers().items():
        huey = rt.queues[queue_of(kind)]

        def body(job_id: str, recheck: bool = False, _k: str = kind, _h: Handler = handler,
                 _f: FailHook = on_fail) -> None:
            if run_job(rt, job_id, _h, _f) or recheck:
                return
            # Running elsewhere. A redelivered message means its worker may just have died
            # (its heartbeat is not stale yet): look again once it would be, and take the
            # job over then if nobody kept it alive. Once only: a live worker keeps it.
            wait = stale_in(rt, job_id)
            if wait is not None:
                tasks[_k].schedule(args=(job_id,), kwargs={"recheck": True},
                                   delay=wait + 0.5, priority=_priority(rt, job_id))

        body.__name__ = kind
        tasks[kind] = huey.task(name=kind)(body)

    periodic = rt.queues[PERIODIC_QUEUE]

    @periodic.periodic_task(crontab(minute="*"), name="recover_jobs", priority=BATCH)
    def recover_jobs() -> None:
        requeue_orphans(rt)
        clean_scratch(rt)

    @periodic.periodic_task(crontab(minute="0"), name="storage_lifecycle", priority=BATCH)
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


def _priority(rt: Runtime, job_id: str) -> int:
    from ..db.models import Job

    with rt.sync_session() as s:
        job = s.get(Job, job_id)
        return job.priority if job is not None else BATCH


def enqueue(rt: Runtime, kind: str, job_id: str, priority: int) -> None:
    """The one way work reaches a queue: the job kind picks heavy or light."""
    tasks = rt.tasks or bind_tasks(rt)
    rt.queues[queue_of(kind)].enqueue(tasks[kind].s(job_id, priority=priority))


def requeue_orphans(rt: Runtime, older_than: float | None = None) -> int:
    """Put back on the queue every job whose worker died or whose enqueue was lost.

    Running jobs count as orphaned once their heartbeat is stale; queued ones only after
    ``older_than`` (default: ten stale periods, at least 5 minutes): in a durable queue a
    job waiting behind a backlog is not lost, and each re-queue is one more message.
    """
    if older_than is None:
        older_than = max(10 * rt.settings.job_stale_after, 300.0)
    jobs = take_orphans(rt, older_than)
    for job in jobs:
        log.warning("re-queueing orphaned job %s (%s, %s)", job.id, job.kind, job.status)
        enqueue(rt, job.kind, job.id, job.priority)
    return len(jobs)

"""The life of a Job row: claimed, kept alive by a heartbeat, progress, success or a readable failure.

Claiming is one conditional UPDATE, so a job enqueued twice (by recovery, say) runs once,
and a job whose worker died (stale heartbeat) can be claimed again: nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from ..db.base import utcnow
from ..db.models import Job
from ..events.log import record_event
from ..media.errors import MediaError

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)


class JobFailure(Exception):
    """A failure whose message is fit to show the user (bad input, missing clip, ...)."""


@dataclass
class JobContext:
    rt: Runtime
    job_id: str
    kind: str
    target_id: str
    user_id: str
    project_id: str | None
    _last_report: float = 0.0
    _last_fraction: float = -1.0

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress; throttled so a fast loop does not flood the log with events."""
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_report < 0.25 and fraction - self._last_fraction < 0.1:
            return
        self._last_report, self._last_fraction = now, fraction
        with self.rt.sync_session() as s, s.begin():
            s.execute(
                update(Job).where(Job.id == self.job_id)
                .values(progress=fraction, message=message, heartbeat_at=utcnow())
            )
            record_event(
                s, user_id=self.user_id, project_id=self.project_id, type="JobProgress",
                payload={"job_id": self.job_id, "kind": self.kind, "target_id": self.target_id,
                         "progress": round(fraction, 4), "message": message},
            )
        self.rt.bus.notify(self.user_id)


def claim(rt: Runtime, job_id: str) -> Job | None:
    stale = utcnow() - timedelta(seconds=rt.settings.job_stale_after)
    with rt.sync_session() as s, s.begin():
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.is_deleted.is_(False))
            .where(or_(Job.status == "queued",
                       (Job.status == "running") & (Job.heartbeat_at < stale)))
            .values(status="running", attempts=Job.attempts + 1, heartbeat_at=utcnow(),
                    started_at=utcnow(), error=None)
        )
        if res.rowcount != 1:
            return None
        return s.get(Job, job_id)


class Heartbeat:
    """Keeps ``heartbeat_at`` fresh while a step runs for long without reporting progress."""

    def __init__(self, rt: Runtime, job_id: str) -> None:
        self.rt, self.job_id = rt, job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def _run(self) -> None:
        interval = max(self.rt.settings.job_stale_after / 4, 0.5)
        while not self._stop.wait(interval):
            try:
                with self.rt.sync_session() as s, s.begin():
                    s.execute(update(Job).where(Job.id == self.job_id)
                              .values(heartbeat_at=utcnow()))
            except Exception:  # a missed beat is not fatal; the next one may succeed
                log.warning("heartbeat for %s failed", self.job_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


Handler = Callable[[JobContext], dict[str, Any] | None]
# Called inside the failing job's transaction to mark its target failed and add its event.
FailHook = Callable[[Any, JobContext, str], None]


def fail_target(model: Any, event_type: str, id_key: str) -> FailHook:
    """The usual FailHook: the job's target row becomes ``failed`` with the reason, plus an event."""

    def hook(s: Any, ctx: JobContext, reason: str) -> None:
        row = s.get(model, ctx.target_id)
        if row is not None:
            row.status = "failed"
            row.error = reason
        record_event(s, user_id=ctx.user_id, project_id=ctx.project_id, type=event_type,
                     payload={id_key: ctx.target_id, "job_id": ctx.job_id, "error": reason})

    return hook


def run_job(rt: Runtime, job_id: str, handler: Handler, on_fail: FailHook) -> None:
    job = claim(rt, job_id)
    if job is None:
        log.info("job %s is finished or running elsewhere; skipping", job_id)
        return
    ctx = JobContext(rt, job.id, job.kind, job.target_id, job.user_id, job.project_id)
    try:
        with Heartbeat(rt, job.id):
            handler(ctx)
    except Exception as exc:
        if isinstance(exc, JobFailure | MediaError):
            reason = str(exc)
        else:
            log.exception("job %s (%s) crashed", job_id, job.kind)
            reason = f"internal error while running {job.kind}: {type(exc).__name__}: {exc}"
        with rt.sync_session() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(
                status="failed", error=reason, finished_at=utcnow(), heartbeat_at=utcnow()))
            on_fail(s, ctx, reason)
        rt.bus.notify(ctx.user_id)
        return
    with rt.sync_session() as s, s.begin():
        s.execute(update(Job).where(Job.id == job_id).values(
            status="succeeded", progress=1.0, finished_at=utcnow(), heartbeat_at=utcnow()))


def orphaned_jobs(rt: Runtime, older_than: float) -> list[Job]:
    """Jobs nobody is running: queued for long (enqueue lost) or running with a dead heartbeat."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    stale = utcnow() - timedelta(seconds=rt.settings.job_stale_after)
    with rt.sync_session() as s:
        return list(s.scalars(select(Job).where(
            Job.is_deleted.is_(False),
            or_((Job.status == "queued") & (Job.updated_at < cutoff),
                (Job.status == "running") & (Job.heartbeat_at < stale)),
        )))

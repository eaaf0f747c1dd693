"""The life of a Job row: claimed, kept alive by a heartbeat, progress, success or a readable failure.

Claiming is one conditional UPDATE, so a job enqueued twice (by recovery, say) runs once,
and a job whose worker died (stale heartbeat) can be claimed again: nothing is lost.

Exactly once: every write a job makes after its claim is fenced on the attempt it claimed
(``status = 'running' AND attempts = <claimed>``). A worker that was paused past the stale
limit, whose job another worker took over (or that the user cancelled, or that ran out of
time), finds the fence closed: its late commit is refused, and the objects it wrote are
deleted. Object keys carry the attempt (``ctx.tag``), so a late worker never overwrites the
winner's objects.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.models import Clip, Job, Project
from ..events.log import record_event
from ..media.errors import MediaError
from ..storage.base import ObjectInfo

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

CANCELLED_REASON = "cancelled by the user"
# Bytes per second of media assumed before a clip is probed: a low audio-only bitrate
# (128 kbit/s), so the estimate errs towards more time, never less.
_ASSUMED_BYTES_PER_SECOND = 16_000


class JobFailure(Exception):
    """A failure whose message is fit to show the user (bad input, missing clip, ...)."""


class JobTimeLimit(JobFailure):
    """The job ran past its time limit; the message names the limit and the setting to raise."""


class JobStopped(Exception):
    """This attempt no longer owns its job: stop, write nothing, discard what it made."""


class Superseded(JobStopped):
    """Another attempt took the job over (stale heartbeat), or it already finished or failed."""


class JobCancelled(JobStopped):
    """The user cancelled the job (``POST /jobs/{id}/cancel``)."""


def new_error_id() -> str:
    return uuid.uuid4().hex[:12]


def time_limit(rt: Runtime, media_seconds: float) -> float:
    s = rt.settings
    return s.job_time_limit + s.job_time_limit_per_media_second * max(media_seconds, 0.0)


def time_limit_reason(kind: str, limit: float, media_seconds: float) -> str:
    return (f"{kind} stopped: it ran longer than its time limit of {limit:.3g} s "
            f"(SAPARI_JOB_TIME_LIMIT plus SAPARI_JOB_TIME_LIMIT_PER_MEDIA_SECOND x "
            f"{media_seconds:.1f} s of media); raise those settings for slower machines "
            "or longer recordings")


@dataclass
class JobContext:
    rt: Runtime
    job_id: str
    kind: str
    target_id: str
    user_id: str
    project_id: str | None
    attempt: int = 1
    started: float = field(default_factory=time.monotonic)
    media_seconds: float = 0.0
    # Server paths (and their names) -> the user's file names, for readable error messages.
    aliases: dict[str, str] = field(default_factory=dict)
    # Keys this attempt wrote to storage: deleted unless its completion commits.
    written: list[str] = field(default_factory=list)
    committed: bool = False
    _stopped: JobStopped | JobFailure | None = None
    _last_report: float = 0.0
    _last_fraction: float = -1.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- identity of this attempt ------------------------------------------------------
    @property
    def tag(self) -> str:
        """Unique per attempt: object keys made by this attempt carry it."""
        return f"{self.job_id}.{self.attempt}"

    @property
    def deadline(self) -> float:
        return self.started + time_limit(self.rt, self.media_seconds)

    def set_media_seconds(self, seconds: float) -> None:
        """The real media duration once known (process_clip starts from an estimate)."""
        self.media_seconds = max(seconds, 0.0)

    def alias(self, path: Path | str, filename: str) -> None:
        """Errors mentioning ``path`` (or its file name) name ``filename`` instead."""
        self.aliases[str(path)] = filename
        name = Path(path).name
        other = self.aliases.get(name)
        # Every clip's server copy is called source.<ext>: with several, name them all.
        self.aliases[name] = filename if other in (None, filename) else f"{other} or {filename}"

    # -- the fence ---------------------------------------------------------------------
    def _fence(self) -> Any:
        return (Job.id == self.job_id) & (Job.status == "running") & \
            (Job.attempts == self.attempt)

    def _lost(self, s: Session) -> JobStopped:
        job = s.get(Job, self.job_id)
        if job is not None and job.status == "cancelled":
            return JobCancelled(f"job {self.job_id} was cancelled by the user")
        state = "gone" if job is None else f"{job.status}, attempt {job.attempts}"
        return Superseded(f"job {self.job_id} attempt {self.attempt} no longer owns the job "
                          f"(now {state})")

    def check(self) -> None:
        """Raise if this attempt must stop: lost its job, was cancelled or ran out of time."""
        if self._stopped is not None:
            raise self._stopped
        if time.monotonic() > self.deadline:
            limit = time_limit(self.rt, self.media_seconds)
            self._stopped = JobTimeLimit(time_limit_reason(self.kind, limit, self.media_seconds))
            raise self._stopped

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction that first proves this attempt still owns the job (else JobStopped)."""
        self.check()
        with self.rt.sync_session() as s, s.begin():
            # The conditional UPDATE takes the row's write lock, so no claim, cancel or
            # completion can slip in between the check and this transaction's commit.
            res = s.execute(update(Job).where(self._fence()).values(heartbeat_at=utcnow()))
            if res.rowcount != 1:
                self._stopped = self._lost(s)
                raise self._stopped
            yield s

    @contextmanager
    def finish(self) -> Iterator[Session]:
        """The job's completion: one fenced transaction marking it succeeded.

        The handler writes its results into the yielded session; if this attempt was
        superseded or cancelled, Superseded/JobCancelled is raised before anything is written.
        """
        with self.session() as s:
            if time.monotonic() > self.deadline:  # the fence also enforces the time limit
                limit = time_limit(self.rt, self.media_seconds)
                raise JobTimeLimit(time_limit_reason(self.kind, limit, self.media_seconds))
            if self.project_id is not None and s.scalar(
                    select(Project.is_deleted).where(Project.id == self.project_id)):
                # Its rows were deleted (maybe purged) while it ran: results written now
                # would belong to nothing live and the lifecycle would never free them.
                raise JobFailure("the project was deleted while this job ran; its results "
                                 "were discarded (restore the project and run it again)")
            s.execute(update(Job).where(Job.id == self.job_id).values(
                status="succeeded", progress=1.0, finished_at=utcnow(), heartbeat_at=utcnow()))
            yield s
        self.committed = True

    # -- outputs -----------------------------------------------------------------------
    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Store a produced file, remembered so a refused completion can delete it."""
        self.check()
        with self._lock:
            self.written.append(key)
        return self.rt.storage.put_file(key, path)

    def discard_outputs(self, level: int = logging.WARNING) -> None:
        for key in self.written:
            try:
                self.rt.storage.delete(key)
            except Exception:  # best effort: the lifecycle collects what is left
                log.warning("could not delete %s of job %s", key, self.job_id, exc_info=True)
        if self.written:
            log.log(level, "job %s attempt %d: discarded %d object(s) it wrote",
                    self.job_id, self.attempt, len(self.written))
        self.written = []

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A work folder under the data folder, named for this attempt, removed at the end.

        A killed worker's folder is removed by the next worker start (``clean_scratch``).
        """
        path = scratch_root(self.rt) / self.tag
        path.mkdir(parents=True, exist_ok=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    # -- progress ----------------------------------------------------------------------
    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress (fenced); throttled so a fast loop does not flood the log.

        Raises JobCancelled / Superseded / JobTimeLimit when this attempt must stop.
        """
        self.check()
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_report < 0.25 and \
                fraction - self._last_fraction < 0.1:
            return
        self._last_report, self._last_fraction = now, fraction
        with self.session() as s:
            s.execute(update(Job).where(Job.id == self.job_id)
                      .values(progress=fraction, message=message))
            record_event(
                s, user_id=self.user_id, project_id=self.project_id, type="JobProgress",
                payload={"job_id": self.job_id, "kind": self.kind, "target_id": self.target_id,
                         "progress": round(fraction, 4), "message": message},
            )
        self.rt.bus.notify(self.user_id)

    def readable(self, message: str) -> str:
        """A message with server paths replaced by the user's file names."""
        for path in sorted(self.aliases, key=len, reverse=True):
            message = message.replace(path, self.aliases[path])
        return scrub_paths(self.rt, message)


def scratch_root(rt: Runtime) -> Path:
    return rt.settings.data_dir / "scratch"


def scrub_paths(rt: Runtime, message: str) -> str:
    """Drop any server folder left in a message: keep only the file's own name."""
    roots = [str(rt.settings.data_dir.resolve()), str(rt.settings.data_dir), "/tmp", "/var"]
    for root in sorted(set(roots), key=len, reverse=True):
        message = re.sub(re.escape(root) + r"/(?:[^\s/'\"]+/)*", "", message)
    return message


def _media_seconds(s: Session, job: Job) -> float:
    """What is known of the media a job works on: clip durations, else declared sizes."""
    if job.kind == "process_clip":
        clips = [c for c in [s.get(Clip, job.target_id)] if c is not None]
    elif job.project_id is not None:
        clips = list(s.scalars(select(Clip).where(Clip.project_id == job.project_id,
                                                  Clip.is_deleted.is_(False))))
    else:
        clips = []
    return sum(c.duration if c.duration else (c.size or c.declared_size or 0)
               / _ASSUMED_BYTES_PER_SECOND for c in clips)


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


def job_media_seconds(rt: Runtime, job: Job) -> float:
    with rt.sync_session() as s:
        return _media_seconds(s, job)


class Heartbeat:
    """Keeps ``heartbeat_at`` fresh (fenced) while a step runs long without progress.

    It also notices, between progress reports, that the job was cancelled, taken over or
    ran out of time: the next ``ctx.progress``/``ctx.check`` then raises. A job past its
    time limit is failed here at once, so the user learns it even if the step never reports.
    """

    def __init__(self, ctx: JobContext, on_fail: FailHook) -> None:
        self.ctx, self.on_fail = ctx, on_fail
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{ctx.job_id}",
                                        daemon=True)

    def _run(self) -> None:
        ctx = self.ctx
        interval = min(max(ctx.rt.settings.job_stale_after / 4, 0.2), 5.0)
        while not self._stop.wait(interval):
            try:
                ctx.check()
                with ctx.session():
                    pass
            except JobTimeLimit as e:
                fail_job(ctx, str(e), self.on_fail)
                return
            except JobStopped:
                return
            except Exception:  # a missed beat is not fatal; the next one may succeed
                log.warning("heartbeat for %s failed", ctx.job_id, exc_info=True)

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
        payload = {id_key: ctx.target_id, "job_id": ctx.job_id, "error": reason}
        if reason == CANCELLED_REASON:
            payload["cancelled"] = True
        record_event(s, user_id=ctx.user_id, project_id=ctx.project_id, type=event_type,
                     payload=payload)

    return hook


def fail_job(ctx: JobContext, reason: str, on_fail: FailHook) -> bool:
    """Mark the job (fenced on this attempt) and its target failed; False if it was not ours."""
    with ctx.rt.sync_session() as s, s.begin():
        res = s.execute(update(Job).where(ctx._fence()).values(
            status="failed", error=reason, finished_at=utcnow(), heartbeat_at=utcnow()))
        if res.rowcount != 1:
            log.warning("job %s attempt %d: not recording its failure (%s): the job is no "
                        "longer this attempt's", ctx.job_id, ctx.attempt, reason)
            return False
        on_fail(s, ctx, reason)
    ctx.rt.bus.notify(ctx.user_id)
    return True


def failure_reason(ctx: JobContext, exc: BaseException) -> str:
    if isinstance(exc, JobFailure | MediaError):
        return ctx.readable(str(exc))
    error_id = new_error_id()
    log.error("job %s (%s) crashed, error id %s:\n%s", ctx.job_id, ctx.kind, error_id,
              "".join(traceback.format_exception(exc)))
    return (f"internal error while running {ctx.kind} (error id {error_id}); the server log "
            "has the details: try again, and report the id if it happens again")


def run_job(rt: Runtime, job_id: str, handler: Handler, on_fail: FailHook) -> bool:
    """Claim and run the job; False when it was not ours to run (finished or running elsewhere)."""
    job = claim(rt, job_id)
    if job is None:
        log.info("job %s is finished or running elsewhere; skipping", job_id)
        return False
    ctx = JobContext(rt, job.id, job.kind, job.target_id, job.user_id, job.project_id,
                     attempt=job.attempts,
                     media_seconds=job_media_seconds(rt, job))
    try:
        with Heartbeat(ctx, on_fail):
            handler(ctx)
            if not ctx.committed:  # a handler with nothing to write still finishes fenced
                with ctx.finish():
                    pass
    except JobStopped as e:
        if not ctx.committed:
            # A user's cancel is expected (info); a superseded attempt is worth a warning.
            level = logging.INFO if isinstance(e, JobCancelled) else logging.WARNING
            log.log(level, "job %s (%s) attempt %d stopped, its results refused: %s",
                    job_id, job.kind, ctx.attempt, e)
            ctx.discard_outputs(level)
        return True
    except Exception as exc:
        if ctx.committed:  # the results are in; a failure after that changes nothing
            log.exception("job %s failed after its completion committed", job_id)
            return True
        ctx.discard_outputs()
        fail_job(ctx, failure_reason(ctx, exc), on_fail)
        return True
    rt.bus.notify(ctx.user_id)
    return True


def stale_in(rt: Runtime, job_id: str) -> float | None:
    """Seconds until a running job's heartbeat is stale (0 if it is); None if not running."""
    with rt.sync_session() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != "running" or job.heartbeat_at is None:
            return None
        beat = job.heartbeat_at.replace(tzinfo=job.heartbeat_at.tzinfo or UTC)
        age = (utcnow().replace(tzinfo=UTC) - beat).total_seconds()
        return max(rt.settings.job_stale_after - age, 0.0)


def cancel_job(rt: Runtime, s: Session, job: Job, on_fail: FailHook) -> bool:
    """Cancel a queued or running job inside the caller's transaction; False if it finished.

    The worker running it (if any) notices at its next progress report or heartbeat; its
    completion is refused by the fence in any case.
    """
    res = s.execute(update(Job).where(
        Job.id == job.id, Job.status.in_(("queued", "running"))).values(
        status="cancelled", error=CANCELLED_REASON, finished_at=utcnow()))
    if res.rowcount != 1:
        return False
    ctx = JobContext(rt, job.id, job.kind, job.target_id, job.user_id, job.project_id,
                     attempt=job.attempts)
    on_fail(s, ctx, CANCELLED_REASON)
    return True


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


def take_orphans(rt: Runtime, older_than: float) -> list[Job]:
    """Orphaned jobs (queued longer than ``older_than``, or running with a stale heartbeat),
    each put back to ``queued`` by one conditional UPDATE per job.

    Only the caller whose UPDATE matched re-enqueues it, so recovery running on many
    workers at once enqueues each orphan once; ``updated_at`` moves on, so it is not taken
    again before another ``older_than``. A stale running attempt loses its fence here: if
    its worker was only frozen, its late commit is refused.
    """
    taken = []
    for job in orphaned_jobs(rt, older_than):
        cutoff = utcnow() - timedelta(seconds=older_than)
        stale = utcnow() - timedelta(seconds=rt.settings.job_stale_after)
        with rt.sync_session() as s, s.begin():
            res = s.execute(update(Job).where(
                Job.id == job.id, Job.is_deleted.is_(False), Job.attempts == job.attempts,
                or_((Job.status == "queued") & (Job.updated_at < cutoff),
                    (Job.status == "running") & (Job.heartbeat_at < stale)),
            ).values(status="queued", updated_at=utcnow()))
        if res.rowcount == 1:
            taken.append(job)
    return taken


def clean_scratch(rt: Runtime) -> int:
    """Remove scratch folders older than the stale limit that no running attempt owns."""
    root = scratch_root(rt)
    if not root.is_dir():
        return 0
    cutoff = time.time() - rt.settings.job_stale_after
    removed = 0
    with rt.sync_session() as s:
        for folder in root.iterdir():
            try:
                if folder.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            job_id, _, attempt = folder.name.rpartition(".")
            job = s.get(Job, job_id) if job_id else None
            if job is not None and job.status == "running" and str(job.attempts) == attempt:
                stale = utcnow() - timedelta(seconds=rt.settings.job_stale_after)
                beat = job.heartbeat_at
                if beat is not None and beat.replace(tzinfo=beat.tzinfo or UTC) >= stale:
                    continue  # its worker is alive and still using it
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d scratch folder(s) left by stopped jobs", removed)
    return removed

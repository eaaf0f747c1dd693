"""A clip source a worker made (a URL import, an asset edit): landed under the user's quota,
then processed like an upload."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.models import Clip, Job, User
from ..events.log import record_event
from ..lifecycle.quota import used_bytes_sync
from ..queue.factory import INTERACTIVE
from ..queue.jobs import JobContext, JobFailure
from ..queue.submit import new_job
from ..queue.tasks import enqueue


def mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def quota_and_priority(s: Session, ctx: JobContext, user_id: str) -> tuple[int, str]:
    """The user's quota, and the priority the follow-up processing runs at (this job's)."""
    user = s.get(User, user_id)
    quota = (user.quota_bytes if user else None) or ctx.rt.settings.quota_bytes
    job = s.get(Job, ctx.job_id)
    value = job.priority if job else INTERACTIVE
    return quota, "interactive" if value >= INTERACTIVE else "batch"


def land_source(s: Session, ctx: JobContext, *, key: str, size: int, quota: int,
                what: str) -> Clip:
    """Point the clip at its stored object, unless that takes the user over quota.

    Same rule as an upload's confirm: decided under the user's lock (their row updated).
    """
    clip = s.get(Clip, ctx.target_id)
    assert clip is not None
    s.execute(update(User).where(User.id == clip.user_id).values(updated_at=utcnow()))
    used = used_bytes_sync(s, clip.user_id, ttl=ctx.rt.settings.signed_url_ttl)
    if used + size > quota:
        raise JobFailure(f"{what} ({mib(size)}) would exceed your quota of {mib(quota)}: "
                         "delete clips first")
    clip.object_key = key
    clip.size = clip.declared_size = size
    clip.status = "uploaded"
    clip.error = None
    return clip


def queue_processing(s: Session, clip: Clip, priority: str,
                     **payload: Any) -> tuple[str, int]:
    """The clip's process_clip job and its ClipUploaded event, in the finishing commit."""
    process = new_job(s, user_id=clip.user_id, kind="process_clip", target_id=clip.id,
                      project_id=clip.project_id, priority=priority)
    record_event(s, user_id=clip.user_id, project_id=clip.project_id, type="ClipUploaded",
                 payload={"clip_id": clip.id, "size": clip.size, "job_id": process.id,
                          **payload})
    return process.id, process.priority


def start_processing(ctx: JobContext, process: tuple[str, int]) -> None:
    """After the commit, as the upload route does; a lost enqueue is re-queued by recovery."""
    ctx.rt.bus.notify(ctx.user_id)
    enqueue(ctx.rt, "process_clip", *process)

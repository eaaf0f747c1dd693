"""import_url: stream a URL into storage (vetted, size- and type-checked), then process_clip."""

from __future__ import annotations

import logging

from sqlalchemy import update

from .. import keys
from ..db.base import utcnow
from ..db.models import Clip, Job, User
from ..events.log import record_event
from ..lifecycle.quota import used_bytes_sync
from ..media.errors import MediaError
from ..media.probe import probe
from ..net.fetch import Fetched, ImportRefused, fetch_to_file
from ..net.ssrf import Policy
from ..queue.factory import INTERACTIVE
from ..queue.jobs import JobContext, JobFailure, fail_target
from ..queue.submit import new_job
from ..queue.tasks import enqueue

log = logging.getLogger(__name__)


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def _priority_name(value: int) -> str:
    return "interactive" if value >= INTERACTIVE else "batch"


def import_url(ctx: JobContext) -> None:
    rt = ctx.rt
    settings = rt.settings
    with ctx.session() as s:
        clip = s.get(Clip, ctx.target_id)
        if clip is None or clip.is_deleted:
            raise JobFailure(f"clip {ctx.target_id} no longer exists")
        url = str((clip.origin or {}).get("url", ""))
        if not url:
            raise JobFailure(f"clip {clip.id} has no URL to import from")
        ids = (clip.user_id, clip.project_id, clip.id)
        filename = clip.filename
        user = s.get(User, clip.user_id)
        quota = (user.quota_bytes if user else None) or settings.quota_bytes
        used = used_bytes_sync(s, clip.user_id, ttl=settings.signed_url_ttl)
        job = s.get(Job, ctx.job_id)
        priority = _priority_name(job.priority if job else INTERACTIVE)

    room = quota - used
    if room <= 0:
        raise JobFailure(f"your quota of {_mib(quota)} is used up: delete clips first")
    if room < settings.max_upload_bytes:
        limit, whose = room, f"what is left of your quota ({_mib(room)} of {_mib(quota)})"
    else:
        limit = settings.max_upload_bytes
        whose = f"the largest upload accepted ({_mib(limit)})"

    def report(size: int, total: int | None) -> None:
        # Also where a cancel or a lost job stops the download (ctx.progress raises).
        fraction = 0.0 if not total else 0.95 * min(size / total, 1.0)
        ctx.progress(fraction, f"download {_mib(size)}" + (f" / {_mib(total)}" if total else ""))

    with ctx.scratch() as work:
        dest = work / "import.part"  # not a word a message uses: errors name the file instead
        ctx.alias(dest, filename)
        try:
            got: Fetched = fetch_to_file(url, dest, limit=limit, limit_reason=whose,
                                         policy=Policy.from_settings(
                                             settings.import_allow_private,
                                             settings.import_allow_networks),
                                         timeout=settings.import_timeout, progress=report)
        except ImportRefused as e:
            raise JobFailure(str(e)) from None
        try:
            info = probe(dest)
        except MediaError as e:
            raise JobFailure(f"{got.url} is not a video or audio file sapari-nb can read "
                             f"({ctx.readable(str(e))})") from None
        if info.audio is None and info.video is None:
            raise JobFailure(f"{got.url} holds no video or audio stream")
        suffix = got.sniffed or keys.safe_suffix(filename)
        # The key carries this attempt's tag: a late, superseded attempt never overwrites it.
        key = keys.clip_artifact(*ids, f"source{suffix}", ctx.tag)
        obj = ctx.put_file(key, dest)

    with ctx.finish() as s:
        # Same rule as an upload's confirm: the user's quota, decided under the user's lock.
        s.execute(update(User).where(User.id == ids[0]).values(updated_at=utcnow()))
        used = used_bytes_sync(s, ids[0], ttl=settings.signed_url_ttl)
        if used + obj.size > quota:
            raise JobFailure(f"importing {_mib(obj.size)} would exceed your quota of "
                             f"{_mib(quota)}: delete clips first")
        clip = s.get(Clip, ctx.target_id)
        assert clip is not None
        clip.object_key = key
        clip.size = clip.declared_size = obj.size
        clip.content_type = got.content_type
        clip.status = "uploaded"
        clip.error = None
        if keys.safe_suffix(clip.filename) == ".bin" and got.sniffed:
            clip.filename += got.sniffed
        clip.origin = {**(clip.origin or {}), "final_url": got.url, "redirects": got.redirects}
        process = new_job(s, user_id=clip.user_id, kind="process_clip", target_id=clip.id,
                          project_id=clip.project_id, priority=priority)
        record_event(s, user_id=clip.user_id, project_id=clip.project_id, type="ClipUploaded",
                     payload={"clip_id": clip.id, "size": obj.size, "job_id": process.id,
                              "url": url})
        process_id, process_priority = process.id, process.priority
    rt.bus.notify(ctx.user_id)
    # After the commit, as the upload route does; a lost enqueue is re-queued by recovery.
    enqueue(rt, "process_clip", process_id, process_priority)


import_failed = fail_target(Clip, "ClipFailed", "clip_id")

"""import_url: stream a URL into storage (vetted, size- and type-checked), then process_clip."""

from __future__ import annotations

import logging

from .. import keys
from ..db.models import Clip
from ..lifecycle.quota import used_bytes_sync
from ..media.errors import MediaError
from ..media.probe import probe
from ..net.fetch import Fetched, ImportRefused, fetch_to_file
from ..net.ssrf import Policy
from ..queue.jobs import JobContext, JobFailure, fail_target
from .new_source import land_source, mib, queue_processing, quota_and_priority, start_processing

log = logging.getLogger(__name__)


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
        quota, priority = quota_and_priority(s, ctx, clip.user_id)
        used = used_bytes_sync(s, clip.user_id, ttl=settings.signed_url_ttl)

    room = quota - used
    if room <= 0:
        raise JobFailure(f"your quota of {mib(quota)} is used up: delete clips first")
    if room < settings.max_upload_bytes:
        limit, whose = room, f"what is left of your quota ({mib(room)} of {mib(quota)})"
    else:
        limit = settings.max_upload_bytes
        whose = f"the largest upload accepted ({mib(limit)})"

    def report(size: int, total: int | None) -> None:
        # Also where a cancel or a lost job stops the download (ctx.progress raises).
        fraction = 0.0 if not total else 0.95 * min(size / total, 1.0)
        ctx.progress(fraction, f"download {mib(size)}" + (f" / {mib(total)}" if total else ""))

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
        clip = land_source(s, ctx, key=key, size=obj.size, quota=quota,
                           what="the imported file")
        clip.content_type = got.content_type
        if keys.safe_suffix(clip.filename) == ".bin" and got.sniffed:
            clip.filename += got.sniffed
        clip.origin = {**(clip.origin or {}), "final_url": got.url, "redirects": got.redirects}
        process = queue_processing(s, clip, priority, url=url)
    start_processing(ctx, process)


import_failed = fail_target(Clip, "ClipFailed", "clip_id")

"""asset_edit: a new clip made from another: trimmed and/or normalised to a loudness target.

The source clip and its objects are never touched; the result is a new clip in the same
project, processed like an upload (process_clip) once its bytes are stored.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .. import keys
from ..db.models import Clip
from ..media.loudness import CONTAINERS, apply_gain, gain_for, measure
from ..media.probe import probe
from ..media.trim import trim
from ..queue.jobs import JobContext, JobFailure, fail_target
from .new_source import land_source, queue_processing, quota_and_priority, start_processing

# Containers a loudness-only edit keeps (its video is copied as is); others become .mkv.
_KEEP = (".mp4", ".mov", ".mkv", ".webm", ".m4a")


def output_suffix(source_name: str, has_video: bool, trimmed: bool) -> str:
    """Trims are rendered to H.264/AAC MP4 (AAC in M4A without video); a gain-only edit keeps
    the source's container where it can copy the video into it."""
    if trimmed:
        return ".mp4" if has_video else ".m4a"
    suffix = Path(source_name).suffix.lower()
    if suffix in _KEEP:
        return suffix
    return ".mkv" if has_video else ".m4a"


def asset_edit(ctx: JobContext) -> None:
    rt = ctx.rt
    with ctx.session() as s:
        clip = s.get(Clip, ctx.target_id)
        if clip is None or clip.is_deleted:
            raise JobFailure(f"clip {ctx.target_id} no longer exists")
        src = s.get(Clip, clip.source_clip_id) if clip.source_clip_id else None
        if src is None or src.is_deleted or src.purged_at is not None:
            raise JobFailure("the clip this edit was made from was deleted: restore it and "
                             "edit again")
        if src.status != "ready":
            raise JobFailure(f"{src.filename} is {src.status}, not ready: wait for ClipReady")
        cfg: dict[str, Any] = dict(clip.origin or {})
        ids = (clip.user_id, clip.project_id, clip.id)
        src_key, src_name = src.object_key, src.filename
        has_video = bool((src.media_info or {}).get("video"))
        quota, priority = quota_and_priority(s, ctx, clip.user_id)

    cut = cfg.get("trim")
    target = cfg.get("loudness_lufs")
    suffix = output_suffix(src_name, has_video, cut is not None)
    result: dict[str, Any] = {}
    with ExitStack() as stack:
        work = stack.enter_context(ctx.scratch())
        current = stack.enter_context(rt.storage.local_path(src_key))
        ctx.alias(current, src_name)
        share = 0.7 if target is not None else 0.95
        if cut is not None:
            out = work / f"trimmed{suffix}"
            done = trim(current, out, float(cut["start"]), float(cut["end"]),
                        container=CONTAINERS[suffix],
                        progress=lambda f: ctx.progress(share * f, "trim"))
            result.update(trim_mode=done.mode, copied_frames=done.copied_frames,
                          trimmed_duration=round(done.duration, 6))
            current = out
        if target is not None:
            base = share if cut is not None else 0.0
            step = (0.95 - base) / 3
            before = measure(current, progress=lambda f: ctx.progress(base + step * f,
                                                                      "measure loudness"))
            gain, limited = gain_for(before, float(target))
            out = work / f"loud{suffix}"
            apply_gain(current, out, gain,
                       progress=lambda f: ctx.progress(base + step * (1 + f), "apply gain"))
            after = measure(out, progress=lambda f: ctx.progress(base + step * (2 + f),
                                                                 "check loudness"))
            result.update(measured_lufs=_round(before.lufs), peak_db=_round(before.peak_db),
                          gain_db=round(gain, 3), peak_limited=limited,
                          output_lufs=_round(after.lufs), output_peak_db=_round(after.peak_db))
            current = out
        info = probe(current)
        key = keys.clip_artifact(*ids, f"source{suffix}", ctx.tag)
        obj = ctx.put_file(key, current)

    with ctx.finish() as s:
        clip = land_source(s, ctx, key=key, size=obj.size, quota=quota,
                           what="the edited clip")
        clip.content_type = "video/mp4" if suffix == ".mp4" else "application/octet-stream"
        clip.origin = {**cfg, "result": {**result, "duration": round(info.duration, 6)}}
        process = queue_processing(s, clip, priority, source_clip_id=clip.source_clip_id)
    start_processing(ctx, process)


def _round(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 3)


asset_edit_failed = fail_target(Clip, "ClipFailed", "clip_id")

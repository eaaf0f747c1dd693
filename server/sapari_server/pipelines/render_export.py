"""render_export: keep-segments of every clip, in order, rendered to one file and stored."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from .. import keys
from ..db.base import utcnow
from ..db.models import Clip, Edit, Export
from ..events.log import record_event
from ..media import smart_render  # noqa: F401  # loaded when workers start, not mid-job:
from ..media.render import Piece, RenderSettings, render  # a first import holds the GIL
from ..queue.jobs import JobContext, JobFailure, fail_target
from .bounds import size_problem, source_size
from .cuts import plan_keeps

ENCODERS = {"h264": "libx264", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
FORMAT_NAMES = {"mkv": "matroska"}  # FFmpeg's muxer names where they differ from extensions
APPLY = {"accepted": ("accepted",), "accepted_and_proposed": ("accepted", "proposed")}


def render_export(ctx: JobContext) -> None:
    rt = ctx.rt
    with ctx.session() as s:
        exp = s.get(Export, ctx.target_id)
        if exp is None or exp.is_deleted:
            raise JobFailure(f"export {ctx.target_id} no longer exists")
        exp.status = "running"
        cfg = dict(exp.settings)
        clips = list(s.scalars(
            select(Clip).where(Clip.project_id == exp.project_id, Clip.is_deleted.is_(False))
            .order_by(Clip.position, Clip.created_at)))
        # An upload that never arrived and whose URL expired is no part of the project.
        stale = utcnow() - timedelta(seconds=rt.settings.signed_url_ttl)
        clips = [c for c in clips if not (c.status == "pending_upload" and c.created_at < stale)]
        if not clips:
            raise JobFailure("the project has no clips to render")
        bad = [c.filename for c in clips if c.status != "ready"]
        if bad:
            raise JobFailure(f"clips not ready ({', '.join(bad)}): wait for processing to finish")
        statuses = APPLY[cfg.get("apply", "accepted")]
        edits = list(s.scalars(select(Edit).where(
            Edit.project_id == exp.project_id, Edit.is_deleted.is_(False),
            Edit.status.in_(statuses))))
        ids = (exp.user_id, exp.project_id, exp.id)

    # The API checked the size against the clips of the time; clips may have changed since.
    problem = size_problem(cfg.get("width"), cfg.get("height"),
                           source_size(c.media_info for c in clips),
                           bool(cfg.get("allow_upscale")), rt.settings.max_export_scale)
    if problem:
        raise JobFailure(problem)
    applied, plan = plan_keeps(clips, edits)
    if not any(keeps for _, keeps in plan):
        raise JobFailure("the accepted cuts remove everything: reject some edits and export again")

    container = cfg.get("container", "mp4")
    settings = RenderSettings(
        container=FORMAT_NAMES.get(container, container),
        video_codec=ENCODERS[cfg.get("video_codec", "h264")],
        audio_codec="aac" if container in ("mp4", "mov") else "libopus",
        mode=cfg.get("mode", "auto"), crf=cfg.get("crf", 20),
        preset=cfg.get("preset", "veryfast"), width=cfg.get("width"), height=cfg.get("height"),
        # Re-encode in the source's size class (CRF no lower than its own, bitrates capped
        # at its measured ones): the asked CRF is a floor on quality, not a bit budget.
        match_source=cfg.get("match_source", True),
    )
    with ExitStack() as stack:
        work = stack.enter_context(ctx.scratch())
        pieces = []
        clip_of: dict[Path, str] = {}
        for clip, keeps in plan:
            path = stack.enter_context(rt.storage.local_path(clip.object_key))
            clip_of[path] = clip.id
            ctx.alias(path, clip.filename)  # errors name the user's files, not our copies
            pieces += [Piece(path, a, b) for a, b in keeps]
        out = work / f"cut.{container}"
        result = render(pieces, out, settings,
                        progress=lambda f: ctx.progress(0.95 * f, "render"))
        key = keys.export_file(*ids, container, ctx.tag)
        obj = ctx.put_file(key, out)
        rendered = [{"clip_id": clip_of[p.path], "start": round(p.start, 6),
                     "end": round(p.end, 6)} for p in result.pieces]

    with ctx.finish() as s:
        exp = s.get(Export, ctx.target_id)
        assert exp is not None
        exp.status = "succeeded"
        exp.object_key = key
        exp.size = obj.size
        exp.duration = result.duration
        exp.error = None
        exp.result = {"cuts": applied, "keep_segments": rendered, "mode": result.mode,
                      "mode_reason": result.mode_reason, "copied_frames": result.copied_frames,
                      "encoded_frames": result.encoded_frames,
                      "video_frames": result.video_frames, "audio_samples": result.audio_samples}
        record_event(s, user_id=exp.user_id, project_id=exp.project_id, type="ExportComplete",
                     payload={"export_id": exp.id, "duration": result.duration,
                              "size": obj.size, "cuts": len(applied)})
    rt.bus.notify(ctx.user_id)


export_failed = fail_target(Export, "ExportFailed", "export_id")

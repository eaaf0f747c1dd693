"""Timeline exports for editors who finish in an NLE, and captions re-timed to the cut."""

from __future__ import annotations

from fractions import Fraction
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy import select

from ...db.models import Clip, Edit, Project, Transcript
from ...pipelines.cuts import plan_keeps
from ...pipelines.render_export import APPLY
from ...timeline import FORMATS, KeepSegment, TimelineClip, export_timeline
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned

router = APIRouter(tags=["timeline"])
Format = Literal["fcpxml", "premiere", "edl", "otio", "srt", "vtt"]
CAPTIONS = ("srt", "vtt")
PATHLESS = (*CAPTIONS, "edl")  # these name clips (reels) but carry no media paths


def _safe_name(clip: Clip) -> str:
    """The clip's own file name, never a path: `../../etc/passwd.mp4` becomes `passwd.mp4`."""
    name = clip.filename.replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name if name not in ("", ".", "..") else f"{clip.id}.mp4"


def _fps(info: dict) -> Fraction:
    video = info.get("video") or {}
    try:
        return Fraction(str(video.get("fps") or 30))
    except (ValueError, ZeroDivisionError):
        return Fraction(30)


@router.get("/projects/{project_id}/timeline")
async def timeline(
    project_id: str, user: CurrentUser, session: SessionDep, rt: RuntimeDep,
    format: Annotated[Format, Query(description=f"one of {', '.join(FORMATS)}")] = "otio",
    apply: Literal["accepted", "accepted_and_proposed"] = "accepted",
    media_dir: Annotated[str | None, Query(
        description="absolute folder on the editor's machine holding the original files "
                    "(required for NLE formats, not for captions); each clip is linked as "
                    "media_dir/<its file name>")] = None,
) -> Response:
    project = await owned(session, Project, project_id, user)
    if media_dir is not None and not PurePosixPath(media_dir).is_absolute():
        raise HTTPException(422, f"media_dir {media_dir!r} must be an absolute path: NLEs "
                                 "show relative media paths as offline")
    if media_dir is None and format not in PATHLESS:
        # The server's own copies are no use to an editor (and their paths are the
        # server's business): the timeline must point at the editor's originals.
        raise HTTPException(422, f"{format} timelines need media_dir=<absolute folder on your "
                                 "machine holding the original files>: NLEs link clips by "
                                 "absolute path")
    clips = list(await session.scalars(select(Clip).where(
        Clip.project_id == project_id, Clip.is_deleted.is_(False), Clip.status == "ready")
        .order_by(Clip.position, Clip.created_at)))
    if not clips:
        raise HTTPException(409, "the project has no processed clips yet: upload and wait "
                                 "for ClipReady")
    edits = list(await session.scalars(select(Edit).where(
        Edit.project_id == project_id, Edit.is_deleted.is_(False),
        Edit.status.in_(APPLY[apply]))))
    _, plan = plan_keeps(clips, edits)
    tl_clips, keeps = [], []
    for clip, segments in plan:
        info = clip.media_info or {}
        video, audio = info.get("video") or {}, info.get("audio") or {}
        path = (PurePosixPath(media_dir) if media_dir else PurePosixPath("/")) / _safe_name(clip)
        tl_clips.append(TimelineClip(
            clip_id=clip.id, name=_safe_name(clip), path=Path(path), duration=clip.duration or 0.0,
            fps=_fps(info), width=video.get("width"), height=video.get("height"),
            sample_rate=audio.get("sample_rate"), channels=audio.get("channels")))
        keeps += [KeepSegment(clip.id, a, b) for a, b in segments]
    words = None
    if format in CAPTIONS:
        rows = await session.scalars(select(Transcript).where(
            Transcript.clip_id.in_([c.id for c in clips]), Transcript.is_deleted.is_(False))
            .order_by(Transcript.created_at))
        words = {t.clip_id: t.words for t in rows}  # newest transcript per clip wins
    try:
        # OTIO and its adapters are CPU work: off the event loop, so other requests and the
        # event streams of this process keep flowing.
        content, media_type, filename = await anyio.to_thread.run_sync(
            partial(export_timeline, project.name, tl_clips, keeps, format, words=words))
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})

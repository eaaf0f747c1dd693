"""Timeline exports for editors who finish in an NLE, and captions re-timed to the cut."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy import select

from ...db.models import Clip, Edit, Project, Transcript
from ...pipelines.cuts import plan_keeps
from ...pipelines.render_export import APPLY
from ...storage.local import LocalStorage
from ...timeline import FORMATS, KeepSegment, TimelineClip, export_timeline
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned

router = APIRouter(tags=["timeline"])
Format = Literal["fcpxml", "premiere", "edl", "otio", "srt", "vtt"]


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
        description="absolute folder on the editor's machine holding the original files; "
                    "media paths then point there instead of at the server's copies")] = None,
) -> Response:
    project = await owned(session, Project, project_id, user)
    if media_dir is not None and not PurePosixPath(media_dir).is_absolute():
        raise HTTPException(422, f"media_dir {media_dir!r} must be an absolute path: NLEs "
                                 "show relative media paths as offline")
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
        if media_dir is not None:
            path = Path(media_dir) / clip.filename
        elif isinstance(rt.storage, LocalStorage):
            path = rt.storage.path(clip.object_key)
        else:
            raise HTTPException(422, "pass media_dir=<absolute folder with the original "
                                     "files>: the server's copies are not on a local disk")
        tl_clips.append(TimelineClip(
            clip_id=clip.id, name=clip.filename, path=path, duration=clip.duration or 0.0,
            fps=_fps(info), width=video.get("width"), height=video.get("height"),
            sample_rate=audio.get("sample_rate"), channels=audio.get("channels")))
        keeps += [KeepSegment(clip.id, a, b) for a, b in segments]
    words = None
    if format in ("srt", "vtt"):
        rows = await session.scalars(select(Transcript).where(
            Transcript.clip_id.in_([c.id for c in clips]), Transcript.is_deleted.is_(False))
            .order_by(Transcript.created_at))
        words = {t.clip_id: t.words for t in rows}  # newest transcript per clip wins
    try:
        content, media_type, filename = export_timeline(project.name, tl_clips, keeps, format,
                                                        words=words)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})

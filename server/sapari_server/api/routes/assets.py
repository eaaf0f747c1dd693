"""Asset edits: a new clip trimmed and/or loudness-normalised from one of the project's clips."""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, HTTPException

from ...db.models import Clip
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import AssetEditOut, AssetEditRequest, ClipOut
from ..worker_clips import clip_with_job, require_room

router = APIRouter(tags=["clips"])

MIN_TRIM = 0.1  # seconds: shorter ranges hold at most a few frames
MIN_LOUDNESS = 0.4  # seconds: one BS.1770 gating block


def _derived_name(filename: str, body: AssetEditRequest, start: float, end: float) -> str:
    path = PurePosixPath(filename)
    parts = []
    if body.trim is not None:
        parts.append(f"{start:g}-{end:g} s")
    if body.loudness_lufs is not None:
        parts.append(f"{body.loudness_lufs:g} LUFS")
    return f"{path.stem} ({', '.join(parts)}){path.suffix}"


@router.post("/clips/{clip_id}/edit-asset", response_model=AssetEditOut, status_code=202)
async def edit_asset(clip_id: str, body: AssetEditRequest, user: CurrentUser,
                     session: SessionDep, rt: RuntimeDep) -> AssetEditOut:
    """Make a new clip from this one: trim it to [start, end) and/or bring its integrated
    loudness (ITU-R BS.1770) to ``loudness_lufs``. The source clip is kept as it is; the new
    clip appears in the same project and is processed like an upload (ClipReady)."""
    src = await owned(session, Clip, clip_id, user)
    if src.status != "ready" or not src.duration:
        raise HTTPException(409, f"clip {src.filename} is {src.status}: wait for ClipReady "
                                 "before editing it")
    start, end = 0.0, float(src.duration)
    if body.trim is not None:
        if body.trim.start >= src.duration:
            raise HTTPException(422, f"trim starts at {body.trim.start:g} s but {src.filename} "
                                     f"is only {src.duration:.3f} s long")
        # Like a manual cut, the end is clamped to the clip's length.
        start, end = body.trim.start, min(body.trim.end, float(src.duration))
        if end - start < MIN_TRIM:
            raise HTTPException(422, f"the trimmed range {start:g}-{end:g} s is shorter than "
                                     f"{MIN_TRIM} s: keep a longer range")
    if body.loudness_lufs is not None and end - start < MIN_LOUDNESS:
        raise HTTPException(422, f"loudness needs at least {MIN_LOUDNESS} s of audio to "
                                 f"measure; the range is {end - start:.3f} s")
    await require_room(session, rt, user)
    origin = {"kind": "asset_edit", "source_clip_id": src.id,
              "trim": None if body.trim is None else {"start": start, "end": end},
              "loudness_lufs": body.loudness_lufs}
    clip, job = await clip_with_job(
        session, rt, user, project_id=src.project_id,
        filename=body.filename or _derived_name(src.filename, body, start, end),
        status="editing", kind="asset_edit", priority=body.priority, origin=origin,
        source_clip_id=src.id)
    return AssetEditOut(clip=ClipOut.model_validate(clip), job_id=job.id)

"""Review: list the proposed cuts, accept or reject them, add manual ones."""

from __future__ import annotations

import anyio
import numpy as np
from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from ...db.models import Artifact, Clip, Edit, Project
from ...events.log import record_event
from ...media.edges import snap_edges
from ...media.spectrum import wav_reader
from ...media.vad import VadUnavailable
from ...pipelines.cuts import usable_duration
from ...storage.base import StorageError
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import BulkResult, EditCreate, EditOut, EditPatch, EditsBulkPatch, EditStatus

router = APIRouter(tags=["edits"])


def _changed(session: SessionDep, user_id: str, project_id: str, ids: list[str]) -> None:
    record_event(session, user_id=user_id, project_id=project_id, type="EditsChanged",
                 payload={"edit_ids": ids})


@router.get("/projects/{project_id}/edits", response_model=list[EditOut])
async def list_edits(project_id: str, user: CurrentUser, session: SessionDep,
                     status: EditStatus | None = None) -> list[Edit]:
    await owned(session, Project, project_id, user)
    q = select(Edit).where(Edit.project_id == project_id, Edit.is_deleted.is_(False))
    if status:
        q = q.where(Edit.status == status)
    rows = await session.scalars(q.order_by(Edit.clip_id, Edit.start))
    return list(rows)


@router.post("/projects/{project_id}/edits", response_model=EditOut, status_code=201)
async def create_edit(project_id: str, body: EditCreate, user: CurrentUser,
                      session: SessionDep, rt: RuntimeDep) -> Edit:
    await owned(session, Project, project_id, user)
    clip = await owned(session, Clip, body.clip_id, user)
    if clip.project_id != project_id:
        raise HTTPException(422, f"clip {clip.id} belongs to another project")
    if clip.duration is not None and body.start >= clip.duration:
        raise HTTPException(422, f"start {body.start} s is past the clip's end "
                                 f"({clip.duration:.3f} s)")
    end = min(body.end, clip.duration) if clip.duration is not None else body.end
    start, meta = body.start, {}
    if body.snap:
        start, end = await _snapped(session, rt, clip, start, end)
        meta = {"snapped": {"start": body.start, "end": body.end}}
    edit = Edit(user_id=user.id, project_id=project_id, clip_id=clip.id, kind=body.kind,
                start=start, end=end, reason=body.reason, status=body.status,
                source="manual", meta=meta)
    session.add(edit)
    await session.flush()
    _changed(session, user.id, project_id, [edit.id])
    await session.commit()
    rt.bus.notify(user.id)
    return edit


async def _snapped(session: SessionDep, rt: RuntimeDep, clip: Clip, start: float,
                   end: float) -> tuple[float, float]:
    """A manual cut's edges on the audio (``media.edges.snap_edges``), or a 4xx saying why not."""
    arts = {a.kind: a for a in await session.scalars(select(Artifact).where(
        Artifact.clip_id == clip.id, Artifact.is_deleted.is_(False),
        Artifact.kind.in_(("levels", "audio"))))}
    if clip.status != "ready" or "levels" not in arts or "audio" not in arts:
        raise HTTPException(409, f"clip {clip.filename} has no processed audio yet, so the "
                                 "cut cannot be snapped: wait for ClipReady, or add it "
                                 "without snap")
    storage = rt.storage
    levels_key, wav_key = arts["levels"].object_key, arts["audio"].object_key
    hop = float(arts["levels"].meta.get("hop", 0.01))
    duration = usable_duration(clip)

    def work() -> tuple[float, float] | None:
        with storage.local_path(levels_key) as lp, storage.local_path(wav_key) as wp, \
                wav_reader(wp) as read:
            if read is None:
                return None
            return snap_edges(read, np.load(lp, mmap_mode="r"), hop, duration, start, end)

    try:
        placed = await anyio.to_thread.run_sync(work)
    except (OSError, StorageError, VadUnavailable, ValueError) as exc:
        raise HTTPException(409, f"the cut could not be snapped to the audio ({exc}); add it "
                                 "without snap") from None
    if placed is None:
        raise HTTPException(422, f"{start:.3f}-{end:.3f} s lies inside continuous speech: "
                                 "snapped to the audio nothing is left to cut; widen it or "
                                 "add it without snap")
    return placed


@router.patch("/edits/{edit_id}", response_model=EditOut)
async def patch_edit(edit_id: str, body: EditPatch, user: CurrentUser, session: SessionDep,
                     rt: RuntimeDep) -> Edit:
    edit = await owned(session, Edit, edit_id, user)
    start = edit.start if body.start is None else body.start
    end = edit.end if body.end is None else body.end
    clip = await session.get(Clip, edit.clip_id)
    if clip is not None and clip.duration is not None:
        # Same rule as a new manual cut: inside the clip, the end clamped to its length.
        if start >= clip.duration:
            raise HTTPException(422, f"start {start} s is past the clip's end "
                                     f"({clip.duration:.3f} s)")
        end = min(end, clip.duration)
    if end <= start:
        raise HTTPException(422, f"end ({end}) must be after start ({start})")
    edit.start, edit.end = start, end
    if body.status is not None:
        edit.status = body.status
    if body.reason is not None:
        edit.reason = body.reason
    _changed(session, user.id, edit.project_id, [edit.id])
    await session.commit()
    rt.bus.notify(user.id)
    return edit


@router.patch("/projects/{project_id}/edits", response_model=BulkResult)
async def bulk_patch(project_id: str, body: EditsBulkPatch, user: CurrentUser,
                     session: SessionDep, rt: RuntimeDep) -> BulkResult:
    await owned(session, Project, project_id, user)
    q = select(Edit).where(Edit.project_id == project_id, Edit.is_deleted.is_(False))
    if body.ids is not None:
        q = q.where(Edit.id.in_(body.ids))
    if body.only_status is not None:
        q = q.where(Edit.status == body.only_status)
    edits = list(await session.scalars(q))
    if body.ids is not None and len(edits) != len(set(body.ids)) and body.only_status is None:
        found = {e.id for e in edits}
        missing = [i for i in body.ids if i not in found]
        raise HTTPException(404, f"edits not found in this project: {', '.join(missing)}")
    for e in edits:
        e.status = body.status
    if edits:
        _changed(session, user.id, project_id, [e.id for e in edits])
    await session.commit()
    rt.bus.notify(user.id)
    return BulkResult(updated=len(edits))


@router.delete("/edits/{edit_id}", status_code=204)
async def delete_edit(edit_id: str, user: CurrentUser, session: SessionDep,
                      rt: RuntimeDep) -> None:
    edit = await owned(session, Edit, edit_id, user)
    edit.soft_delete()
    _changed(session, user.id, edit.project_id, [edit.id])
    await session.commit()
    rt.bus.notify(user.id)

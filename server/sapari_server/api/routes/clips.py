"""The upload flow: presign -> client PUTs bytes straight to storage -> confirm -> process_clip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
from fastapi import APIRouter, HTTPException
from sqlalchemy import func, select

from ... import keys
from ...db.base import new_id, utcnow
from ...db.models import Artifact, Clip, Project, Transcript
from ...events.log import record_event
from ...lifecycle import cascade
from ...lifecycle.quota import lock_user, used_bytes
from ...queue.submit import new_job, submit
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import (
    ArtifactOut,
    ClipOut,
    ClipPatch,
    ConfirmRequest,
    PresignOut,
    PresignRequest,
    TranscriptOut,
)
from . import upload_parts
from .upload_parts import call, complete, describe, find_upload, wants_multipart

router = APIRouter(tags=["clips"])
# Part URLs and the status of a multipart upload live beside the presign and confirm.
router.include_router(upload_parts.router)


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


@router.post("/projects/{project_id}/clips", response_model=PresignOut, status_code=201)
async def presign_upload(project_id: str, body: PresignRequest, user: CurrentUser,
                         session: SessionDep, rt: RuntimeDep) -> PresignOut:
    project = await owned(session, Project, project_id, user)
    quota = user.quota_bytes or rt.settings.quota_bytes
    if body.size > rt.settings.max_upload_bytes:
        raise HTTPException(413, f"file is {_mib(body.size)}; the largest upload accepted is "
                                 f"{_mib(rt.settings.max_upload_bytes)}")
    # Held until commit: concurrent presigns of one user see each other's reservations.
    await lock_user(session, user.id)
    used = await used_bytes(session, user.id, ttl=rt.settings.signed_url_ttl)
    if used + body.size > quota:
        raise HTTPException(413, f"upload of {_mib(body.size)} would exceed your quota "
                                 f"({_mib(used)} of {_mib(quota)} used): delete clips first")
    position = await session.scalar(select(func.count()).select_from(Clip).where(
        Clip.project_id == project.id, Clip.is_deleted.is_(False)))
    # The id is made here, so the key is known at once: one INSERT at commit, no flush and
    # UPDATE while the user's lock (on SQLite the database's write lock) is held.
    clip_id = new_id("clp")
    clip = Clip(id=clip_id, user_id=user.id, project_id=project.id, filename=body.filename,
                content_type=body.content_type, declared_size=body.size,
                position=int(position or 0),
                object_key=keys.clip_source(user.id, project.id, clip_id, body.filename))
    session.add(clip)
    await session.commit()
    ttl = rt.settings.signed_url_ttl
    url = rt.storage.presign_put(clip.object_key, max_size=body.size,
                                 content_type=body.content_type, expires_in=ttl)
    multipart = None
    if wants_multipart(rt, body.size, body.multipart):
        # Big files go in parts (resumable); the single PUT URL stays valid beside it.
        try:
            upload_id = await call(lambda: rt.storage.create_multipart(
                clip.object_key, content_type=body.content_type))
        except HTTPException:
            # The store is down: the clip it could not start goes, and so does its
            # reservation (it holds no bytes), instead of blocking the quota for an hour.
            clip.soft_delete()
            clip.purged_at = utcnow()
            await session.commit()
            raise
        multipart = describe(rt, clip, upload_id)
    return PresignOut(clip=ClipOut.model_validate(clip), upload_url=url,
                      headers={"Content-Type": body.content_type},
                      expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
                      multipart=multipart)


@router.post("/clips/{clip_id}/confirm", response_model=ClipOut)
async def confirm_upload(clip_id: str, user: CurrentUser, session: SessionDep,
                         rt: RuntimeDep, body: ConfirmRequest | None = None) -> Clip:
    clip = await owned(session, Clip, clip_id, user)
    if clip.status != "pending_upload":
        return clip  # confirming twice is harmless
    body = body or ConfirmRequest()
    info = await call(rt.storage.head, clip.object_key)
    if info is None:
        # A multipart upload is joined here, once every part has arrived whole.
        upload_id = await find_upload(rt, clip, body.upload_id)
        if upload_id is None:
            raise HTTPException(409, "no bytes have arrived for this clip yet: PUT the file "
                                     "to its upload_url, then confirm")
        try:
            await complete(rt, clip, upload_id, body.parts)
        except HTTPException:
            # A confirm beside this one may have joined the parts a moment ago.
            if await call(rt.storage.head, clip.object_key) is None:
                raise
        info = await call(rt.storage.head, clip.object_key)
        if info is None:
            raise HTTPException(409, "the multipart upload completed but its object is not "
                                     "there yet: confirm again in a moment")
    elif body.upload_id or clip.declared_size >= rt.settings.multipart_threshold:
        # The whole file came by the single PUT although parts were offered: drop them.
        # (A small upload skips the look-up, a store round trip; a part forced on one is
        # left to the sweep of abandoned uploads: `storage setup`'s rule on S3.)
        for stale in await call(rt.storage.pending_multipart, clip.object_key):
            await call(rt.storage.abort_multipart, clip.object_key, stale)
    problem = None
    if info.size == 0:
        problem = "the uploaded file is empty (0 bytes): upload the recording itself"
    elif info.size > clip.declared_size:
        problem = (f"the uploaded object is {info.size} bytes but {clip.declared_size} were "
                   "declared: presign again with the real size")
    else:
        quota = user.quota_bytes or rt.settings.quota_bytes
        await lock_user(session, user.id)
        # Everything else the user holds, without this clip's own reservation or bytes.
        others = await used_bytes(session, user.id, ttl=rt.settings.signed_url_ttl,
                                  except_clip=clip.id)
        if others + info.size > quota:
            problem = f"this upload would exceed your quota of {_mib(quota)}: delete clips first"
    if problem:
        # Rejected bytes are removed; the clip row stays (soft) as a record of the refusal.
        await anyio.to_thread.run_sync(rt.storage.delete, clip.object_key)
        clip.status = "failed"
        clip.purged_at = utcnow()  # its bytes are gone: they count no more
        clip.error = problem
        record_event(session, user_id=user.id, project_id=clip.project_id, type="ClipFailed",
                     payload={"clip_id": clip.id, "error": problem})
        await session.commit()
        rt.bus.notify(user.id)
        raise HTTPException(422, problem)
    clip.size = info.size
    clip.status = "uploaded"
    job = new_job(session, user_id=user.id, kind="process_clip", target_id=clip.id,
                  project_id=clip.project_id,
                  priority=body.priority)
    record_event(session, user_id=user.id, project_id=clip.project_id, type="ClipUploaded",
                 payload={"clip_id": clip.id, "size": info.size, "job_id": job.id})
    await session.commit()
    rt.bus.notify(user.id)
    await submit(rt, job)
    return clip


@router.get("/projects/{project_id}/clips", response_model=list[ClipOut])
async def list_clips(project_id: str, user: CurrentUser, session: SessionDep) -> list[Clip]:
    await owned(session, Project, project_id, user)
    rows = await session.scalars(select(Clip).where(
        Clip.project_id == project_id, Clip.is_deleted.is_(False))
        .order_by(Clip.position, Clip.created_at))
    return list(rows)


@router.get("/clips/{clip_id}", response_model=ClipOut)
async def get_clip(clip_id: str, user: CurrentUser, session: SessionDep) -> Clip:
    return await owned(session, Clip, clip_id, user)


@router.patch("/clips/{clip_id}", response_model=ClipOut)
async def patch_clip(clip_id: str, body: ClipPatch, user: CurrentUser,
                     session: SessionDep) -> Clip:
    """Rename a clip or move it to another place on the project's timeline."""
    clip = await owned(session, Clip, clip_id, user)
    if body.filename is not None:
        clip.filename = body.filename
    if body.position is not None:
        siblings = [c for c in await session.scalars(select(Clip).where(
            Clip.project_id == clip.project_id, Clip.is_deleted.is_(False))
            .order_by(Clip.position, Clip.created_at)) if c.id != clip.id]
        siblings.insert(min(body.position, len(siblings)), clip)
        for i, c in enumerate(siblings):
            c.position = i
    await session.commit()
    return clip


@router.delete("/clips/{clip_id}", status_code=204)
async def delete_clip(clip_id: str, user: CurrentUser, session: SessionDep) -> None:
    """Delete a clip with its artifacts, transcripts and edits (restorable for a while)."""
    clip = await owned(session, Clip, clip_id, user)
    await cascade.delete_clip(session, clip)
    await session.commit()


@router.post("/clips/{clip_id}/restore", response_model=ClipOut)
async def restore_clip(clip_id: str, user: CurrentUser, session: SessionDep,
                       rt: RuntimeDep) -> Clip:
    """Undo a clip delete within the retention period."""
    clip = await owned(session, Clip, clip_id, user, deleted=True)
    if clip.is_deleted:
        try:
            await cascade.restore_clip(session, clip, rt.settings.retention_days)
        except cascade.NotRestorable as e:
            raise HTTPException(410, str(e)) from None
        clip.updated_at = utcnow()
        await session.commit()
    return clip


@router.get("/clips/{clip_id}/artifacts", response_model=list[ArtifactOut])
async def list_artifacts(clip_id: str, user: CurrentUser, session: SessionDep,
                         rt: RuntimeDep) -> list[ArtifactOut]:
    await owned(session, Clip, clip_id, user)
    rows = await session.scalars(select(Artifact).where(
        Artifact.clip_id == clip_id, Artifact.is_deleted.is_(False)))
    ttl = rt.settings.signed_url_ttl
    return [ArtifactOut(id=a.id, kind=a.kind, size=a.size, meta=a.meta,
                        url=rt.storage.presign_get(a.object_key, expires_in=ttl))
            for a in rows]


@router.get("/clips/{clip_id}/transcript", response_model=TranscriptOut)
async def get_transcript(clip_id: str, user: CurrentUser, session: SessionDep) -> Transcript:
    await owned(session, Clip, clip_id, user)
    t = (await session.scalars(select(Transcript).where(
        Transcript.clip_id == clip_id, Transcript.is_deleted.is_(False))
        .order_by(Transcript.created_at.desc()))).first()
    if t is None:
        raise HTTPException(404, f"clip {clip_id} has no transcript yet: analyze its project "
                                 "with a transcriber (a local model or an API key)")
    return t

"""Import from URL: a Clip whose bytes a worker fetches (import_url), then processes as usual."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import func, select

from ... import keys
from ...db.models import Clip, Project
from ...lifecycle.quota import lock_user, used_bytes
from ...net import ssrf
from ...net.fetch import filename_from_url
from ...queue.submit import new_job, submit
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import ClipOut, ImportOut, ImportRequest

router = APIRouter(tags=["clips"])


@router.post("/projects/{project_id}/clips/import", response_model=ImportOut, status_code=202)
async def import_clip(project_id: str, body: ImportRequest, user: CurrentUser,
                      session: SessionDep, rt: RuntimeDep) -> ImportOut:
    """Fetch a video or audio file from a URL into the project (a worker downloads it).

    The URL is checked now where that needs no network (scheme, a literal address); the
    worker checks the rest (what the name resolves to, every redirect, size, type) and the
    clip fails with a ClipFailed event naming the reason.
    """
    project = await owned(session, Project, project_id, user)
    try:
        ssrf.check_static(body.url, ssrf.Policy.from_settings(
            rt.settings.import_allow_private, rt.settings.import_allow_networks))
    except ssrf.UnsafeURL as e:
        raise HTTPException(422, str(e)) from None
    quota = user.quota_bytes or rt.settings.quota_bytes
    await lock_user(session, user.id)
    used = await used_bytes(session, user.id, ttl=rt.settings.signed_url_ttl)
    if used >= quota:
        raise HTTPException(413, f"your quota of {quota / 1024**2:.1f} MiB is used up: delete "
                                 "clips first")
    filename = body.filename or filename_from_url(body.url) or "imported"
    position = await session.scalar(select(func.count()).select_from(Clip).where(
        Clip.project_id == project.id, Clip.is_deleted.is_(False)))
    # No bytes yet (size None, declared 0): the worker checks the quota while downloading.
    clip = Clip(user_id=user.id, project_id=project.id, filename=filename,
                declared_size=0, position=int(position or 0), object_key="",
                status="importing", origin={"kind": "url", "url": body.url})
    session.add(clip)
    await session.flush()
    clip.object_key = keys.clip_source(user.id, project.id, clip.id, filename)
    job = new_job(session, user_id=user.id, kind="import_url", target_id=clip.id,
                  project_id=project.id, priority=body.priority)
    await session.commit()
    await submit(rt, job)
    return ImportOut(clip=ClipOut.model_validate(clip), job_id=job.id)

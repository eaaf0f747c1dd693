"""Import from URL: a Clip whose bytes a worker fetches (import_url), then processes as usual."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from ...db.models import Project
from ...net import ssrf
from ...net.fetch import filename_from_url
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import ClipOut, ImportOut, ImportRequest
from ..worker_clips import clip_with_job, require_room

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
    await require_room(session, rt, user)
    clip, job = await clip_with_job(
        session, rt, user, project_id=project.id,
        filename=body.filename or filename_from_url(body.url) or "imported",
        status="importing", kind="import_url", priority=body.priority,
        origin={"kind": "url", "url": body.url})
    return ImportOut(clip=ClipOut.model_validate(clip), job_id=job.id)

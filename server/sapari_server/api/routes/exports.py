from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from ...db.models import Clip, Export, Project
from ...pipelines.bounds import size_problem, source_size
from ...queue.submit import new_job, submit
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import DownloadOut, ExportOut, ExportRequest

router = APIRouter(tags=["exports"])


@router.post("/projects/{project_id}/exports", response_model=ExportOut, status_code=202)
async def create_export(project_id: str, body: ExportRequest, user: CurrentUser,
                        session: SessionDep, rt: RuntimeDep) -> Export:
    project = await owned(session, Project, project_id, user)
    await _check_size(session, project.id, body, rt.settings.max_export_scale)
    exp = Export(user_id=user.id, project_id=project.id,
                 settings=body.model_dump(exclude={"priority"}))
    session.add(exp)
    await session.flush()
    job = new_job(session, user_id=user.id, kind="render_export", target_id=exp.id,
                  project_id=project.id, priority=body.priority)
    exp.job_id = job.id
    await session.commit()
    await submit(rt, job)
    return exp


async def _check_size(session: SessionDep, project_id: str, body: ExportRequest,
                      max_scale: float) -> None:
    if body.width is None and body.height is None:
        return
    infos = await session.scalars(select(Clip.media_info).where(
        Clip.project_id == project_id, Clip.is_deleted.is_(False)))
    problem = size_problem(body.width, body.height, source_size(infos), body.allow_upscale,
                           max_scale)
    if problem:
        raise HTTPException(422, problem)


@router.get("/exports/{export_id}", response_model=ExportOut)
async def get_export(export_id: str, user: CurrentUser, session: SessionDep) -> Export:
    return await owned(session, Export, export_id, user)


@router.get("/projects/{project_id}/exports", response_model=list[ExportOut])
async def list_exports(project_id: str, user: CurrentUser, session: SessionDep) -> list[Export]:
    await owned(session, Project, project_id, user)
    rows = await session.scalars(select(Export).where(
        Export.project_id == project_id, Export.is_deleted.is_(False))
        .order_by(Export.created_at))
    return list(rows)


@router.get("/exports/{export_id}/download", response_model=DownloadOut)
async def download(export_id: str, user: CurrentUser, session: SessionDep,
                   rt: RuntimeDep) -> DownloadOut:
    exp = await owned(session, Export, export_id, user)
    if exp.status != "succeeded" or not exp.object_key:
        detail = (f"export failed: {exp.error}" if exp.status == "failed"
                  else f"export is {exp.status}: wait for ExportComplete")
        raise HTTPException(409, detail)
    project = await owned(session, Project, exp.project_id, user)
    ttl = rt.settings.signed_url_ttl
    filename = f"{project.name}-cut.{exp.settings.get('container', 'mp4')}"
    return DownloadOut(url=rt.storage.presign_get(exp.object_key, expires_in=ttl,
                                                  filename=filename),
                       expires_at=datetime.now(UTC) + timedelta(seconds=ttl), filename=filename)

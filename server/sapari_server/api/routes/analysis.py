from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError
from sqlalchemy import select

from ...db.models import AnalysisRun, Project
from ...queue.submit import new_job, submit
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import AnalysisOut, AnalysisSettings, AnalyzeRequest

router = APIRouter(tags=["analysis"])


def _merged_settings(project: Project, asked: dict[str, Any]) -> dict[str, Any]:
    """The project's stored analysis defaults under this run's own, checked together: rows
    written before validation existed must not smuggle a bad value into a job."""
    stored = (project.settings or {}).get("analysis") or {}
    if not isinstance(stored, dict):
        stored = {"analysis": stored}  # reported below as an unknown field
    try:
        return AnalysisSettings.model_validate({**stored, **asked}).model_dump(
            exclude_none=True)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'analysis'}: {err['msg']}"
                             for err in e.errors())
        raise HTTPException(422, f"project {project.id} has invalid stored analysis settings "
                                 f"({problems}): pass valid values in this request's body or "
                                 "make a new project") from None


@router.post("/projects/{project_id}/analyze", response_model=AnalysisOut, status_code=202)
async def analyze(project_id: str, body: AnalyzeRequest, user: CurrentUser,
                  session: SessionDep, rt: RuntimeDep) -> AnalysisRun:
    project = await owned(session, Project, project_id, user)
    settings = _merged_settings(project, body.model_dump(exclude_none=True,
                                                         exclude={"priority"}))
    run = AnalysisRun(user_id=user.id, project_id=project.id, settings=settings)
    session.add(run)
    await session.flush()
    job = new_job(session, user_id=user.id, kind="analyze_project", target_id=run.id,
                  project_id=project.id, priority=body.priority)
    run.job_id = job.id
    await session.commit()
    await submit(rt, job)
    return run


@router.get("/analysis/{analysis_id}", response_model=AnalysisOut)
async def get_analysis(analysis_id: str, user: CurrentUser, session: SessionDep) -> AnalysisRun:
    return await owned(session, AnalysisRun, analysis_id, user)


@router.get("/projects/{project_id}/analyses", response_model=list[AnalysisOut])
async def list_analyses(project_id: str, user: CurrentUser,
                        session: SessionDep) -> list[AnalysisRun]:
    await owned(session, Project, project_id, user)
    rows = await session.scalars(select(AnalysisRun).where(
        AnalysisRun.project_id == project_id, AnalysisRun.is_deleted.is_(False))
        .order_by(AnalysisRun.created_at))
    return list(rows)

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from ...db.models import AnalysisRun, Project
from ...queue.submit import new_job, submit
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import AnalysisOut, AnalyzeRequest

router = APIRouter(tags=["analysis"])


@router.post("/projects/{project_id}/analyze", response_model=AnalysisOut, status_code=202)
async def analyze(project_id: str, body: AnalyzeRequest, user: CurrentUser,
                  session: SessionDep, rt: RuntimeDep) -> AnalysisRun:
    project = await owned(session, Project, project_id, user)
    settings = {**project.settings.get("analysis", {}),
                **body.model_dump(exclude_none=True, exclude={"priority"})}
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

from __future__ import annotations

from fastapi import APIRouter

from ...db.models import Job
from ..deps import CurrentUser, SessionDep, owned
from ..schemas import JobOut

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: str, user: CurrentUser, session: SessionDep) -> Job:
    return await owned(session, Job, job_id, user)

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from ...db.models import Job
from ...queue.jobs import cancel_job
from ...queue.tasks import fail_hook
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import JobOut

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: str, user: CurrentUser, session: SessionDep) -> Job:
    return await owned(session, Job, job_id, user)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
async def cancel(job_id: str, user: CurrentUser, session: SessionDep, rt: RuntimeDep) -> Job:
    """Cancel a queued or running job: it becomes ``cancelled``, its target fails with the
    reason "cancelled by the user", and a worker running it stops at its next report."""
    job = await owned(session, Job, job_id, user)
    on_fail = fail_hook(job.kind)
    done = await session.run_sync(lambda s: cancel_job(rt, s, job, on_fail))
    if not done:
        await session.rollback()
        job = await owned(session, Job, job_id, user)
        raise HTTPException(409, f"job {job_id} is already {job.status}: only queued or "
                                 "running jobs can be cancelled")
    await session.commit()
    rt.bus.notify(user.id)
    await session.refresh(job)
    return job

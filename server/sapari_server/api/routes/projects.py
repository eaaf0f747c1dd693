from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from ...db.models import Clip, Project
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import ProjectCreate, ProjectOut, UserOut

router = APIRouter(tags=["projects"])


@router.get("/me", response_model=UserOut)
async def me(user: CurrentUser, session: SessionDep, rt: RuntimeDep) -> UserOut:
    used = await used_bytes(session, user.id)
    return UserOut(id=user.id, name=user.name, used_bytes=used,
                   quota_bytes=user.quota_bytes or rt.settings.quota_bytes)


async def used_bytes(session: SessionDep, user_id: str) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(func.coalesce(Clip.size, Clip.declared_size)), 0))
        .where(Clip.user_id == user_id, Clip.is_deleted.is_(False),
               Clip.status != "failed"))
    return int(total or 0)


@router.post("/projects", response_model=ProjectOut, status_code=201)
async def create_project(body: ProjectCreate, user: CurrentUser, session: SessionDep) -> Project:
    project = Project(user_id=user.id, name=body.name, settings=body.settings)
    session.add(project)
    await session.commit()
    return project


@router.get("/projects", response_model=list[ProjectOut])
async def list_projects(user: CurrentUser, session: SessionDep) -> list[Project]:
    rows = await session.scalars(select(Project).where(
        Project.user_id == user.id, Project.is_deleted.is_(False)).order_by(Project.created_at))
    return list(rows)


@router.get("/projects/{project_id}", response_model=ProjectOut)
async def get_project(project_id: str, user: CurrentUser, session: SessionDep) -> Project:
    return await owned(session, Project, project_id, user)


@router.delete("/projects/{project_id}", status_code=204)
async def delete_project(project_id: str, user: CurrentUser, session: SessionDep) -> None:
    project = await owned(session, Project, project_id, user)
    project.soft_delete()
    await session.commit()

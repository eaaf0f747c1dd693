from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select

from ...db.base import utcnow
from ...db.models import ApiToken, Project
from ...lifecycle import cascade
from ...lifecycle.gc import purge_project
from ...lifecycle.quota import used_bytes
from ..deps import Credentials, CurrentUser, RuntimeDep, SessionDep, authenticate, owned
from ..schemas import ProjectCreate, ProjectOut, TokenOut, UserOut

router = APIRouter(tags=["projects"])


@router.get("/me", response_model=UserOut)
async def me(creds: Credentials, session: SessionDep, rt: RuntimeDep) -> UserOut:
    # One session for the token check and the usage: clients poll this route, and each
    # pooled connection checkout is a round trip to the database thread.
    user = await authenticate(session, creds)
    used = await used_bytes(session, user.id, ttl=rt.settings.signed_url_ttl)
    return UserOut(id=user.id, name=user.name, used_bytes=used,
                   quota_bytes=user.quota_bytes or rt.settings.quota_bytes,
                   email=user.email, notify_email=user.notify_email)


@router.get("/me/tokens", response_model=list[TokenOut])
async def list_tokens(user: CurrentUser, session: SessionDep) -> list[ApiToken]:
    rows = await session.scalars(select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.is_deleted.is_(False))
        .order_by(ApiToken.created_at))
    return list(rows)


@router.delete("/me/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, user: CurrentUser, session: SessionDep) -> None:
    """Revoke one of your tokens (the one in use too): it answers 401 from now on."""
    token = await owned(session, ApiToken, token_id, user)
    token.soft_delete()
    await session.commit()


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
async def delete_project(
    project_id: str, user: CurrentUser, session: SessionDep, rt: RuntimeDep,
    purge: Annotated[bool, Query(description="also remove its files now (no restore); "
                                             "otherwise restorable for retention_days")] = False,
) -> None:
    """Delete the project with its clips, artifacts, transcripts, edits, analyses, exports."""
    project = await owned(session, Project, project_id, user)
    await cascade.delete_project(session, project)
    await session.commit()
    if purge:
        await anyio.to_thread.run_sync(purge_project, rt, project.id)


@router.post("/projects/{project_id}/restore", response_model=ProjectOut)
async def restore_project(project_id: str, user: CurrentUser, session: SessionDep,
                          rt: RuntimeDep) -> Project:
    """Undo a delete within the retention period: what it deleted comes back."""
    project = await owned(session, Project, project_id, user, deleted=True)
    if project.is_deleted:
        try:
            await cascade.restore_project(session, project, rt.settings.retention_days)
        except cascade.NotRestorable as e:
            raise HTTPException(410, str(e)) from None
        project.updated_at = utcnow()
        await session.commit()
    return project

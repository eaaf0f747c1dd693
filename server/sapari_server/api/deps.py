"""Dependencies as ``Annotated`` aliases: the runtime, a DB session, the current user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import hash_token
from ..db.models import ApiToken, Clip, Project, User
from ..runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(rt: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with rt.async_session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
_bearer = HTTPBearer(auto_error=False)


def _missing() -> HTTPException:
    return HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                         headers={"WWW-Authenticate": "Bearer"})


async def authenticate(session: AsyncSession,
                       creds: HTTPAuthorizationCredentials | None) -> User:
    """The user a bearer token belongs to, or 401 (missing, unknown or revoked token)."""
    if creds is None:
        raise _missing()
    user = (await session.execute(
        select(User).join(ApiToken, ApiToken.user_id == User.id).where(
            ApiToken.token_hash == hash_token(creds.credentials),
            ApiToken.is_deleted.is_(False), User.is_deleted.is_(False))
    )).scalars().first()
    if user is None:
        raise HTTPException(401, "invalid or revoked API token",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def current_user(rt: RuntimeDep, creds: Credentials) -> User:
    # Its own short session: a long SSE stream must not hold a pooled connection.
    if creds is None:
        raise _missing()
    async with rt.async_session() as session:
        return await authenticate(session, creds)


CurrentUser = Annotated[User, Depends(current_user)]
M = TypeVar("M")


async def owned(session: AsyncSession, model: type[M], obj_id: str, user: User, *,
                deleted: bool = False) -> M:
    """The user's own, not deleted row, or 404: another user's ids look like missing ones.

    A row inside a deleted project (or of a deleted clip) is gone too: a project delete
    marks its rows, but this check also covers rows a running job wrote after the delete.
    ``deleted=True`` lets a soft-deleted row itself through (restore), not its parents.
    """
    obj = await session.get(model, obj_id)
    if (obj is None or obj.user_id != user.id  # type: ignore[attr-defined]
            or (obj.is_deleted and not deleted)  # type: ignore[attr-defined]
            or not await _parents_alive(session, obj)):
        raise HTTPException(404, f"{model.__name__.lower()} {obj_id} not found")
    return obj


async def _parents_alive(session: AsyncSession, obj: object) -> bool:
    project_id = getattr(obj, "project_id", None)
    clip_id = getattr(obj, "clip_id", None)
    if clip_id is not None:
        clip = await session.get(Clip, clip_id)
        if clip is None or clip.is_deleted:
            return False
        project_id = project_id or clip.project_id
    if project_id is not None and not isinstance(obj, Project):
        project = await session.get(Project, project_id)
        if project is None or project.is_deleted:
            return False
    return True

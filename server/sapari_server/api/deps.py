"""Dependencies as ``Annotated`` aliases: the runtime, a DB session, the current user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import hash_token
from ..db.models import ApiToken, User
from ..runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(rt: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with rt.async_session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
_bearer = HTTPBearer(auto_error=False)


async def current_user(
    rt: RuntimeDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    # Its own short session: a long SSE stream must not hold a pooled connection.
    if creds is None:
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    async with rt.async_session() as session:
        user = (await session.execute(
            select(User).join(ApiToken, ApiToken.user_id == User.id).where(
                ApiToken.token_hash == hash_token(creds.credentials),
                ApiToken.is_deleted.is_(False), User.is_deleted.is_(False))
        )).scalars().first()
    if user is None:
        raise HTTPException(401, "invalid or revoked API token",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(current_user)]
M = TypeVar("M")


async def owned(session: AsyncSession, model: type[M], obj_id: str, user: User) -> M:
    """The user's own, not deleted row, or 404: another user's ids look like missing ones."""
    obj = await session.get(model, obj_id)
    if obj is None or obj.is_deleted or obj.user_id != user.id:  # type: ignore[attr-defined]
        raise HTTPException(404, f"{model.__name__.lower()} {obj_id} not found")
    return obj

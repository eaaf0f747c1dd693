"""Clips whose bytes a worker makes (URL imports, asset edits): made here with their job."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .. import keys
from ..db.models import Clip, Job, User
from ..lifecycle.quota import lock_user, used_bytes
from ..queue.submit import new_job, submit
from ..runtime import Runtime


async def require_room(session: AsyncSession, rt: Runtime, user: User) -> None:
    """413 when the user's quota is used up (the worker checks the real size later)."""
    quota = user.quota_bytes or rt.settings.quota_bytes
    await lock_user(session, user.id)
    used = await used_bytes(session, user.id, ttl=rt.settings.signed_url_ttl)
    if used >= quota:
        raise HTTPException(413, f"your quota of {quota / 1024**2:.1f} MiB is used up: delete "
                                 "clips first")


async def clip_with_job(session: AsyncSession, rt: Runtime, user: User, *, project_id: str,
                        filename: str, status: str, kind: str, priority: str,
                        **columns: Any) -> tuple[Clip, Job]:
    """A new clip at the end of the project, no bytes yet (size None, declared 0), and the
    job that will make them; committed, then queued."""
    position = await session.scalar(select(func.count()).select_from(Clip).where(
        Clip.project_id == project_id, Clip.is_deleted.is_(False)))
    clip = Clip(user_id=user.id, project_id=project_id, filename=filename, declared_size=0,
                position=int(position or 0), object_key="", status=status, **columns)
    session.add(clip)
    await session.flush()
    clip.object_key = keys.clip_source(user.id, project_id, clip.id, filename)
    job = new_job(session, user_id=user.id, kind=kind, target_id=clip.id,
                  project_id=project_id, priority=priority)
    await session.commit()
    await submit(rt, job)
    return clip, job

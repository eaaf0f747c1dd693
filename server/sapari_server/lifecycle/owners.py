"""Which rows own an object key: signed URLs work only while a live row needs the object."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.base import utcnow
from ..db.models import Artifact, Clip, Export, Project
from .quota import reservation_cutoff


async def waiting_clip(session: AsyncSession, key: str, *, ttl: float,
                       now: datetime | None = None) -> Clip | None:
    """The live clip still waiting for its bytes under ``key``, if any.

    A signed PUT URL writes only while this holds: not after the clip or its project was
    deleted, not after confirm (that would replace a processed source), and not after the
    reservation expired (the bytes would no longer count against the quota).
    """
    return (await session.scalars(
        select(Clip).where(Clip.object_key == key, *_waiting(now or utcnow(), ttl)))).first()


def _waiting(now: datetime, ttl: float) -> list[object]:
    return [Clip.status == "pending_upload", Clip.is_deleted.is_(False),
            Clip.purged_at.is_(None), Clip.created_at > reservation_cutoff(now, ttl),
            Clip.project_id.in_(select(Project.id).where(Project.is_deleted.is_(False)))]


async def land(session: AsyncSession, clip_id: str, size: int, *, ttl: float,
               now: datetime | None = None) -> bool:
    """Record the size of bytes that arrived for a clip still waiting for them.

    One conditional write, so the check and the record cannot be split by a delete or a
    confirm; False (nothing written) when the clip no longer waits.
    """
    result = await session.execute(
        update(Clip).where(Clip.id == clip_id, *_waiting(now or utcnow(), ttl))
        .values(size=size).execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def has_live_owner(session: AsyncSession, key: str) -> bool:
    """A row that is not deleted, in a project that is not deleted, names this object."""
    live_project = Project.is_deleted.is_(False)
    owners = union_all(
        select(Clip.id).join(Project, Project.id == Clip.project_id).where(
            Clip.object_key == key, Clip.is_deleted.is_(False), Clip.purged_at.is_(None),
            live_project),
        select(Artifact.id).join(Clip, Clip.id == Artifact.clip_id)
        .join(Project, Project.id == Clip.project_id).where(
            Artifact.object_key == key, Artifact.is_deleted.is_(False),
            Artifact.purged_at.is_(None), Clip.is_deleted.is_(False), live_project),
        select(Export.id).join(Project, Project.id == Export.project_id).where(
            Export.object_key == key, Export.is_deleted.is_(False),
            Export.purged_at.is_(None), live_project),
    ).subquery()
    return (await session.execute(select(owners.c.id).limit(1))).first() is not None

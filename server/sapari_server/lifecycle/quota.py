"""Used bytes: one definition for /me, presign and confirm.

Every byte on disk that a user's rows own counts, whatever the row's status (a clip whose
processing failed keeps its bytes) and whether or not the row is soft-deleted, until the
lifecycle purges the object (``purged_at``). On top come the reservations of presigned
uploads still waiting for their bytes, until the upload URL expires or its clip or project
is deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, func, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.models import Artifact, Clip, Export, Project, User


def reservation_cutoff(now: datetime, ttl: float) -> datetime:
    """Pending uploads created before this no longer hold their reservation."""
    return now - timedelta(seconds=ttl)


def usage_query(user_id: str, *, ttl: float, now: datetime | None = None,
                except_clip: str | None = None) -> Select:
    """``(stored, reserved)`` bytes of one user, as one SELECT (``except_clip``: leave out
    that clip's own source, to check what it may add)."""
    now = now or utcnow()
    others = [] if except_clip is None else [Clip.id != except_clip]
    objects = union_all(
        select(Clip.object_key.label("key"), Clip.size.label("size")).where(
            Clip.user_id == user_id, Clip.size.is_not(None), Clip.purged_at.is_(None),
            *others),
        select(Artifact.object_key, Artifact.size).where(
            Artifact.user_id == user_id, Artifact.purged_at.is_(None)),
        select(Export.object_key, Export.size).where(
            Export.user_id == user_id, Export.object_key.is_not(None),
            Export.size.is_not(None), Export.purged_at.is_(None)),
    ).subquery()
    # One object can be named by several rows (re-processing writes its artifacts under
    # the same keys and soft-deletes the old rows): count each object once.
    per_key = (select(objects.c.key, func.max(objects.c.size).label("size"))
               .group_by(objects.c.key).subquery())
    stored = select(func.coalesce(func.sum(per_key.c.size), 0)).scalar_subquery()
    # A pending clip holds its declared size; bytes that already landed (``size``, set by
    # the storage route) are counted above, so only the rest is reserved.
    reserved = (
        select(func.coalesce(func.sum(Clip.declared_size - func.coalesce(Clip.size, 0)), 0))
        .join(Project, Project.id == Clip.project_id)
        .where(Clip.user_id == user_id, Clip.status == "pending_upload",
               Clip.is_deleted.is_(False), Project.is_deleted.is_(False),
               Clip.purged_at.is_(None), *others,
               Clip.created_at > reservation_cutoff(now, ttl))
        .scalar_subquery())
    return select(stored, reserved)


async def used_bytes(session: AsyncSession, user_id: str, *, ttl: float,
                     now: datetime | None = None, except_clip: str | None = None) -> int:
    row = (await session.execute(usage_query(user_id, ttl=ttl, now=now,
                                             except_clip=except_clip))).one()
    return int(row[0] or 0) + max(int(row[1] or 0), 0)


def used_bytes_sync(session: Session, user_id: str, *, ttl: float,
                    now: datetime | None = None) -> int:
    row = session.execute(usage_query(user_id, ttl=ttl, now=now)).one()
    return int(row[0] or 0) + max(int(row[1] or 0), 0)


async def lock_user(session: AsyncSession, user_id: str) -> None:
    """Serialise quota decisions per user until the transaction ends.

    A write to the user's row is portable: it takes the row lock on PostgreSQL and the
    database write lock on SQLite, so a second presign waits here and then reads a usage
    that includes the first one's reservation (no check-then-act race).
    """
    await session.execute(update(User).where(User.id == user_id).values(updated_at=utcnow()))

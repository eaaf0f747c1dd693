"""Deletes that take their dependants along, and restores that bring back exactly those.

Every row a delete marks gets the same ``deleted_at``, so a restore brings back what that
delete took and nothing that was deleted on its own before (an edit rejected and deleted,
artifacts replaced by re-processing).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, Update, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.base import utcnow
from ..db.models import AnalysisRun, Artifact, Clip, Edit, Export, Project, Transcript


class NotRestorable(Exception):
    """The rows are gone for good (purged) or past the retention period."""


def _mark(model: Any, when: datetime | None, *where: Any) -> Update:
    """Delete (``when`` given) or restore (None) the rows of ``model`` matching ``where``."""
    values = ({"is_deleted": True, "deleted_at": when} if when is not None
              else {"is_deleted": False, "deleted_at": None})
    return update(model).where(*where).values(**values).execution_options(
        synchronize_session=False)


def _state(model: Any, when: datetime | None, deleted_at: datetime | None) -> list[Any]:
    """Deleting touches live rows; restoring touches the rows deleted at ``deleted_at``."""
    if when is not None:
        return [model.is_deleted.is_(False)]
    return [model.is_deleted.is_(True), model.deleted_at == deleted_at]


def _clip_children(clip_ids: Any, when: datetime | None, deleted_at: datetime | None
                   ) -> list[Update]:
    return [_mark(m, when, m.clip_id.in_(clip_ids), *_state(m, when, deleted_at))
            for m in (Artifact, Transcript, Edit)]


def _project_rows(pid: str, when: datetime | None, deleted_at: datetime | None
                  ) -> list[Update]:
    clip_ids = select(Clip.id).where(Clip.project_id == pid)
    # Children first: restoring must see the same clip ids either way (they do not
    # depend on the clips' own flags).
    return _clip_children(clip_ids, when, deleted_at) + [
        _mark(m, when, m.project_id == pid, *_state(m, when, deleted_at))
        for m in (Clip, AnalysisRun, Export)]


async def delete_project(session: AsyncSession, project: Project) -> datetime:
    """Soft-delete the project and everything in it, all at one ``deleted_at``."""
    when = utcnow()
    for stmt in _project_rows(project.id, when, None):
        await session.execute(stmt)
    project.is_deleted, project.deleted_at = True, when
    return when


async def delete_clip(session: AsyncSession, clip: Clip) -> datetime:
    """Soft-delete a clip with its artifacts, transcripts and edits."""
    when = utcnow()
    for stmt in _clip_children([clip.id], when, None):
        await session.execute(stmt)
    clip.is_deleted, clip.deleted_at = True, when
    return when


def _check(deleted_at: datetime | None, retention_days: float, what: str) -> None:
    if deleted_at is None:
        return
    if utcnow() - _aware(deleted_at) > timedelta(days=retention_days):
        raise NotRestorable(f"{what} was deleted more than {retention_days:g} days ago and its "
                            "files are being removed: it can no longer be restored")


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


async def _purged(session: AsyncSession, stmts: list[Select[Any]], when: datetime | None,
                  retention_days: float) -> bool:
    """Whether this delete's rows lost their objects.

    A row deleted with this delete and purged since, or any row purged sooner than the
    retention period after its delete: only an explicit purge (``?purge=true``) does that,
    and it makes the whole delete final.
    """
    keep = timedelta(days=retention_days)
    for stmt in stmts:
        for deleted_at, purged_at in await session.execute(stmt):
            if deleted_at is None:
                continue
            if deleted_at == when or _aware(purged_at) - _aware(deleted_at) < keep:
                return True
    return False


async def restore_project(session: AsyncSession, project: Project,
                          retention_days: float) -> None:
    when = project.deleted_at
    _check(when, retention_days, f"project {project.name!r}")
    pid = project.id
    clip_ids = select(Clip.id).where(Clip.project_id == pid)
    if await _purged(session, [
        select(m.deleted_at, m.purged_at).where(m.purged_at.is_not(None), where)
        for m, where in ((Clip, Clip.project_id == pid), (Export, Export.project_id == pid),
                         (Artifact, Artifact.clip_id.in_(clip_ids)))], when, retention_days):
        raise NotRestorable(f"project {project.name!r} was purged: its files are gone and it "
                            "can no longer be restored")
    for stmt in _project_rows(pid, None, when):
        await session.execute(stmt)
    project.is_deleted, project.deleted_at = False, None


async def restore_clip(session: AsyncSession, clip: Clip, retention_days: float) -> None:
    when = clip.deleted_at
    _check(when, retention_days, f"clip {clip.filename!r}")
    if clip.purged_at is not None or await _purged(session, [
        select(Artifact.deleted_at, Artifact.purged_at).where(
            Artifact.clip_id == clip.id, Artifact.purged_at.is_not(None))], when,
            retention_days):
        raise NotRestorable(f"clip {clip.filename!r} was purged: its file is gone and it can "
                            "no longer be restored; upload it again")
    for stmt in _clip_children([clip.id], None, when):
        await session.execute(stmt)
    clip.is_deleted, clip.deleted_at = False, None

"""Purge: remove the objects that only long-deleted rows own, and free their quota.

Rows are never deleted, only marked ``purged_at`` (their bytes are gone, the record stays).
An object is removed only when no other row names it: re-processing writes its artifacts
under the same keys as the rows it replaced, and those new rows must keep their files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.models import Artifact, Clip, Export, Project

if TYPE_CHECKING:
    from ..runtime import Runtime

MODELS: dict[str, Any] = {"clip": Clip, "artifact": Artifact, "export": Export}


@dataclass
class GcReport:
    dry_run: bool = False
    objects: int = 0
    bytes: int = 0
    # One entry per object removed (or, in a dry run, that would be): kind, id, key, size.
    items: list[dict[str, Any]] = field(default_factory=list)
    # Incomplete multipart uploads of those clips dropped (or, in a dry run, to drop).
    multipart: int = 0

    def describe(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        text = f"{verb} {self.objects} object{'s' * (self.objects != 1)}, {_human(self.bytes)}"
        if self.multipart:
            text += (f"; {'would drop' if self.dry_run else 'dropped'} {self.multipart} "
                     f"unfinished multipart upload{'s' * (self.multipart != 1)}")
        return text


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    if n < 1024**3:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024**3:.2f} GiB"


def _dead(model: Any, cutoff: datetime | None) -> Any:
    """Soft-deleted (before ``cutoff`` when one is given)."""
    if cutoff is None:
        return model.is_deleted.is_(True)
    return and_(model.is_deleted.is_(True), model.deleted_at < cutoff)


def _candidates(*, cutoff: datetime | None, pending_before: datetime | None,
                project_id: str | None) -> list[tuple[str, Select[Any]]]:
    """Per kind, the rows whose object may go: (id, object_key, recorded size)."""
    scope = [] if project_id is None else [Project.id == project_id]
    clip_dead = [_dead(Clip, cutoff), _dead(Project, cutoff)]
    if pending_before is not None:
        # A presigned upload never confirmed: its reservation lapsed long ago, but a PUT
        # may have landed bytes nobody will ever use.
        clip_dead.append(and_(Clip.status == "pending_upload",
                              Clip.created_at < pending_before))
    clips = (select(Clip.id, Clip.object_key, Clip.size)
             .join(Project, Project.id == Clip.project_id)
             .where(Clip.purged_at.is_(None), Clip.object_key != "", or_(*clip_dead), *scope))
    artifacts = (select(Artifact.id, Artifact.object_key, Artifact.size)
                 .join(Clip, Clip.id == Artifact.clip_id)
                 .join(Project, Project.id == Clip.project_id)
                 .where(Artifact.purged_at.is_(None),
                        or_(_dead(Artifact, cutoff), _dead(Clip, cutoff),
                            _dead(Project, cutoff)), *scope))
    exports = (select(Export.id, Export.object_key, Export.size)
               .join(Project, Project.id == Export.project_id)
               .where(Export.purged_at.is_(None), Export.object_key.is_not(None),
                      or_(_dead(Export, cutoff), _dead(Project, cutoff)), *scope))
    return [("clip", clips), ("artifact", artifacts), ("export", exports)]


def _other_owners(s: Session, keys: set[str], ids: set[str]) -> set[str]:
    """Keys among ``keys`` that a row outside the candidates still names (not yet purged)."""
    held: set[str] = set()
    todo = sorted(keys)
    for i in range(0, len(todo), 500):
        batch = todo[i:i + 500]
        for model in MODELS.values():
            for row_id, key in s.execute(select(model.id, model.object_key).where(
                    model.object_key.in_(batch), model.purged_at.is_(None))):
                if row_id not in ids:
                    held.add(key)
    return held


def _abort_pending(rt: Runtime, key: str, dry_run: bool) -> int:
    uploads = rt.storage.pending_multipart(key)
    if not dry_run:
        for upload_id in uploads:
            rt.storage.abort_multipart(key, upload_id)
    return len(uploads)


def _purge(rt: Runtime, *, cutoff: datetime | None, pending_before: datetime | None,
           project_id: str | None, dry_run: bool, now: datetime) -> GcReport:
    report = GcReport(dry_run=dry_run)
    with rt.sync_session() as s, s.begin():
        rows: list[tuple[str, str, str, int | None]] = []
        for kind, query in _candidates(cutoff=cutoff, pending_before=pending_before,
                                       project_id=project_id):
            rows += [(kind, r.id, r.object_key, r.size) for r in s.execute(query)]
        if not rows:
            return report
        held = _other_owners(s, {r[2] for r in rows}, {r[1] for r in rows})
        seen: set[str] = set()
        for kind, row_id, key, _size in rows:
            if key in held or key in seen:
                continue
            seen.add(key)
            if kind == "clip":
                # A multipart upload never completed holds its parts, not the object: drop
                # them too (S3/R2 also expire them by the rule `storage setup` applies).
                report.multipart += _abort_pending(rt, key, dry_run)
            info = rt.storage.head(key)
            if info is None:
                continue  # already gone (a refused upload, an earlier interrupted purge)
            if not dry_run:
                rt.storage.delete(key)
            report.objects += 1
            report.bytes += info.size
            report.items.append({"kind": kind, "id": row_id, "key": key, "size": info.size})
        if dry_run:
            s.rollback()
            return report
        # Objects first, then the marks: a purge cut short is simply done again next time.
        for kind, model in MODELS.items():
            ids = [r[1] for r in rows if r[0] == kind]
            for i in range(0, len(ids), 500):
                s.execute(update(model).where(model.id.in_(ids[i:i + 500]))
                          .values(purged_at=now).execution_options(synchronize_session=False))
    return report


def collect(rt: Runtime, *, dry_run: bool = False, now: datetime | None = None) -> GcReport:
    """Purge what has been deleted longer than ``retention_days`` (and stray upload bytes)."""
    now = now or utcnow()
    cutoff = now - timedelta(days=rt.settings.retention_days)
    pending_before = cutoff - timedelta(seconds=rt.settings.signed_url_ttl)
    return _purge(rt, cutoff=cutoff, pending_before=pending_before, project_id=None,
                  dry_run=dry_run, now=now)


def purge_project(rt: Runtime, project_id: str) -> GcReport:
    """Remove now the objects of a project's deleted rows (all of them, once it is deleted)."""
    return _purge(rt, cutoff=None, pending_before=None, project_id=project_id, dry_run=False,
                  now=utcnow())

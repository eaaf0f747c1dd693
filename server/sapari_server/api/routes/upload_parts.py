"""Multipart uploads: big files travel as parts, each PUT straight to storage by its own URL.

One path for every backend (the local folder and S3/R2). The presign response names the
upload (id, part size, part count); a client asks ``POST /clips/{id}/parts`` for the URLs
of any parts it wants to send, ``GET /clips/{id}/parts`` for what the storage already holds
(this is how an upload resumes after a dropped connection), and the usual confirm completes
the upload before it checks the object. Nothing is stored beside the upload: the part size
is a function of the declared size and the settings, the upload id is the storage's own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import anyio
from fastapi import APIRouter, HTTPException, Query

from ...db.models import Clip
from ...lifecycle.owners import waiting_clip
from ...runtime import Runtime
from ...storage.base import MultipartError, PartInfo, StorageError
from ...storage.multipart import PartPlan, plan
from ..deps import CurrentUser, RuntimeDep, SessionDep, owned
from ..schemas import (
    CompletedPart,
    MultipartOut,
    MultipartStatusOut,
    PartOut,
    PartUrl,
    PartUrlsOut,
    PartUrlsRequest,
)

router = APIRouter(tags=["clips"])
T = TypeVar("T")
NOT_WAITING = ("this clip no longer waits for bytes: it was deleted, already confirmed, or "
               "its reservation expired; presign the upload again")


def part_plan(rt: Runtime, declared_size: int) -> PartPlan:
    return plan(declared_size, rt.settings.multipart_part_size, rt.storage.min_part_size)


def wants_multipart(rt: Runtime, size: int, asked: bool | None) -> bool:
    return size >= rt.settings.multipart_threshold if asked is None else asked


def parts_url(clip_id: str) -> str:
    return f"/clips/{clip_id}/parts"


def describe(rt: Runtime, clip: Clip, upload_id: str) -> MultipartOut:
    p = part_plan(rt, clip.declared_size)
    return MultipartOut(upload_id=upload_id, part_size=p.part_size, part_count=p.part_count,
                        parts_url=parts_url(clip.id))


async def call(fn: Callable[..., T], *args: object) -> T:
    """A blocking storage call in a worker thread; its failures as clear HTTP errors."""
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except MultipartError as e:
        raise HTTPException(409, str(e)) from None
    except StorageError as e:
        # The store itself failed (down, credentials): not the client's fault.
        raise HTTPException(503, f"storage is unavailable: {e}") from None


async def find_upload(rt: Runtime, clip: Clip, upload_id: str | None) -> str | None:
    """The clip's multipart upload in progress (the one named, when named), or None."""
    pending = await call(rt.storage.pending_multipart, clip.object_key)
    if upload_id is not None:
        if upload_id not in pending:
            raise HTTPException(409, f"no multipart upload {upload_id!r} in progress for clip "
                                     f"{clip.id}: it was completed or aborted, or belongs to "
                                     "another clip; presign again")
        return upload_id
    return pending[0] if pending else None


async def _need_upload(rt: Runtime, clip: Clip, upload_id: str | None) -> str:
    found = await find_upload(rt, clip, upload_id)
    if found is None:
        raise HTTPException(409, f"clip {clip.id} has no multipart upload in progress: it was "
                                 "presigned for one PUT of the whole file (use its upload_url), "
                                 "or its parts were joined already")
    return found


def _status(rt: Runtime, clip: Clip, upload_id: str,
            held: list[PartInfo]) -> MultipartStatusOut:
    p = part_plan(rt, clip.declared_size)
    # A part counts only when whole: a short one (a PUT cut off mid-way on a store that
    # keeps it) must be sent again.
    whole = {h.part_number: h for h in held
             if h.part_number <= p.part_count and h.size == p.part_length(h.part_number)}
    return MultipartStatusOut(
        upload_id=upload_id, part_size=p.part_size, part_count=p.part_count,
        parts_url=parts_url(clip.id),
        uploaded=[PartOut(part_number=h.part_number, size=h.size, etag=h.etag)
                  for h in whole.values()],
        missing=[n for n in range(1, p.part_count + 1) if n not in whole])


@router.get("/clips/{clip_id}/parts", response_model=MultipartStatusOut)
async def multipart_status(clip_id: str, user: CurrentUser, session: SessionDep,
                           rt: RuntimeDep,
                           upload_id: Annotated[str | None, Query(max_length=1024)] = None,
                           ) -> MultipartStatusOut:
    """Which parts the storage holds and which are missing: resume by sending the rest."""
    clip = await owned(session, Clip, clip_id, user)
    if clip.status != "pending_upload":
        raise HTTPException(409, f"clip {clip.id} is {clip.status}: its upload is complete")
    uid = await _need_upload(rt, clip, upload_id)
    held = await call(rt.storage.list_parts, clip.object_key, uid)
    return _status(rt, clip, uid, held)


@router.post("/clips/{clip_id}/parts", response_model=PartUrlsOut)
async def part_urls(clip_id: str, body: PartUrlsRequest, user: CurrentUser,
                    session: SessionDep, rt: RuntimeDep) -> PartUrlsOut:
    """Signed PUT URLs for any of the upload's parts (each bound to its exact size)."""
    clip = await owned(session, Clip, clip_id, user)
    if await waiting_clip(session, clip.object_key, ttl=rt.settings.signed_url_ttl) is None:
        raise HTTPException(409, NOT_WAITING)
    p = part_plan(rt, clip.declared_size)
    wrong = sorted({n for n in body.part_numbers if not 1 <= n <= p.part_count})
    if wrong:
        raise HTTPException(422, f"part numbers {wrong} are outside 1..{p.part_count}: the "
                                 f"file is {p.part_count} parts of {p.part_size} bytes")
    uid = await _need_upload(rt, clip, body.upload_id)
    ttl = rt.settings.signed_url_ttl
    parts = [PartUrl(part_number=n, size=p.part_length(n), offset=p.part_offset(n),
                     url=rt.storage.presign_part(clip.object_key, uid, n,
                                                 size=p.part_length(n), expires_in=ttl))
             for n in sorted(set(body.part_numbers))]
    return PartUrlsOut(upload_id=uid, parts=parts,
                       expires_at=datetime.now(UTC) + timedelta(seconds=ttl))


async def complete(rt: Runtime, clip: Clip, upload_id: str,
                   parts: list[CompletedPart] | None) -> None:
    """Join the parts into the clip's object, after checking every one is there and whole."""
    p = part_plan(rt, clip.declared_size)
    if parts is not None:
        numbers = [x.part_number for x in parts]
        if len(parts) != p.part_count or sorted(numbers) != list(range(1, p.part_count + 1)):
            raise HTTPException(422, f"confirm lists {len(parts)} parts but this upload has "
                                     f"{p.part_count} (of {p.part_size} bytes): list each part "
                                     f"1..{p.part_count} once with its ETag, or omit parts")
    held = await call(rt.storage.list_parts, clip.object_key, upload_id)
    status = _status(rt, clip, upload_id, held)
    if status.missing:
        shown = ", ".join(map(str, status.missing[:20])) + (
            ", …" if len(status.missing) > 20 else "")
        raise HTTPException(409, f"{len(status.missing)} of {p.part_count} parts have not "
                                 f"arrived whole (parts {shown}): PUT them to URLs from POST "
                                 f"{parts_url(clip.id)}, then confirm again")
    have = {x.part_number: x.etag for x in status.uploaded}
    if parts is not None:
        for x in sorted(parts, key=lambda x: x.part_number):
            if x.etag.strip().strip('"') != have[x.part_number]:
                raise HTTPException(409, f"part {x.part_number}'s ETag {x.etag!r} is not the "
                                         "one the storage holds (the part was sent again?): "
                                         f"GET {parts_url(clip.id)} and confirm with its ETags")
    await call(rt.storage.complete_multipart, clip.object_key, upload_id,
               sorted(have.items()))

"""The local storage backend's signed-URL endpoints: bytes in and out, no token.

Mounted only when storage is the local folder; with S3/R2 clients talk to the bucket.
A valid signature is necessary but not enough: the URL works only while a live row needs
the object (a PUT while its clip waits for bytes, a GET while a row not deleted owns it).
Every file operation runs in a worker thread: the event loop serves other requests
while an upload streams in.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from ...lifecycle.owners import has_live_owner, land, waiting_clip
from ...storage.base import MultipartError, StorageError
from ...storage.local import LocalStorage
from ...storage.media_types import media_type
from ...storage.signing import part_scope, verify
from ..deps import RuntimeDep

router = APIRouter(tags=["storage"], include_in_schema=False)
# Write to disk in batches of this size: few thread hops, bounded memory per upload.
BATCH = 1 << 20
NOT_WRITABLE = ("this upload URL no longer accepts bytes: its clip was deleted, already "
                "confirmed, or its reservation expired; presign the upload again")


def _local(rt: RuntimeDep) -> LocalStorage:
    assert isinstance(rt.storage, LocalStorage)
    return rt.storage


def _check(storage: LocalStorage, method: str, key: str, expires: int, signature: str,
           max_size: int | None = None, filename: str | None = None,
           scope: str | None = None) -> Path:
    reason = verify(storage.secret, method, scope or key, expires, signature, max_size,
                    filename=filename)
    if reason:
        raise HTTPException(403, reason)
    try:
        return storage.path(key)
    except StorageError as e:
        raise HTTPException(400, str(e)) from None


async def _writable(request: Request, rt: RuntimeDep, key: str) -> str | None:
    """The id of the clip waiting for these bytes, or None. A short session: an upload
    must not hold a pooled connection while its bytes stream in."""
    async with _db_gate(request), rt.async_session() as session:
        clip = await waiting_clip(session, key, ttl=rt.settings.signed_url_ttl)
        return clip.id if clip is not None else None


def _too_big(max_size: int) -> HTTPException:
    return HTTPException(413, f"body is larger than the {max_size} bytes declared when this "
                              "URL was made: presign again with the real size")


@router.put("/storage/{key:path}", response_model=None)
async def put_object(key: str, request: Request, rt: RuntimeDep,
                     expires: Annotated[int, Query()], signature: Annotated[str, Query()],
                     max_size: Annotated[int, Query()],
                     upload_id: Annotated[str | None, Query(max_length=64)] = None,
                     part_number: Annotated[int | None, Query(ge=1, le=10_000)] = None,
                     ) -> dict[str, object] | JSONResponse:
    storage = _local(rt)
    if upload_id is not None or part_number is not None:
        if upload_id is None or part_number is None:
            raise HTTPException(400, "a part upload needs both upload_id and part_number: "
                                     "use the URL the API signed for the part")
        return await _put_part(key, request, rt, storage, expires, signature, max_size,
                               upload_id, part_number)
    _check(storage, "PUT", key, expires, signature, max_size)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_size:
        raise _too_big(max_size)
    clip_id = await _writable(request, rt, key)
    if clip_id is None:
        raise HTTPException(409, NOT_WRITABLE)
    tmp, f = await anyio.to_thread.run_sync(storage.open_upload, key)
    try:
        size = await _receive(request, f, max_size)
        # The clip may have been deleted or confirmed while the bytes streamed in; if it
        # still waits, the bytes count against the quota from now on, confirmed or not.
        async with _db_gate(request), rt.async_session() as session:
            if not await land(session, clip_id, size, ttl=rt.settings.signed_url_ttl):
                raise HTTPException(409, NOT_WRITABLE)
            await session.commit()
        info = await anyio.to_thread.run_sync(storage.commit_upload, tmp, key)
    finally:
        await anyio.to_thread.run_sync(_discard, f, tmp)
    return {"key": key, "size": info.size}


def _db_gate(request: Request) -> anyio.CapacityLimiter:
    # Uploads reach the database two at a time: twenty that start or finish together
    # would otherwise take every pooled connection (and queue on SQLite's write lock
    # holding them), and requests that only read, like GET /me, would wait behind them.
    state = request.app.state
    gate = getattr(state, "upload_db_gate", None)
    if gate is None:
        gate = state.upload_db_gate = anyio.CapacityLimiter(2)
    return gate


async def _receive(request: Request, f: BinaryIO, max_size: int,
                   digest: Any | None = None) -> int:
    size = 0
    batch: list[bytes] = []
    pending = 0

    def write(data: bytes) -> None:
        f.write(data)
        if digest is not None:
            digest.update(data)

    async for chunk in request.stream():
        size += len(chunk)
        if size > max_size:
            raise _too_big(max_size)
        batch.append(chunk)
        pending += len(chunk)
        if pending >= BATCH:
            data, batch, pending = b"".join(batch), [], 0
            await anyio.to_thread.run_sync(write, data)
    if batch:
        await anyio.to_thread.run_sync(write, b"".join(batch))
    await anyio.to_thread.run_sync(f.close)
    return size


async def _put_part(key: str, request: Request, rt: RuntimeDep, storage: LocalStorage,
                    expires: int, signature: str, max_size: int, upload_id: str,
                    part_number: int) -> JSONResponse:
    """One part of a multipart upload: staged beside the others, answered with its ETag
    (the MD5 of its bytes, as S3 does), joined into the object by the API's confirm."""
    _check(storage, "PUT-PART", key, expires, signature, max_size,
           scope=part_scope(key, upload_id, part_number))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_size:
        raise _too_big(max_size)
    if await _writable(request, rt, key) is None:
        raise HTTPException(409, NOT_WRITABLE)
    try:
        tmp, f = await anyio.to_thread.run_sync(storage.open_part, key, upload_id, part_number)
    except MultipartError as e:
        raise HTTPException(404, str(e)) from None
    try:
        digest = hashlib.md5(usedforsecurity=False)
        size = await _receive(request, f, max_size, digest)
        etag = digest.hexdigest()
        try:
            info = await anyio.to_thread.run_sync(storage.commit_part, tmp, key, upload_id,
                                                  part_number, etag)
        except (MultipartError, FileNotFoundError):
            raise HTTPException(404, "this multipart upload was completed or aborted while "
                                     "the part arrived; presign again") from None
    finally:
        await anyio.to_thread.run_sync(_discard, f, tmp)
    return JSONResponse({"key": key, "part_number": info.part_number, "size": size,
                         "etag": etag}, headers={"ETag": f'"{etag}"'})


def _discard(f: BinaryIO, tmp: Path) -> None:
    f.close()
    tmp.unlink(missing_ok=True)  # gone already when committed


@router.get("/storage/{key:path}")
async def get_object(key: str, rt: RuntimeDep, expires: Annotated[int, Query()],
                     signature: Annotated[str, Query()],
                     filename: Annotated[str | None, Query()] = None) -> FileResponse:
    storage = _local(rt)
    path = _check(storage, "GET", key, expires, signature, filename=filename or None)
    async with rt.async_session() as session:
        live = await has_live_owner(session, key)
    if not live or not await anyio.to_thread.run_sync(path.is_file):
        raise HTTPException(404, "object not found: it was deleted, or never uploaded")
    return FileResponse(path, media_type=media_type(key), filename=filename or None,
                        headers={"X-Content-Type-Options": "nosniff"})

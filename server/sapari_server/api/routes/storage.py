"""The local storage backend's signed-URL endpoints: bytes in and out, no token.

Mounted only when storage is the local folder; with S3/R2 clients talk to the bucket.
A valid signature is necessary but not enough: the URL works only while a live row needs
the object (a PUT while its clip waits for bytes, a GET while a row not deleted owns it).
Every file operation runs in a worker thread: the event loop serves other requests
while an upload streams in.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath
from typing import Annotated, BinaryIO

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse

from ...lifecycle.owners import has_live_owner, land, waiting_clip
from ...storage.base import StorageError
from ...storage.local import LocalStorage
from ...storage.signing import verify
from ..deps import RuntimeDep

router = APIRouter(tags=["storage"], include_in_schema=False)
# Write to disk in batches of this size: few thread hops, bounded memory per upload.
BATCH = 1 << 20
# Objects are served with a type from their key's extension, and only a media or data
# type: a user names the source's extension, and must not get an HTML page on our origin.
TYPES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
         ".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".oga", ".opus",
         ".jpg", ".jpeg", ".png", ".webp", ".json", ".npy"}
NOT_WRITABLE = ("this upload URL no longer accepts bytes: its clip was deleted, already "
                "confirmed, or its reservation expired; presign the upload again")


def _local(rt: RuntimeDep) -> LocalStorage:
    assert isinstance(rt.storage, LocalStorage)
    return rt.storage


def _check(storage: LocalStorage, method: str, key: str, expires: int, signature: str,
           max_size: int | None = None, filename: str | None = None) -> Path:
    reason = verify(storage.secret, method, key, expires, signature, max_size,
                    filename=filename)
    if reason:
        raise HTTPException(403, reason)
    try:
        return storage.path(key)
    except StorageError as e:
        raise HTTPException(400, str(e)) from None


def media_type(key: str) -> str:
    suffix = PurePosixPath(key).suffix.lower()
    if suffix == ".npy":
        return "application/octet-stream"
    guessed = mimetypes.guess_type(f"x{suffix}")[0] if suffix in TYPES else None
    return guessed or "application/octet-stream"


async def _writable(request: Request, rt: RuntimeDep, key: str) -> str | None:
    """The id of the clip waiting for these bytes, or None. A short session: an upload
    must not hold a pooled connection while its bytes stream in."""
    async with _db_gate(request), rt.async_session() as session:
        clip = await waiting_clip(session, key, ttl=rt.settings.signed_url_ttl)
        return clip.id if clip is not None else None


def _too_big(max_size: int) -> HTTPException:
    return HTTPException(413, f"body is larger than the {max_size} bytes declared when this "
                              "URL was made: presign again with the real size")


@router.put("/storage/{key:path}")
async def put_object(key: str, request: Request, rt: RuntimeDep,
                     expires: Annotated[int, Query()], signature: Annotated[str, Query()],
                     max_size: Annotated[int, Query()]) -> dict[str, object]:
    storage = _local(rt)
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


async def _receive(request: Request, f: BinaryIO, max_size: int) -> int:
    size = 0
    batch: list[bytes] = []
    pending = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_size:
            raise _too_big(max_size)
        batch.append(chunk)
        pending += len(chunk)
        if pending >= BATCH:
            data, batch, pending = b"".join(batch), [], 0
            await anyio.to_thread.run_sync(f.write, data)
    if batch:
        await anyio.to_thread.run_sync(f.write, b"".join(batch))
    await anyio.to_thread.run_sync(f.close)
    return size


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

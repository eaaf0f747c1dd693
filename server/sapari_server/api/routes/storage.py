"""The local storage backend's signed-URL endpoints: bytes in and out, no token, no API logic.

Mounted only when storage is the local folder; with S3/R2 clients talk to the bucket.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse

from ...storage.base import StorageError
from ...storage.local import LocalStorage
from ...storage.signing import verify
from ..deps import RuntimeDep

router = APIRouter(tags=["storage"], include_in_schema=False)


def _local(rt: RuntimeDep) -> LocalStorage:
    assert isinstance(rt.storage, LocalStorage)
    return rt.storage


def _check(storage: LocalStorage, method: str, key: str, expires: int, signature: str,
           max_size: int | None = None) -> None:
    reason = verify(storage.secret, method, key, expires, signature, max_size)
    if reason:
        raise HTTPException(403, reason)
    try:
        storage.path(key)
    except StorageError as e:
        raise HTTPException(400, str(e)) from None


@router.put("/storage/{key:path}")
async def put_object(key: str, request: Request, rt: RuntimeDep,
                     expires: Annotated[int, Query()], signature: Annotated[str, Query()],
                     max_size: Annotated[int, Query()]) -> dict[str, object]:
    storage = _local(rt)
    _check(storage, "PUT", key, expires, signature, max_size)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_size:
        raise HTTPException(413, f"body of {declared} bytes is larger than the {max_size} bytes "
                                 "declared when this URL was made: presign again with the real size")
    tmp, f = storage.open_upload(key)
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_size:
                raise HTTPException(413, f"body is larger than the {max_size} bytes declared "
                                         "when this URL was made: presign again with the real size")
            f.write(chunk)
        f.close()
        info = storage.commit_upload(tmp, key)
    finally:
        f.close()
        tmp.unlink(missing_ok=True)
    return {"key": key, "size": info.size}


@router.get("/storage/{key:path}")
async def get_object(key: str, rt: RuntimeDep, expires: Annotated[int, Query()],
                     signature: Annotated[str, Query()],
                     filename: Annotated[str | None, Query()] = None) -> FileResponse:
    storage = _local(rt)
    _check(storage, "GET", key, expires, signature)
    path = storage.path(key)
    if not path.is_file():
        raise HTTPException(404, "object not found")
    return FileResponse(path, filename=filename, media_type=None)

"""Local-folder storage. Its signed URLs point at routes the app itself serves."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import quote, urlencode

from .base import ObjectInfo, StorageError
from .signing import sign

T = TypeVar("T")


def _with_parent(path: Path, make: Callable[[], T]) -> T:
    """Create ``path``'s folder and run ``make``; once more if a purge pruned the folder."""
    for attempt in range(2):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return make()
        except FileNotFoundError:
            if attempt:
                raise
    raise AssertionError("unreachable")


class LocalStorage:
    def __init__(self, root: Path, public_url: str, secret: str) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.public_url = public_url.rstrip("/")
        self.secret = secret

    def path(self, key: str) -> Path:
        # Keys are made by the server, but a signed-URL route hands us whatever path a
        # client sent: refuse anything that is not a plain relative key, then resolve it
        # (symlinks included) and insist the result is still inside the root.
        if (not key or key.startswith("/") or "\0" in key or "\\" in key
                or ".." in key.split("/")):
            raise StorageError(f"invalid object key {key!r}")
        p = (self.root / key).resolve()
        if p == self.root or not p.is_relative_to(self.root):
            raise StorageError(f"invalid object key {key!r}")
        return p

    def _url(self, method: str, key: str, expires_in: int, max_size: int | None = None,
             filename: str | None = None) -> str:
        expires = int(time.time()) + expires_in
        params: dict[str, str | int] = {"expires": expires}
        if max_size is not None:
            params["max_size"] = max_size
        if filename:
            params["filename"] = filename
        params["signature"] = sign(self.secret, method, key, expires, max_size, filename)
        return f"{self.public_url}/storage/{quote(key)}?{urlencode(params)}"

    def presign_put(self, key: str, *, max_size: int, content_type: str | None = None,
                    expires_in: int = 3600) -> str:
        return self._url("PUT", key, expires_in, max_size=max_size)

    def presign_get(self, key: str, *, expires_in: int = 3600,
                    filename: str | None = None) -> str:
        return self._url("GET", key, expires_in, filename=filename)

    def head(self, key: str) -> ObjectInfo | None:
        p = self.path(key)
        return ObjectInfo(key, p.stat().st_size) if p.is_file() else None

    def delete(self, key: str) -> None:
        p = self.path(key)
        p.unlink(missing_ok=True)
        # Drop the folders the object leaves empty (clip and project folders), so a purge
        # gives back the whole tree; a folder still in use is simply not empty.
        for parent in p.parents:
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        p = self.path(key)
        if not p.is_file():
            raise StorageError(f"object {key} does not exist")
        yield p

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with open(self.path(key), "rb") as f:
            yield f

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        dest = self.path(key)
        tmp = dest.with_name(dest.name + ".part")
        _with_parent(tmp, lambda: shutil.copyfile(path, tmp))
        os.replace(tmp, dest)
        return ObjectInfo(key, dest.stat().st_size)

    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        with open(self.path(key), "rb") as f:
            while data := f.read(chunk):
                yield data

    # Used by the storage route that receives a signed PUT: write to a temporary
    # file and move it in place only when complete, so a broken upload leaves nothing.
    # Blocking: the route calls these in a worker thread, never on the event loop.
    def open_upload(self, key: str) -> tuple[Path, BinaryIO]:
        dest = self.path(key)
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{time.monotonic_ns()}.part")
        return tmp, _with_parent(tmp, lambda: open(tmp, "wb"))

    def commit_upload(self, tmp: Path, key: str) -> ObjectInfo:
        dest = self.path(key)
        os.replace(tmp, dest)
        return ObjectInfo(key, dest.stat().st_size)

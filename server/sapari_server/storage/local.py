"""Local-folder storage. Its signed URLs point at routes the app itself serves."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import quote, urlencode

from .base import MultipartError, ObjectInfo, PartInfo, StorageError
from .multipart import MAX_PARTS, clean_etag
from .signing import part_scope, sign

T = TypeVar("T")
# Multipart uploads stage their parts here, one folder per upload, until completed.
STAGING = ".multipart"
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_PART_FILE = re.compile(r"^(\d{5})\.([0-9a-f]{32})$")
# Staged uploads nobody completed are swept after this long (their clip's reservation
# lapsed long before: the signed part URLs stop at the TTL).
STALE_UPLOAD_SECONDS = 2 * 24 * 3600


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
                or ".." in key.split("/") or key.split("/")[0] == STAGING):
            raise StorageError(f"invalid object key {key!r}")
        p = (self.root / key).resolve()
        if p == self.root or not p.is_relative_to(self.root):
            raise StorageError(f"invalid object key {key!r}")
        return p

    def _url(self, method: str, key: str, expires_in: int, max_size: int | None = None,
             filename: str | None = None, part: tuple[str, int] | None = None) -> str:
        expires = int(time.time()) + expires_in
        params: dict[str, str | int] = {}
        scope = key
        if part is not None:
            # A part URL is signed for this upload and part number only.
            params["upload_id"], params["part_number"] = part
            scope = part_scope(key, *part)
        params["expires"] = expires
        if max_size is not None:
            params["max_size"] = max_size
        if filename:
            params["filename"] = filename
        params["signature"] = sign(self.secret, method, scope, expires, max_size, filename)
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

    # -- multipart uploads: parts are files in a staging folder, joined on complete ---------
    min_part_size = 1  # a local file takes parts of any size

    def _uploads_of(self, key: str) -> Path:
        self.path(key)  # refuse a bad key before touching the staging tree
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.root / STAGING / digest

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise MultipartError(f"invalid upload id {upload_id!r}")
        d = self._uploads_of(key) / upload_id
        if not d.is_dir():
            raise MultipartError(f"no multipart upload {upload_id} for this object: it was "
                                 "completed, aborted or never started; presign again")
        return d

    def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        self._sweep_stale()
        upload_id = secrets.token_hex(16)
        d = self._uploads_of(key) / upload_id
        _with_parent(d, lambda: d.mkdir())
        (d / "key").write_text(key)
        return upload_id

    def presign_part(self, key: str, upload_id: str, part_number: int, *, size: int,
                     expires_in: int = 3600) -> str:
        return self._url("PUT-PART", key, expires_in, max_size=size,
                         part=(upload_id, part_number))

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        d = self._upload_dir(key, upload_id)
        found: dict[int, tuple[int, PartInfo]] = {}
        for entry in os.scandir(d):
            m = _PART_FILE.match(entry.name)
            if not m:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # replaced by a newer copy of the part just now
                continue
            n = int(m.group(1))
            # Two copies of one part can coexist for a moment: the newest wins.
            if n not in found or st.st_mtime_ns > found[n][0]:
                found[n] = (st.st_mtime_ns, PartInfo(n, st.st_size, m.group(2)))
        return [found[n][1] for n in sorted(found)]

    def pending_multipart(self, key: str) -> list[str]:
        d = self._uploads_of(key)
        try:
            return sorted(e.name for e in os.scandir(d) if _UPLOAD_ID.match(e.name))
        except FileNotFoundError:
            return []

    def complete_multipart(self, key: str, upload_id: str,
                           parts: list[tuple[int, str]]) -> ObjectInfo:
        d = self._upload_dir(key, upload_id)
        numbers = [n for n, _ in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise MultipartError("parts must be listed once each, in ascending part order")
        held = {p.part_number: p for p in self.list_parts(key, upload_id)}
        files = []
        for n, etag in parts:
            have = held.get(n)
            if have is None:
                raise MultipartError(f"part {n} has not been uploaded")
            if have.etag != clean_etag(etag):
                raise MultipartError(f"part {n} does not match its ETag {etag!r}: it was "
                                     "uploaded again since; list the parts and confirm anew")
            files.append(d / f"{n:05d}.{have.etag}")
        dest = self.path(key)
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{time.monotonic_ns()}.part")
        try:
            if len(files) == 1:  # one part is the object already: no copy
                _with_parent(tmp, lambda: os.replace(files[0], tmp))
            else:
                with _with_parent(tmp, lambda: open(tmp, "wb")) as out:
                    for f in files:
                        with open(f, "rb") as src:
                            shutil.copyfileobj(src, out, 1 << 22)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        self.abort_multipart(key, upload_id)
        return ObjectInfo(key, dest.stat().st_size)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        if not _UPLOAD_ID.match(upload_id):
            return
        uploads = self._uploads_of(key)
        shutil.rmtree(uploads / upload_id, ignore_errors=True)
        for folder in (uploads, uploads.parent):
            try:
                folder.rmdir()
            except OSError:
                break

    # Used by the storage route that receives a signed part PUT (in a worker thread).
    def open_part(self, key: str, upload_id: str, part_number: int) -> tuple[Path, BinaryIO]:
        if not 1 <= part_number <= MAX_PARTS:
            raise MultipartError(f"part number {part_number} is outside 1..{MAX_PARTS}")
        d = self._upload_dir(key, upload_id)
        tmp = d / f"tmp-{part_number:05d}-{os.getpid()}-{time.monotonic_ns()}"
        return tmp, open(tmp, "wb")

    def commit_part(self, tmp: Path, key: str, upload_id: str, part_number: int,
                    etag: str) -> PartInfo:
        d = self._upload_dir(key, upload_id)
        name = f"{part_number:05d}.{etag}"
        os.replace(tmp, d / name)
        # A part sent again replaces the earlier copy.
        for entry in os.scandir(d):
            if entry.name.startswith(f"{part_number:05d}.") and entry.name != name:
                Path(entry.path).unlink(missing_ok=True)
        return PartInfo(part_number, (d / name).stat().st_size, etag)

    def _sweep_stale(self) -> None:
        """Drop staged uploads older than STALE_UPLOAD_SECONDS (abandoned by their client)."""
        staging = self.root / STAGING
        cutoff = time.time() - STALE_UPLOAD_SECONDS
        try:
            groups = list(os.scandir(staging))
        except FileNotFoundError:
            return
        for group in groups:
            try:
                uploads = list(os.scandir(group.path))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for up in uploads:
                try:
                    if up.stat().st_mtime < cutoff:
                        shutil.rmtree(up.path, ignore_errors=True)
                except FileNotFoundError:
                    continue
            try:
                os.rmdir(group.path)
            except OSError:
                pass

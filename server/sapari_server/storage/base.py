"""The ``Storage`` protocol: where media bytes live. The API only ever hands out signed URLs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class PartInfo:
    """One part of a multipart upload that the storage holds."""

    part_number: int
    size: int
    etag: str  # without quotes


class StorageError(Exception):
    """A readable storage failure (missing object, bad key)."""


class MultipartError(StorageError):
    """A multipart upload that cannot go on: unknown upload id, a missing or changed part."""


class Storage(Protocol):
    def presign_put(self, key: str, *, max_size: int, content_type: str | None = None,
                    expires_in: int = 3600) -> str:
        """A URL a client can PUT one object's bytes to, without a token."""

    def presign_get(self, key: str, *, expires_in: int = 3600,
                    filename: str | None = None) -> str:
        """A URL a client can GET one object's bytes from, without a token."""

    def head(self, key: str) -> ObjectInfo | None:
        """The object's real size, or None when it does not exist."""

    def delete(self, key: str) -> None: ...

    def local_path(self, key: str) -> AbstractContextManager[Path]:
        """A local file holding the object (the object itself, or a temporary download)."""

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Store a file a worker produced (artifacts, renders)."""

    def iter_bytes(self, key: str, chunk: int = 1 << 20) -> Iterator[bytes]: ...

    # -- multipart uploads: big files travel as parts, each with its own signed URL --------
    # One code path for every backend: the client asks for part URLs (any subset, so a
    # dropped connection resumes with the parts the storage lacks), the API completes.
    min_part_size: int
    """The smallest part the backend accepts (except the last one)."""

    def create_multipart(self, key: str, *, content_type: str | None = None) -> str:
        """Start a multipart upload of ``key``; returns its upload id."""

    def presign_part(self, key: str, upload_id: str, part_number: int, *, size: int,
                     expires_in: int = 3600) -> str:
        """A URL a client can PUT one part (exactly ``size`` bytes) to, without a token."""

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """The parts the storage holds, by part number (MultipartError: no such upload)."""

    def pending_multipart(self, key: str) -> list[str]:
        """Upload ids of the multipart uploads of ``key`` not yet completed or aborted."""

    def complete_multipart(self, key: str, upload_id: str,
                           parts: list[tuple[int, str]]) -> ObjectInfo:
        """Join ``(part_number, etag)`` parts, in that order, into the object."""

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop an upload and its parts (no error when it is already gone)."""

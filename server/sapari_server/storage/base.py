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


class StorageError(Exception):
    """A readable storage failure (missing object, bad key)."""


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

"""Pick the storage backend from ``SAPARI_STORAGE_URL``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from ..settings import Settings
from .base import Storage
from .local import LocalStorage


def make_storage(settings: Settings) -> Storage:
    url = urlparse(settings.resolved_storage_url)
    if url.scheme == "file":
        return LocalStorage(Path(url.path), settings.public_url, settings.resolved_secret_key)
    raise ValueError(
        f"SAPARI_STORAGE_URL scheme {url.scheme!r} is not supported by this build; "
        "use file:///path (S3/R2 arrives with the fleet backends)"
    )

"""Pick the storage backend from ``SAPARI_STORAGE_URL``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from ..settings import Settings
from .base import Storage
from .local import LocalStorage


def make_storage(settings: Settings) -> Storage:
    url = settings.resolved_storage_url
    scheme = urlparse(url).scheme
    if scheme == "file":
        return LocalStorage(Path(urlparse(url).path), settings.public_url,
                            settings.resolved_secret_key)
    if scheme == "s3":
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise ValueError("SAPARI_STORAGE_URL is s3://… but boto3 is not installed: "
                             "pip install 'sapari-nb[fleet]'") from None
        from .s3 import S3Storage

        return S3Storage.from_settings(url, settings)
    raise ValueError(
        f"SAPARI_STORAGE_URL scheme {scheme!r} is not supported: use file:///path or "
        "s3://bucket?endpoint=…&region=…&path_style=1 (R2, S3, any S3-compatible store)"
    )

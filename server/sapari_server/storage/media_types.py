"""The Content-Type an object is served with: from its key's extension, media or data only.

A user names the source's extension; it must never make storage serve an HTML page.
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

TYPES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
         ".mp3", ".m4a", ".aac", ".wav", ".flac", ".ogg", ".oga", ".opus",
         ".jpg", ".jpeg", ".png", ".webp", ".json", ".npy"}


def media_type(key: str) -> str:
    suffix = PurePosixPath(key).suffix.lower()
    if suffix == ".npy":
        return "application/octet-stream"
    guessed = mimetypes.guess_type(f"x{suffix}")[0] if suffix in TYPES else None
    return guessed or "application/octet-stream"

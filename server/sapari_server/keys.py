"""Object keys. Always made here, from ids the server created: never taken from a client."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_suffix(filename: str) -> str:
    suffix = PurePosixPath(filename).suffix.lower()
    suffix = _SAFE.sub("", suffix)[:10]
    return suffix if suffix.startswith(".") and len(suffix) > 1 else ".bin"


def clip_source(user_id: str, project_id: str, clip_id: str, filename: str) -> str:
    return f"users/{user_id}/projects/{project_id}/clips/{clip_id}/source{safe_suffix(filename)}"


# Keys a worker writes carry its job attempt's tag (``<job id>.<attempt>``): a superseded
# attempt that resumes late writes beside the winner's objects, never over them, and its own
# are deleted when its completion is refused.


def clip_artifact(user_id: str, project_id: str, clip_id: str, name: str, tag: str) -> str:
    return f"users/{user_id}/projects/{project_id}/clips/{clip_id}/{_safe(tag)}/{name}"


def export_file(user_id: str, project_id: str, export_id: str, container: str,
                tag: str) -> str:
    return f"users/{user_id}/projects/{project_id}/exports/{export_id}/{_safe(tag)}/cut.{container}"


def _safe(tag: str) -> str:
    return _SAFE.sub("", tag) or "x"

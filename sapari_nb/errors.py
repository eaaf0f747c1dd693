"""Errors the client raises: each says what went wrong and, where it can, what to do."""

from __future__ import annotations


class SapariError(Exception):
    """An error answer from the job server (4xx/5xx), with its readable ``detail``."""

    def __init__(self, status: int, detail: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path} -> {status}: {detail}".strip())
        self.status = status
        self.detail = detail


class JobFailed(SapariError):
    """A job (processing, analysis, export) failed; ``detail`` is the worker's reason."""

    def __init__(self, what: str, reason: str) -> None:
        Exception.__init__(self, f"{what} failed: {reason}")
        self.status = 422
        self.detail = reason


class WaitTimeout(TimeoutError):
    """No matching event arrived in time."""

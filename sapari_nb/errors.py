"""Errors the client raises: each says what went wrong and, where it can, what to do.

``str(error)`` is one readable line, fit to print to a person as it is.
"""

from __future__ import annotations


class SapariError(Exception):
    """An error answer from the job server (4xx/5xx), with its readable ``detail``."""

    def __init__(self, status: int, detail: str, method: str = "", path: str = "") -> None:
        # The request line helps a bug report, not a person: it stays in attributes.
        text = detail if status < 500 else f"the server failed ({status}): {detail}"
        super().__init__(text)
        self.status = status
        self.detail = detail
        self.method = method
        self.path = path


class ServerUnreachable(SapariError, ConnectionError):
    """No answer at all from the server (down, wrong URL, network): nothing was done there."""

    def __init__(self, url: str, reason: str, what: str = "the sapari-nb server") -> None:
        Exception.__init__(self, f"cannot reach {what} at {url}: {reason}")
        self.status = 0
        self.detail = reason
        self.method = ""
        self.path = ""
        self.url = url


class ServerStartFailed(SapariError, RuntimeError):
    """The embedded server could not start; ``detail`` is the real reason it gave."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, f"the embedded sapari-nb server could not start: {reason}")
        self.status = 0
        self.detail = reason
        self.method = ""
        self.path = ""


class JobFailed(SapariError):
    """A job (processing, analysis, export) failed; ``detail`` is the worker's reason as the
    server stored it, the message says it with the user's own file paths (``said``)."""

    def __init__(self, what: str, reason: str, said: str | None = None) -> None:
        Exception.__init__(self, f"{what} failed: {said or reason}")
        self.status = 422
        self.detail = reason
        self.method = ""
        self.path = ""


class WaitTimeout(TimeoutError):
    """No matching event arrived in time."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a flow; ``cancelled_job`` is the server job it cancelled, if any."""

    def __init__(self, cancelled_job: str | None = None) -> None:
        super().__init__(cancelled_job)
        self.cancelled_job = cancelled_job

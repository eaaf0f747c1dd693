"""Errors raised for media a user handed us that we cannot work with."""

from __future__ import annotations


class MediaError(Exception):
    """Bad or unusable input media.

    The message is a full sentence meant for the person who uploaded the file: it names
    what was wrong and what to do about it, so API layers can pass it through verbatim.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return self.message

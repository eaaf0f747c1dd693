"""Typed events. Every state change a client cares about is one of these, in the event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

EventType = Literal[
    "ClipUploaded",
    "ClipReady",
    "ClipFailed",
    "JobProgress",
    "AnalysisStarted",
    "AnalysisComplete",
    "AnalysisFailed",
    "EditsChanged",
    "ExportProgress",
    "ExportComplete",
    "ExportFailed",
]
EVENT_TYPES: frozenset[str] = frozenset(EventType.__args__)  # type: ignore[attr-defined]


class EventOut(BaseModel):
    """What the SSE stream and ``GET /events`` send: the SSE ``id`` is ``id``."""

    id: int
    type: str
    user_id: str
    project_id: str | None
    payload: dict[str, Any]
    created_at: datetime

"""Writing events into the durable log, inside the caller's transaction.

An event row commits together with the state change it reports, so a client that
sees the event can always read the new state, and no event is lost if a process dies.
"""

from __future__ import annotations

from typing import Any

from ..db.models import Event
from .types import EVENT_TYPES


def record_event(session: Any, *, user_id: str, type: str, payload: dict[str, Any],
                 project_id: str | None = None) -> Event:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = Event(user_id=user_id, project_id=project_id, type=type, payload=payload)
    session.add(event)
    return event

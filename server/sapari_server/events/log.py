"""Writing events into the durable log, inside the caller's transaction.

An event row commits together with the state change it reports, so a client that
sees the event can always read the new state, and no event is lost if a process dies.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from ..db.models import Event
from .types import EVENT_TYPES


def record_event(session: Any, *, user_id: str, type: str, payload: dict[str, Any],
                 project_id: str | None = None) -> Event:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = Event(user_id=user_id, project_id=project_id, type=type, payload=payload)
    session.add(event)
    return event


# Event ids come from a sequence at flush, but transactions commit in any order: on
# PostgreSQL a stream could read id 8 before id 7 commits and never see 7. An advisory
# lock held from the flush to the commit makes ids commit in order. SQLite serialises
# writers already.
_EVENT_ORDER_LOCK = 0x5A9A41


@event.listens_for(Session, "before_flush")
def _order_event_ids(session: Session, _ctx: Any, _instances: Any) -> None:
    if not any(isinstance(obj, Event) for obj in session.new):
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _EVENT_ORDER_LOCK})

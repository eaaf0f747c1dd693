"""Server-Sent Events: the user's event log, live, replayable after any id."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event
from sqlalchemy import func, select

from ...db.models import Event, Project
from ...events.types import EventOut
from ..deps import CurrentUser, RuntimeDep

router = APIRouter(tags=["events"])
BATCH = 500
# Event ids are 64-bit: a larger id cannot exist, and the database would reject it mid-stream.
MAX_EVENT_ID = 2**63 - 1


def _start_id(last_event_id: str | None, after: int | None) -> int | None:
    if last_event_id:
        try:
            value = int(last_event_id)
        except ValueError:
            value = -1
        if not 0 <= value <= MAX_EVENT_ID:
            raise HTTPException(400, f"Last-Event-ID {last_event_id[:40]!r} is not an event id "
                                     "(a number this stream sent)")
        return value
    return after


@router.get("/events/cursor")
async def event_cursor(user: CurrentUser, rt: RuntimeDep) -> dict[str, int]:
    """The id of the user's newest event: wait for what happens after an action from here."""
    async with rt.async_session() as s:
        last = await s.scalar(select(func.coalesce(func.max(Event.id), 0))
                              .where(Event.user_id == user.id))
    return {"last_event_id": int(last or 0)}


@router.get("/events", responses={200: {"content": {"text/event-stream": {}}}})
async def stream_events(
    request: Request, user: CurrentUser, rt: RuntimeDep,
    project_id: Annotated[str | None, Query(description="only this project's events")] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID, description="replay events after this id; "
                                       "default: only new events")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    start = _start_id(last_event_id, after)
    async with rt.async_session() as s:
        if project_id is not None:
            project = await s.get(Project, project_id)
            if project is None or project.user_id != user.id or project.is_deleted:
                raise HTTPException(404, f"project {project_id} not found")
        if start is None:
            start = int(await s.scalar(select(func.coalesce(func.max(Event.id), 0))
                                       .where(Event.user_id == user.id)) or 0)
    return StreamingResponse(
        _events(request, rt, user.id, project_id, start), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, rt: RuntimeDep, user_id: str, project_id: str | None,
                  last: int) -> AsyncIterator[bytes]:
    keepalive = rt.settings.sse_keepalive
    quiet_since = time.monotonic()
    # Tell the browser's EventSource how soon to reconnect.
    yield format_sse_event(comment="connected", retry=2000)
    while not await request.is_disconnected():
        seen = rt.bus.generation(user_id)
        q = select(Event).where(Event.user_id == user_id, Event.id > last)
        if project_id is not None:
            q = q.where(Event.project_id == project_id)
        # Shielded: a client that disconnects mid-query would otherwise cancel the
        # connection's close, and aiosqlite's leftover close task is then destroyed while
        # pending (a "Task was destroyed" warning); the read takes milliseconds.
        with anyio.CancelScope(shield=True):
            async with rt.async_session() as s:
                rows = list(await s.scalars(q.order_by(Event.id).limit(BATCH)))
        for ev in rows:
            out = EventOut.model_validate(ev, from_attributes=True)
            yield format_sse_event(data_str=out.model_dump_json(), event=ev.type, id=str(ev.id))
            last = ev.id
        if rows:
            quiet_since = time.monotonic()
            if len(rows) == BATCH:
                continue
        elif time.monotonic() - quiet_since >= keepalive:
            # An empty named event, not only a comment: browsers ignore it, while
            # clients that parse the stream get a tick to check their deadlines.
            yield format_sse_event(comment="keep-alive", event="keep-alive")
            quiet_since = time.monotonic()
        await rt.bus.wait(user_id, seen, timeout=min(rt.bus.poll_interval, keepalive))

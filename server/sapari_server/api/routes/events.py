"""Server-Sent Events: the user's event log, live, replayable after any id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
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


# A formatted event: (id, the SSE bytes).
Batch = list[tuple[int, bytes]]


@dataclass
class _Read:
    generation: int  # the user's bus generation read before this query started
    result: asyncio.Future[Batch]


class SharedReads:
    """One log read serves every stream of a user that waits at the same point.

    An event wakes all of a user's streams in this process at once (every tab, widget and
    notebook of that user); each would read the same rows and format the same JSON. Streams
    asking for the same (user, project filter, after id) share one query in flight, provided
    it started after the bus generation the asker has seen: then it sees every commit the
    asker was woken for, and joining it can never skip an event.
    """

    def __init__(self) -> None:
        self._inflight: dict[tuple[str, str | None, int], _Read] = {}

    async def read(self, rt: RuntimeDep, user_id: str, project_id: str | None, last: int,
                   seen: int) -> Batch:
        key = (user_id, project_id, last)
        entry = self._inflight.get(key)
        if entry is None or entry.generation < seen:
            entry = _Read(rt.bus.generation(user_id),
                          asyncio.ensure_future(_read_log(rt, user_id, project_id, last)))
            self._inflight[key] = entry

            def forget(fut: asyncio.Future[Batch], key: tuple[str, str | None, int] = key,
                       entry: _Read = entry) -> None:
                if self._inflight.get(key) is entry:
                    del self._inflight[key]
                if not fut.cancelled():
                    fut.exception()  # its askers may all have gone: retrieved, not "never"
            entry.result.add_done_callback(forget)
        # Shielded: one client going away must not cancel the read the others wait on (nor,
        # on SQLite, the connection's close: aiosqlite's close task would be destroyed while
        # pending); the read takes milliseconds.
        return await asyncio.shield(entry.result)


async def _read_log(rt: RuntimeDep, user_id: str, project_id: str | None, last: int) -> Batch:
    q = select(Event).where(Event.user_id == user_id, Event.id > last)
    if project_id is not None:
        q = q.where(Event.project_id == project_id)
    with anyio.CancelScope(shield=True):
        async with rt.async_session() as s:
            rows = list(await s.scalars(q.order_by(Event.id).limit(BATCH)))
    return [(ev.id, format_sse_event(
        data_str=EventOut.model_validate(ev, from_attributes=True).model_dump_json(),
        event=ev.type, id=str(ev.id))) for ev in rows]


def _shared_reads(app: FastAPI) -> SharedReads:
    # Per app: its futures belong to the event loop that serves it.
    reads = getattr(app.state, "sse_reads", None)
    if reads is None:
        reads = app.state.sse_reads = SharedReads()
    return reads


async def _events(request: Request, rt: RuntimeDep, user_id: str, project_id: str | None,
                  last: int) -> AsyncIterator[bytes]:
    keepalive = rt.settings.sse_keepalive
    quiet_since = time.monotonic()
    reads = _shared_reads(request.app)
    # Tell the browser's EventSource how soon to reconnect.
    yield format_sse_event(comment="connected", retry=2000)
    while not await request.is_disconnected():
        seen = rt.bus.generation(user_id)
        rows = await reads.read(rt, user_id, project_id, last, seen)
        for event_id, data in rows:
            yield data
            last = event_id
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

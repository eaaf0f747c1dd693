"""Reading the server's SSE stream: resumable with Last-Event-ID, in the foreground or a thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

from sapari_server.events.types import EventOut

log = logging.getLogger(__name__)


# The client reads the very model the server sends.
Event = EventOut


def iter_events(http: httpx.Client, *, project_id: str | None = None, after: int | None = None,
                stop: threading.Event | None = None, reconnect_delay: float = 0.5,
                read_timeout: float = 60.0, deadline: float | None = None) -> Iterator[Event]:
    """Yield events, reconnecting after drops without losing or repeating one.

    Ends when ``stop`` is set or the monotonic ``deadline`` passes (checked at every
    event and keep-alive, so within one keep-alive interval).
    """
    last = after

    def done() -> bool:
        return bool((stop is not None and stop.is_set())
                    or (deadline is not None and time.monotonic() > deadline))

    while not done():
        params: dict[str, Any] = {}
        headers = {}
        if project_id:
            params["project_id"] = project_id
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        try:
            with connect_sse(http, "GET", "/events", params=params, headers=headers,
                             timeout=httpx.Timeout(10.0, read=read_timeout)) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    from .client import raise_for_status

                    raise_for_status(source.response)
                for sse in source.iter_sse():
                    if done():
                        return
                    if not sse.data or not sse.id:
                        continue  # comments and keep-alives
                    ev = Event.model_validate(json.loads(sse.data))
                    last = ev.id
                    yield ev
        except (httpx.TransportError, httpx.StreamError) as e:
            log.info("event stream dropped (%s); reconnecting after id %s", e, last)
            time.sleep(reconnect_delay)


class EventStream:
    """Reads events in a background thread and calls listeners: what widgets subscribe to."""

    def __init__(self, http: httpx.Client, project_id: str | None = None,
                 after: int | None = None) -> None:
        self._http = http
        self._project_id = project_id
        self._after = after
        self._stop = threading.Event()
        self._listeners: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self.last_event_id: int | None = after
        self._thread = threading.Thread(target=self._run, name="sapari-events", daemon=True)

    def on(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def off() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return off

    def start(self) -> EventStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        for ev in iter_events(self._http, project_id=self._project_id, after=self._after,
                              stop=self._stop, read_timeout=5.0):
            self.last_event_id = ev.id
            with self._lock:
                listeners = list(self._listeners)
            for fn in listeners:
                try:
                    fn(ev)
                except Exception:  # one broken listener must not stop the others
                    log.exception("event listener failed on %s", ev.type)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

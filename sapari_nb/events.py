"""Reading the server's SSE stream: resumable with Last-Event-ID, in the foreground or a thread."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse

from sapari_server.events.types import EventOut

from .errors import ServerUnreachable

log = logging.getLogger(__name__)


# The client reads the very model the server sends.
Event = EventOut
# Every EventStream alive in this process: closed before the interpreter exits.
_live_streams: weakref.WeakSet[EventStream] = weakref.WeakSet()


def transport_reason(exc: httpx.TransportError) -> str:
    """``[Errno 111] Connection refused`` -> ``connection refused``: a reason for a person."""
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time (timed out)"
    text = str(exc) or type(exc).__name__
    if text.startswith("[Errno"):
        text = text.split("]", 1)[-1].strip()
    return text[:1].lower() + text[1:]


def iter_events(http: httpx.Client, *, project_id: str | None = None, after: int | None = None,
                stop: threading.Event | None = None, reconnect_delay: float = 0.5,
                read_timeout: float = 60.0, deadline: float | None = None,
                give_up_after: float | None = 60.0,
                on_response: Callable[[httpx.Response | None], None] | None = None,
                on_status: Callable[[str, str], None] | None = None,
                gone_after: float = 10.0) -> Iterator[Event]:
    """Yield events, reconnecting after drops without losing or repeating one.

    Ends when ``stop`` is set or the monotonic ``deadline`` passes (checked at every
    event and keep-alive, so within one keep-alive interval). A server that cannot be
    reached at all for ``give_up_after`` seconds raises ``ServerUnreachable``.
    ``on_response`` sees each live response (and None after it), so another thread can
    end a blocked read. ``on_status(status, message)`` hears ``connected`` at each
    (re)connection, ``reconnecting`` while the server cannot be reached and ``gone`` once
    that lasted ``gone_after`` seconds (reading goes on trying unless ``give_up_after``).
    A stream that drops and reconnects at once (a read timeout) reports nothing new.
    """
    last = after
    unreachable_since: float | None = None
    where = str(http.base_url).rstrip("/")

    def status(state: str, message: str = "") -> None:
        if on_status is not None:
            on_status(state, message)

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
                unreachable_since = None
                if source.response.status_code >= 400:
                    source.response.read()
                    from .client import raise_for_status

                    raise_for_status(source.response)
                if on_response is not None:
                    on_response(source.response)
                status("connected")
                for sse in source.iter_sse():
                    if done():
                        return
                    if not sse.data or not sse.id:
                        continue  # comments and keep-alives
                    ev = Event.model_validate(json.loads(sse.data))
                    last = ev.id
                    yield ev
        except httpx.ConnectError as e:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if give_up_after is not None and now - unreachable_since >= give_up_after:
                raise ServerUnreachable(where, transport_reason(e)) from None
            away = now - unreachable_since
            if away >= gone_after:
                status("gone", f"the job server at {where} has not answered for {away:.0f} s "
                               f"({transport_reason(e)}); still retrying: start it again and "
                               "this reconnects by itself")
            else:
                status("reconnecting", f"the job server at {where} cannot be reached "
                                       f"({transport_reason(e)}); retrying")
            log.info("event stream cannot connect (%s); retrying after id %s", e, last)
            time.sleep(reconnect_delay)
        except (httpx.TransportError, httpx.StreamError) as e:
            log.info("event stream dropped (%s); reconnecting after id %s", e, last)
            time.sleep(reconnect_delay)
        except RuntimeError:
            if done():  # the client was closed under a stream being stopped: its end
                return
            raise
        finally:
            if on_response is not None:
                on_response(None)


class EventStream:
    """Reads events in a background thread and calls listeners: what widgets subscribe to.

    It never gives up while open: a server that goes away is retried until it is back, and
    reading resumes after the last event seen (``Last-Event-ID``), so nothing is missed.
    ``status`` is ``connecting``, then ``connected`` / ``reconnecting`` / ``gone`` with a
    readable ``status_message``; ``on_status`` listeners hear every change.
    """

    def __init__(self, http: httpx.Client, project_id: str | None = None,
                 after: int | None = None, gone_after: float = 10.0,
                 retry_delay: float = 0.5) -> None:
        self._http = http
        self._project_id = project_id
        self._after = after
        self._gone_after = gone_after
        self._retry_delay = retry_delay
        self._stop = threading.Event()
        self._listeners: list[Callable[[Event], None]] = []
        self._status_listeners: list[Callable[[str, str], None]] = []
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        self.last_event_id: int | None = after
        self.status = "connecting"
        self.status_message = ""
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

    def on_status(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        """Add a listener of ``(status, message)`` changes; returns a function removing it."""
        with self._lock:
            self._status_listeners.append(listener)

        def off() -> None:
            with self._lock:
                if listener in self._status_listeners:
                    self._status_listeners.remove(listener)
        return off

    @property
    def listening(self) -> int:
        """How many event listeners are attached."""
        with self._lock:
            return len(self._listeners)

    def start(self) -> EventStream:
        _live_streams.add(self)
        self._thread.start()
        return self

    def _set_response(self, response: httpx.Response | None) -> None:
        with self._lock:
            self._response = response

    def _set_status(self, status: str, message: str = "") -> None:
        with self._lock:
            if (status, message) == (self.status, self.status_message):
                return
            self.status, self.status_message = status, message
            listeners = list(self._status_listeners)
        for fn in listeners:
            try:
                fn(status, message)
            except Exception:
                log.exception("event status listener failed")

    def _run(self) -> None:
        where = str(self._http.base_url).rstrip("/")
        failing_since: float | None = None
        while not self._stop.is_set():
            try:
                for ev in iter_events(self._http, project_id=self._project_id,
                                      after=self.last_event_id, stop=self._stop,
                                      read_timeout=5.0, give_up_after=None,
                                      reconnect_delay=self._retry_delay,
                                      on_response=self._set_response,
                                      on_status=self._set_status,
                                      gone_after=self._gone_after):
                    failing_since = None
                    self.last_event_id = ev.id
                    with self._lock:
                        listeners = list(self._listeners)
                    for fn in listeners:
                        try:
                            fn(ev)
                        except Exception:  # one broken listener must not stop the others
                            log.exception("event listener failed on %s", ev.type)
            except Exception as e:
                if self._stop.is_set():
                    break
                # An error answer (a server restarting, a revoked token): said, then retried
                # from the last id, so a listener is never left on a dead stream.
                now = time.monotonic()
                failing_since = failing_since or now
                gone = now - failing_since >= self._gone_after
                self._set_status("gone" if gone else "reconnecting",
                                 f"the event stream of the job server at {where} failed "
                                 f"({e}); retrying")
                log.info("event stream failed (%s); retrying after id %s", e,
                         self.last_event_id)
                self._stop.wait(self._retry_delay * (4 if gone else 1))

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop reading: the blocked read is woken at once, the thread joined."""
        self._stop.set()
        with self._lock:
            response = self._response
            self._listeners.clear()
            self._status_listeners.clear()
        if response is not None:
            # Shutting the socket down wakes a recv() blocked in the reader thread; closing
            # it from here would not (and could race the reader's own close).
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)
        _live_streams.discard(self)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_all_streams() -> None:
    """Stop every background event reader (at interpreter exit, before servers stop)."""
    for stream in list(_live_streams):
        stream.close(timeout=2.0)

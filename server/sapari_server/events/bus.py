"""The ``EventBus`` protocol: wakes SSE streams when new events are in the log.

The log (the ``events`` table) is the source of truth and gives replay after any id;
the bus only says "look again". A stream that is not woken (a worker in another
process with the in-process bus) still re-reads the log every ``poll_interval``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol


class EventBus(Protocol):
    poll_interval: float

    def notify(self, user_id: str) -> None:
        """Called after a transaction that recorded events for ``user_id`` committed."""

    def generation(self, user_id: str) -> int:
        """A counter bumped by every notify; read it before reading the log."""

    async def wait(self, user_id: str, seen: int, timeout: float) -> bool:
        """Return True once ``generation`` moved past ``seen``, False on timeout."""

    def close(self) -> None: ...


class LocalEventBus:
    """In-process bus: worker threads wake asyncio waiters thread-safely.

    A waiter is a future of its stream's event loop. A notify hands each loop its woken
    futures in ONE thread-safe call: waking 500 streams of a user is one wake-up of the
    loop, not 500 (each thread-safe call writes to the loop's self-pipe).
    """

    def __init__(self, poll_interval: float = 1.0) -> None:
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._generations: dict[str, int] = {}

    def generation(self, user_id: str) -> int:
        with self._lock:
            return self._generations.get(user_id, 0)

    def notify(self, user_id: str) -> None:
        with self._lock:
            self._generations[user_id] = self._generations.get(user_id, 0) + 1
            waiters = list(self._waiters.get(user_id, ()))
        self._wake(waiters)

    def notify_all(self) -> None:
        """Wake every stream: after news may have been missed (a bus reconnecting)."""
        with self._lock:
            for user_id in set(self._generations) | set(self._waiters):
                self._generations[user_id] = self._generations.get(user_id, 0) + 1
            waiters = [w for ws in self._waiters.values() for w in ws]
        self._wake(waiters)

    @staticmethod
    def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for loop, fut in waiters:
            by_loop.setdefault(loop, []).append(fut)
        for loop, futs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, futs)
            except RuntimeError:  # the loop closed; its streams are gone
                pass

    async def wait(self, user_id: str, seen: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (loop, fut)
        with self._lock:
            # A notify between the caller's log read and now must not be slept through.
            if self._generations.get(user_id, 0) != seen:
                return True
            self._waiters.setdefault(user_id, set()).add(entry)
        # A timer, not asyncio.wait_for: no extra task per wait.
        timer = loop.call_later(timeout, _resolve, [fut], False)
        try:
            return bool(await fut)
        finally:
            timer.cancel()
            with self._lock:
                self._waiters.get(user_id, set()).discard(entry)

    def close(self) -> None:
        with self._lock:
            self._waiters.clear()


def _resolve(futs: list[asyncio.Future], value: bool = True) -> None:
    for fut in futs:
        if not fut.done():
            fut.set_result(value)


def make_event_bus(events_url: str) -> EventBus:
    """No URL: the in-process bus. ``redis://`` / ``rediss://``: Redis pub/sub across processes."""
    if not events_url:
        return LocalEventBus()
    scheme = events_url.split("://", 1)[0].lower() if "://" in events_url else ""
    if scheme in ("redis", "rediss"):
        try:
            from .redis_bus import RedisEventBus
        except ImportError as e:
            raise ValueError(f"SAPARI_EVENTS_URL {events_url!r} needs redis-py ({e}): "
                             "pip install 'sapari-nb[fleet]'") from None
        return RedisEventBus(events_url)
    raise ValueError(
        f"SAPARI_EVENTS_URL scheme {scheme or events_url!r} is not supported; leave it unset "
        "for the in-process bus or use redis://host:6379/0 (optionally ?channel=NAME)"
    )

"""An ``EventBus`` on Redis pub/sub: a commit in any process wakes the streams of every API process.

The database log stays the truth (replay after ``Last-Event-ID``); Redis only carries
"user X has new events". Pub/sub delivers at most once, so nothing may depend on a message
arriving: whenever the subscription is (re)established every local stream is woken to re-read
the log, and while Redis cannot be reached streams fall back to polling the log every
``poll_interval`` seconds (the same as the in-process bus with a worker in another process).

Threads, not asyncio: ``notify`` is called from worker threads and from the API's event loop
alike, and must never block either. It wakes this process's streams at once and hands the
user id to a publisher thread; a listener thread (started by the first stream, so worker
processes never subscribe) turns messages from other processes into local wake-ups.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from .bus import LocalEventBus

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "sapari:events"
# While subscribed, a stream re-reads the log this often anyway: a safety net for a message
# lost without the connection noticing. Without a subscription: every second.
CONNECTED_POLL = 5.0
FALLBACK_POLL = 1.0
_RETRY_MIN, _RETRY_MAX = 0.1, 2.0


def _keepalive_options() -> dict[int, int]:
    wanted = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
    return {getattr(socket, k): v for k, v in wanted.items() if hasattr(socket, k)}


def split_events_url(url: str) -> tuple[str, str]:
    """``redis://h:6379/0?channel=x`` -> (the URL redis-py reads, the pub/sub channel).

    ``channel`` is ours (redis-py would refuse it); pub/sub ignores the database number, so
    two deployments sharing one Redis need different channels, not different databases.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    channel = next((v for k, v in query if k == "channel"), "") or DEFAULT_CHANNEL
    rest = urlencode([(k, v) for k, v in query if k != "channel"])
    return urlunsplit(parts._replace(query=rest)), channel


class RedisEventBus:
    """Wakes SSE streams across processes through one Redis pub/sub channel."""

    def __init__(self, url: str, *, connected_poll: float = CONNECTED_POLL,
                 fallback_poll: float = FALLBACK_POLL) -> None:
        self.url, self.channel = split_events_url(url)
        self.connected_poll = connected_poll
        self.fallback_poll = fallback_poll
        # Messages this process published come back to it: recognised by origin and skipped
        # (its own streams were woken directly, without the round trip).
        self._origin = uuid.uuid4().hex
        self._local = LocalEventBus(poll_interval=fallback_poll)
        self._closed = threading.Event()
        self._subscribed = False
        self._init_threads()

    def _init_threads(self) -> None:
        # Threads do not survive a fork: a forked child starts its own on first use.
        self._pid = os.getpid()
        self._client: redis.Redis | None = None
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._publisher: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._subscribed = False

    def _redis(self) -> redis.Redis:
        if self._client is None:
            # Short timeouts: a lost Redis must show up as an error the threads retry, never
            # as a thread hung on a dead socket. The health check pings an idle subscription;
            # TCP keep-alives notice a peer that vanished without closing (within ~25 s;
            # meanwhile streams still re-read the log every CONNECTED_POLL seconds).
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=2.0,
                                                socket_timeout=5.0, health_check_interval=10,
                                                retry_on_timeout=False, socket_keepalive=True,
                                                socket_keepalive_options=_keepalive_options())
        return self._client

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._init_threads()

    # --- EventBus ------------------------------------------------------------------------

    @property
    def poll_interval(self) -> float:
        return self.connected_poll if self._subscribed else self.fallback_poll

    @property
    def subscribed(self) -> bool:
        """Whether this process's listener holds a live subscription (then waits are long)."""
        return self._subscribed

    def generation(self, user_id: str) -> int:
        return self._local.generation(user_id)

    def notify(self, user_id: str) -> None:
        if self._closed.is_set():
            return
        self._check_fork()
        self._local.notify(user_id)
        with self._cond:
            self._pending.add(user_id)
            self._cond.notify()
            if self._publisher is None:
                self._publisher = threading.Thread(target=self._publish_loop, daemon=True,
                                                   name="sapari-events-publish")
                self._publisher.start()

    async def wait(self, user_id: str, seen: int, timeout: float) -> bool:
        self._check_fork()
        self._ensure_listener()
        return await self._local.wait(user_id, seen, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Publish what is pending (bounded by ``timeout``), then stop both threads."""
        if self._closed.is_set():
            return
        with self._cond:
            self._closed.set()
            self._cond.notify_all()
        for t in (self._publisher, self._listener):
            if t is not None and t is not threading.current_thread():
                t.join(timeout)
        self._local.close()
        if self._client is not None:
            self._client.close()

    # --- threads -------------------------------------------------------------------------

    def _ensure_listener(self) -> None:
        if self._listener is not None or self._closed.is_set():
            return
        with self._cond:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen_loop, daemon=True,
                                                  name="sapari-events-listen")
                self._listener.start()

    def _publish_loop(self) -> None:
        delay = _RETRY_MIN
        failing = False  # one warning per outage, not one per retry
        while True:
            with self._cond:
                while not self._pending and not self._closed.is_set():
                    self._cond.wait()
                if not self._pending:
                    return  # closed with nothing left to say
                # Notifies that piled up while the last publish ran go out once each.
                batch, self._pending = self._pending, set()
            try:
                pipe = self._redis().pipeline(transaction=False)
                for user_id in batch:
                    pipe.publish(self.channel, json.dumps({"o": self._origin, "u": user_id}))
                pipe.execute()
                delay = _RETRY_MIN
                if failing:
                    log.warning("events reach Redis again (%s)", self.channel)
                    failing = False
            except (redis.RedisError, OSError) as e:
                # Kept and sent once Redis is back: a stream then wakes late rather than
                # waiting for its next poll. Meanwhile the log is polled anyway.
                with self._cond:
                    self._pending |= batch
                if self._closed.is_set():
                    log.info("events not published at close (%s); streams poll the log", e)
                    return
                if not failing:
                    log.warning("cannot publish events to Redis (%s); streams find them by "
                                "polling the log meanwhile; retrying", e)
                    failing = True
                self._closed.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)

    def _listen_loop(self) -> None:
        delay = _RETRY_MIN
        warned = False  # one warning per outage, not one per retry
        while not self._closed.is_set():
            pubsub = None
            try:
                pubsub = self._redis().pubsub()
                pubsub.subscribe(self.channel)
                while not self._closed.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        (log.warning if warned else log.info)(
                            "event bus listening on Redis channel %s", self.channel)
                        self._subscribed = True
                        delay, warned = _RETRY_MIN, False
                        # Whatever was published before this subscription was missed:
                        # every stream re-reads the log (and now waits the long interval).
                        self._local.notify_all()
                    elif msg["type"] == "message":
                        self._on_message(msg["data"])
            except (redis.RedisError, OSError, ValueError) as e:
                if self._closed.is_set():
                    break
                if not warned:
                    log.warning("event bus cannot listen on Redis (%s); streams poll the log "
                                "every %.1f s until it is back", e, self.fallback_poll)
                    warned = True
                if self._subscribed:
                    self._subscribed = False
                    # Streams asleep on the long interval wake and go back to polling.
                    self._local.notify_all()
                self._closed.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # a dead connection may fail to close; it is gone anyway
                        pass
        self._subscribed = False

    def _on_message(self, data: bytes | str) -> None:
        try:
            body = json.loads(data)
            origin, user_id = body["o"], body["u"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed message on %s: %.80r", self.channel, data)
            return
        if origin != self._origin and isinstance(user_id, str):
            self._local.notify(user_id)

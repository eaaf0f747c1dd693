"""Huey on RabbitMQ: tasks in a durable ``x-max-priority`` queue, everything else in Redis.

``SAPARI_QUEUE_URL=amqp://user:pass@host:5672/%2F?results=redis://host:6379/0``

- Priority: the queue is declared with ``x-max-priority`` (10 unless ``max_priority=`` in the
  URL says otherwise); a Huey priority becomes the message's AMQP priority, clamped to
  ``0..max_priority`` (ours are 0 for batch and 10 for interactive).
- Acknowledged only after the task finished: ``dequeue`` keeps the delivery tag of the
  message it handed out, per worker thread, and ``RabbitHuey.execute`` acknowledges it once
  Huey's execute returned (result stored, retries re-enqueued). A worker killed mid-task
  never acknowledges: the broker delivers the message again as soon as its connection
  drops. The job itself is fenced on its claimed attempt (``queue.jobs``), so a second
  delivery never runs or commits a job twice.
- Results, the schedule (retries, ETAs), locks and counters: Huey's Redis storage under the
  URL in ``results=`` (percent-encode it if it carries its own ``&`` or ``#``).
- Connections: pika connections are not thread-safe. Each consuming thread owns one
  connection and channel (prefetch 1, so a busy thread holds one message and the broker
  hands the next one to whoever asks, highest priority first). Publishing takes a
  connection from a small pool (one thread at a time on each; up to 8, so concurrent
  requests share the broker's disk syncs), with publisher confirms (``enqueue`` returns
  once the broker has the persistent message) and one reconnect on a broken connection.
- Heartbeats are off unless the URL sets ``heartbeat=``: a Huey worker runs its task on the
  thread that owns the connection, so it could not answer heartbeats during a long render,
  and the broker would drop it and hand the render to another worker mid-way. A killed
  worker's socket is closed by its kernel (the broker redelivers at once); a frozen or
  cut-off worker is caught by the job's own database heartbeat (``requeue_orphans``).
  RabbitMQ's ``consumer_timeout`` (30 min by default) still closes a channel whose delivery
  stays unacknowledged longer: the message is redelivered, its job is found running and
  alive, and the late acknowledgement is logged and dropped. Raise ``consumer_timeout`` on
  the broker for renders longer than that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import pika
from huey import Huey
from huey.exceptions import ConfigurationError
from huey.signals import SIGNAL_INTERRUPTED
from huey.storage import RedisStorage
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, ChannelClosedByBroker

log = logging.getLogger(__name__)

DEFAULT_MAX_PRIORITY = 10
# Query parameters of the amqp:// URL that are ours, not pika's.
_OUR_PARAMS = ("results", "max_priority")


def split_amqp_url(url: str) -> tuple[str, dict[str, Any]]:
    """``amqp://…?results=redis://…&max_priority=10&heartbeat=…`` -> (pika's URL, our options)."""
    parts = urlparse(url)
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        (ours.__setitem__(key, value) if key in _OUR_PARAMS else theirs.append((key, value)))
    results = ours.get("results", "")
    if urlparse(results).scheme not in ("redis", "rediss"):
        raise ValueError(
            "SAPARI_QUEUE_URL amqp://… needs a Redis for results, schedule and locks: add "
            "?results=redis://host:6379/0 to it (percent-encoded if it has its own query)")
    options: dict[str, Any] = {"results_url": results}
    if "max_priority" in ours:
        try:
            options["max_priority"] = int(ours["max_priority"])
        except ValueError:
            options["max_priority"] = -1
        if not 1 <= options["max_priority"] <= 255:
            raise ValueError(f"SAPARI_QUEUE_URL max_priority={ours['max_priority']!r} must be "
                             "a whole number from 1 to 255 (RabbitMQ advises at most 10)")
    return urlunparse(parts._replace(query=urlencode(theirs))), options


@dataclass
class _Consumer:
    """One thread's connection, channel and the delivery it holds."""

    connection: BlockingConnection
    channel: BlockingChannel
    messages: Iterator[Any]
    tag: int | None = None
    requeue: bool = False


@dataclass
class _Publisher:
    connection: BlockingConnection
    channel: BlockingChannel


class RabbitStorage(RedisStorage):
    """Huey storage: the task queue on RabbitMQ, the rest (RedisStorage) on Redis."""

    blocking = True  # dequeue waits up to read_timeout for a message
    priority = True

    def __init__(self, name: str = "huey", amqp_url: str = "amqp://guest:guest@127.0.0.1/%2F",
                 results_url: str = "redis://127.0.0.1:6379/0",
                 max_priority: int = DEFAULT_MAX_PRIORITY, read_timeout: float = 1.0,
                 max_publishers: int = 8, **kwargs: Any) -> None:
        super().__init__(name=name, url=results_url, read_timeout=read_timeout, **kwargs)
        self.params = pika.URLParameters(amqp_url)
        if "heartbeat" not in dict(parse_qsl(urlparse(amqp_url).query)):
            self.params.heartbeat = 0
        self.params.tcp_options = self.params.tcp_options or {
            "TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 6}
        self.queue = self.name  # RedisStorage cleaned it to [A-Za-z0-9_]
        self.max_priority = max_priority
        self.read_timeout = read_timeout
        self._local = threading.local()
        # Publishing connections, each used by one thread at a time.
        self.max_publishers = max_publishers
        self._pool = threading.Condition()
        self._idle: list[_Publisher] = []
        self._publishers = 0

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> tuple[BlockingConnection, BlockingChannel]:
        connection = BlockingConnection(self.params)
        try:
            channel = connection.channel()
            self._declare(channel)
        except BaseException:
            _close_quietly(connection)
            raise
        return connection, channel

    def _declare(self, channel: BlockingChannel) -> None:
        try:
            channel.queue_declare(self.queue, durable=True,
                                  arguments={"x-max-priority": self.max_priority})
        except ChannelClosedByBroker as e:
            if e.reply_code == 406:
                raise ConfigurationError(
                    f"RabbitMQ queue {self.queue!r} exists with other arguments than "
                    f"x-max-priority={self.max_priority} ({e.reply_text}): delete it, or set "
                    "max_priority= in SAPARI_QUEUE_URL to the value it was declared with"
                ) from None
            raise

    def _consumer(self) -> _Consumer:
        state: _Consumer | None = getattr(self._local, "consumer", None)
        if state is not None and state.channel.is_open:
            return state
        if state is not None:
            self._drop_consumer()
        connection, channel = self._connect()
        channel.basic_qos(prefetch_count=1)
        messages = channel.consume(self.queue, inactivity_timeout=self.read_timeout)
        state = _Consumer(connection, channel, messages)
        self._local.consumer = state
        return state

    def _drop_consumer(self) -> None:
        state: _Consumer | None = getattr(self._local, "consumer", None)
        self._local.consumer = None
        if state is not None:
            _close_quietly(state.connection)

    def _new_publisher(self) -> _Publisher:
        connection, channel = self._connect()
        channel.confirm_delivery()
        return _Publisher(connection, channel)

    def _take_publisher(self) -> _Publisher:
        """An idle publishing connection, a new one while under the cap, else wait for one."""
        with self._pool:
            while not self._idle and self._publishers >= self.max_publishers:
                self._pool.wait()
            if self._idle:
                return self._idle.pop()
            self._publishers += 1
        try:
            return self._new_publisher()
        except BaseException:
            self._give_back(None)
            raise

    def _give_back(self, pub: _Publisher | None) -> None:
        with self._pool:
            if pub is not None and pub.channel.is_open:
                self._idle.append(pub)
            else:
                self._publishers -= 1
                if pub is not None:
                    _close_quietly(pub.connection)
            self._pool.notify()

    def _with_publisher(self, fn: Any) -> Any:
        """Run ``fn(channel)`` on a pooled connection; reconnect once if it broke.

        Each connection is used by one thread at a time (pika is not thread-safe); several
        let concurrent requests share the broker's disk syncs of persistent messages.
        """
        pub: _Publisher | None = self._take_publisher()
        try:
            try:
                return fn(pub.channel)
            except (AMQPError, OSError) as e:
                # A dropped connection, a restarted broker or a deleted queue: a new
                # connection (which declares the queue again) and one more try.
                log.info("AMQP publish failed (%r); reconnecting once", e)
                _close_quietly(pub.connection)
                pub = None
                pub = self._new_publisher()
                return fn(pub.channel)
        finally:
            self._give_back(pub)

    # -- the queue ---------------------------------------------------------------------
    def amqp_priority(self, priority: float | None) -> int:
        return max(0, min(int(priority or 0), self.max_priority))

    def enqueue(self, data: bytes, priority: float | None = None) -> None:
        props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                     priority=self.amqp_priority(priority))
        # Mandatory + confirms: an unroutable or refused message raises here, not silently.
        self._with_publisher(lambda ch: ch.basic_publish(
            "", self.queue, data, properties=props, mandatory=True))

    def dequeue(self) -> bytes | None:
        """The next message for this thread, held (unacknowledged) until ``settle``."""
        if getattr(self._local, "consumer", None) is not None and self._local.consumer.tag:
            # The previous message was handed out but never executed (it did not
            # deserialize, say): drop it rather than hold it, or redeliver it, forever.
            log.warning("dropping a %s message that was read but never executed", self.queue)
            self.settle()
        try:
            state = self._consumer()
            method, _props, body = next(state.messages)
        except (AMQPError, OSError, StopIteration):
            self._drop_consumer()
            raise
        if method is None:
            return None
        state.tag, state.requeue = method.delivery_tag, False
        return body

    def settle(self) -> None:
        """Acknowledge (or, when interrupted, give back) the message this thread holds."""
        state: _Consumer | None = getattr(self._local, "consumer", None)
        if state is None or state.tag is None:
            return
        tag, requeue = state.tag, state.requeue
        state.tag, state.requeue = None, False
        try:
            if requeue:
                state.channel.basic_nack(tag, requeue=True)
            else:
                state.channel.basic_ack(tag)
        except (AMQPError, OSError) as e:
            # The channel closed under the task (broker restart, consumer_timeout): the
            # broker already gave the message to someone else, whose claim of the job
            # finds it done or running. Nothing is lost or run twice.
            log.warning("could not acknowledge a %s task (%r): the broker delivers it "
                        "again and the job's fence makes that a no-op", self.queue, e)
            self._drop_consumer()

    def mark_interrupted(self) -> None:
        """This thread's task stopped before finishing: give it back instead of acking it."""
        state: _Consumer | None = getattr(self._local, "consumer", None)
        if state is not None and state.tag is not None:
            state.requeue = True

    def close_thread(self) -> None:
        """Close this thread's consuming connection (its held message goes back)."""
        self._drop_consumer()

    def queue_size(self) -> int:
        """Messages ready for delivery (not those held by a worker)."""
        def size(ch: BlockingChannel) -> int:
            return ch.queue_declare(self.queue, passive=True).method.message_count

        return int(self._with_publisher(size))

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """A look at the waiting messages, highest priority first.

        AMQP cannot peek: they are fetched unacknowledged on a channel of their own and
        given back when it closes, keeping their place but marked redelivered.
        """
        def peek(ch: BlockingChannel) -> list[bytes]:
            items: list[bytes] = []
            side = ch.connection.channel()
            try:
                while limit is None or len(items) < limit:
                    method, _props, body = side.basic_get(self.queue, auto_ack=False)
                    if method is None:
                        break
                    items.append(body)
            finally:
                side.close()
            return items

        return list(self._with_publisher(peek))

    def flush_queue(self) -> None:
        self._with_publisher(lambda ch: ch.queue_purge(self.queue))

    def delete_queue(self) -> None:
        """Remove the queue from the broker (tests, decommissioning)."""
        self._with_publisher(lambda ch: ch.queue_delete(self.queue))

    def close(self) -> None:
        self._drop_consumer()
        with self._pool:
            idle, self._idle = self._idle, []
            self._publishers -= len(idle)
        for pub in idle:
            _close_quietly(pub.connection)
        self.pool.disconnect()


class RabbitHuey(Huey):
    """Huey whose storage is ``RabbitStorage``: a task is acknowledged once executed."""

    storage_class = RabbitStorage
    storage: RabbitStorage

    def __init__(self, name: str = "huey", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        # Each worker thread closes its own connection when the consumer stops.
        self._shutdown["close_amqp_connection"] = self.storage.close_thread
        # Emitted on the worker's thread when the task was interrupted by an exit signal.
        self.signal(SIGNAL_INTERRUPTED)(lambda signal, task, *a, **k:
                                        self.storage.mark_interrupted())

    def execute(self, task: Any, timestamp: Any = None) -> Any:
        try:
            return super().execute(task, timestamp)
        finally:
            # After the result, the retry or the scheduling is stored: a crash before this
            # line leaves the message unacknowledged, and the broker delivers it again.
            self.storage.settle()


def _close_quietly(connection: BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # already broken: nothing to give back
        log.debug("closing an AMQP connection failed", exc_info=True)

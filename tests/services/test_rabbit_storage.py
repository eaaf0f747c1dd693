"""The RabbitMQ Huey storage against the real broker and Redis: priority, ack after execute,
redelivery of what a dead worker held, flush, results and locks in Redis."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pika
import pytest
import redis
from huey.exceptions import ConfigurationError

from sapari_server.queue.factory import make_queues
from sapari_server.queue.rabbit import RabbitHuey, split_amqp_url

from ..conftest import need_service

pytestmark = pytest.mark.services
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
REDIS = "redis://127.0.0.1:6379/0"
URL = f"{AMQP}?results={REDIS}"


def _cleanup(huey: RabbitHuey) -> None:
    huey.storage.flush_all()  # and the Redis side: results, schedule, counters
    huey.storage.delete_queue()
    huey.storage.close()


@pytest.fixture
def huey() -> Iterator[RabbitHuey]:
    need_service("RabbitMQ", "127.0.0.1", 5672)
    need_service("Redis", "127.0.0.1", 6379)
    amqp, options = split_amqp_url(URL)
    h = RabbitHuey(f"t_{secrets.token_hex(4)}", amqp_url=amqp, **options)
    yield h
    _cleanup(h)


def _in_thread(fn):  # noqa: ANN001, ANN202
    """Run ``fn`` on a thread of its own (its own AMQP connection) and return its result."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(30)
    assert not t.is_alive()
    return out[0]


def test_url_needs_redis_for_results_and_strips_our_options() -> None:
    with pytest.raises(ValueError, match=r"results=redis://"):
        split_amqp_url(AMQP)
    with pytest.raises(ValueError, match="max_priority"):
        split_amqp_url(f"{URL}&max_priority=300")
    amqp, options = split_amqp_url(f"{URL}&max_priority=5&heartbeat=30")
    assert amqp == f"{AMQP}?heartbeat=30"
    assert options == {"results_url": REDIS, "max_priority": 5}
    # pika takes what is left: no "Unknown URL parameter".
    assert pika.URLParameters(amqp).heartbeat == 30


def test_enqueue_execute_ack(huey: RabbitHuey) -> None:
    ran = []

    @huey.task()
    def add(a: int, b: int) -> int:
        ran.append((a, b))
        return a + b

    result = add(2, 3)
    assert huey.pending_count() == 1
    task = huey.dequeue()
    assert task is not None and task.args == (2, 3)
    assert huey.pending_count() == 0  # held by this thread, not ready for others
    huey.execute(task)
    assert ran == [(2, 3)]
    assert result.get() == 5  # the result went through Redis
    # Acknowledged: a fresh connection (a restarted worker) finds nothing to redo.
    huey.storage.close_thread()
    assert _in_thread(huey.storage.dequeue) is None
    assert huey.pending_count() == 0


def test_unacknowledged_task_is_redelivered_when_its_worker_goes(huey: RabbitHuey) -> None:
    @huey.task()
    def work(n: int) -> int:
        return n

    work(7)
    # A worker thread takes the message and dies before executing it: its connection closes.
    held = _in_thread(lambda: (huey.storage.dequeue(), huey.storage.close_thread())[0])
    assert held is not None
    again = huey.dequeue()
    assert again is not None and again.args == (7,)
    assert huey.deserialize_task(held).id == again.id
    huey.execute(again)
    huey.storage.close_thread()
    assert _in_thread(huey.storage.dequeue) is None


def test_interrupted_task_goes_back_to_the_queue(huey: RabbitHuey) -> None:
    @huey.task()
    def stopped() -> None:
        raise KeyboardInterrupt  # what an exit signal does inside a process worker

    stopped()
    huey.execute(huey.dequeue())
    task = huey.dequeue()  # nacked with requeue: delivered again
    assert task is not None and task.name == "stopped"


def test_interactive_before_batch(huey: RabbitHuey) -> None:
    @huey.task()
    def job(name: str) -> str:
        return name

    for i in range(50):
        huey.enqueue(job.s(f"batch-{i}", priority=0))
    huey.enqueue(job.s("interactive", priority=10))
    huey.enqueue(job.s("above-max", priority=99))  # clamped to max_priority, still first tier
    assert huey.pending_count() == 52
    first, second, third = (huey.dequeue() for _ in range(3))
    for t in (first, second, third):
        huey.execute(t)
    assert {first.args[0], second.args[0]} == {"interactive", "above-max"}
    assert third.args[0] == "batch-0"  # within a priority: first in, first out


def test_peek_flush_and_redis_side(huey: RabbitHuey) -> None:
    @huey.task()
    def job(n: int) -> int:
        return n

    for n in range(5):
        huey.enqueue(job.s(n, priority=n % 2))
    peek = [huey.deserialize_task(d).args[0] for d in huey.storage.enqueued_items(limit=3)]
    assert peek == [1, 3, 0]
    assert huey.pending_count() == 5  # peeking consumed nothing
    # Locks and scheduled tasks live in Redis.
    assert huey.storage.put_if_empty(b"lock", b"1") and not huey.storage.put_if_empty(
        b"lock", b"2")
    huey.storage.flush_queue()
    assert huey.pending_count() == 0
    job.schedule((9,), delay=3600)
    huey.execute(huey.dequeue())  # not due: moved to the schedule in Redis, and acknowledged
    assert huey.storage.schedule_size() == 1
    huey.storage.close_thread()
    assert huey.pending_count() == 0
    huey.flush()
    assert huey.storage.schedule_size() == 0 and not huey.storage.has_data_for_key(b"lock")


def test_a_message_that_cannot_be_read_is_dropped_not_redelivered_forever(
        huey: RabbitHuey) -> None:
    huey.storage.enqueue(b"not a task")
    with pytest.raises(Exception):  # noqa: B017 - whatever the deserializer raises
        huey.dequeue()
    assert huey.dequeue() is None  # the next read acknowledged it
    huey.storage.close_thread()
    assert huey.pending_count() == 0


def test_publisher_reconnects_after_a_broken_connection(huey: RabbitHuey) -> None:
    @huey.task()
    def job() -> None:
        pass

    job()
    huey.storage._idle[0].connection.close()  # as a broker restart would leave it
    job()
    assert huey.pending_count() == 2


def test_concurrent_enqueues_share_a_bounded_pool_of_connections(huey: RabbitHuey) -> None:
    @huey.task()
    def job(n: int) -> None:
        pass

    def send(k: int) -> None:
        for n in range(25):
            huey.enqueue(job.s(k * 100 + n))

    threads = [threading.Thread(target=send, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert huey.pending_count() == 300
    assert 1 <= huey.storage._publishers == len(huey.storage._idle) <= 8


def test_queue_declared_with_other_priority_is_refused_clearly(huey: RabbitHuey) -> None:
    huey.storage.queue_size()  # declares it with x-max-priority 10
    amqp, options = split_amqp_url(f"{URL}&max_priority=5")
    other = RabbitHuey(huey.name, amqp_url=amqp, **options)
    try:
        with pytest.raises(ConfigurationError, match="max_priority"):
            other.storage.queue_size()
    finally:
        other.storage.close()


def test_factory_makes_a_heavy_and_a_light_queue() -> None:
    need_service("RabbitMQ", "127.0.0.1", 5672)
    need_service("Redis", "127.0.0.1", 6379)
    name = f"t_{secrets.token_hex(4)}"
    queues = make_queues(URL, name)
    try:
        assert {q: h.storage.queue for q, h in queues.items()} == {
            "heavy": f"{name}_heavy", "light": f"{name}_light"}
        assert all(isinstance(h, RabbitHuey) for h in queues.values())
    finally:
        for h in queues.values():
            _cleanup(h)
    with pytest.raises(ValueError, match="SAPARI_QUEUE_NAME"):
        make_queues(URL, "bad name!")
    assert not redis.Redis.from_url(REDIS).keys(f"*{name}*")

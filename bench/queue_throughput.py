"""Queue throughput of trivial tasks per Huey backend: SqliteHuey (the embedded default),
PriorityRedisHuey, and Huey on RabbitMQ (our storage, results in Redis).

For each backend: enqueue N tasks (tasks/s of ``enqueue``, from one thread and from 8
threads at once, as parallel API requests do), then drain them with a consumer
of W worker threads (tasks/s executed, each acknowledged after it ran), then enqueue and
execute at once (a consumer running while N tasks arrive: tasks/s end to end) and the
median enqueue-to-start latency of that run. Queues get unique names and are removed after.

    .venv/bin/python bench/queue_throughput.py --tasks 2000 --workers 2
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from huey import Huey

from sapari_server.queue.consumer import ThreadConsumer
from sapari_server.queue.factory import make_huey

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F?results=redis://127.0.0.1:6379/0"
REDIS = "redis://127.0.0.1:6379/0"


def _backends(tmp: Path) -> dict[str, str]:
    return {"sqlite (SqliteHuey)": f"sqlite://{tmp / 'queue.db'}",
            "redis (PriorityRedisHuey)": REDIS,
            "rabbitmq (RabbitHuey)": AMQP}


def _cleanup(huey: Huey) -> None:
    huey.flush()
    delete = getattr(huey.storage, "delete_queue", None)
    if delete is not None:
        delete()
    huey.storage.close()


def _run(huey: Huey, n: int, workers: int) -> dict[str, float]:
    done = threading.Semaphore(0)
    started: dict[int, float] = {}

    @huey.task(name="noop")
    def noop(i: int, t0: float) -> None:
        started[i] = time.perf_counter() - t0
        done.release()

    def wait_all(count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(count):
            if not done.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                raise RuntimeError(f"{huey.name}: tasks did not finish in {timeout} s")

    def consumer() -> ThreadConsumer:
        c = ThreadConsumer(huey, workers=workers, worker_type="thread", periodic=False,
                           initial_delay=0.01, max_delay=0.1)
        c.start()
        return c

    # 1. enqueue only: from one thread, then from 8 at once (API requests in parallel)
    t = time.perf_counter()
    for i in range(n):
        noop(i, 0.0)
    enqueue = n / (time.perf_counter() - t)
    t = time.perf_counter()
    senders = [threading.Thread(target=lambda k=k: [noop(n + k * n + i, 0.0)
                                                    for i in range(n // 8)]) for k in range(8)]
    for th in senders:
        th.start()
    for th in senders:
        th.join()
    parallel = 8 * (n // 8) / (time.perf_counter() - t)
    # 2. drain what is queued
    t = time.perf_counter()
    c = consumer()
    wait_all(n + 8 * (n // 8), 300)
    drain = (n + 8 * (n // 8)) / (time.perf_counter() - t)
    # 3. enqueue while the consumer runs: end to end
    started.clear()
    t = time.perf_counter()
    for i in range(n):
        noop(i, time.perf_counter())
    wait_all(n, 300)
    both = n / (time.perf_counter() - t)
    c.stop(graceful=True)
    return {"enqueue": enqueue, "parallel": parallel, "drain": drain, "both": both,
            "p50_ms": statistics.median(started.values()) * 1000}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000, help="tasks per run (default 1000)")
    ap.add_argument("--workers", type=int, default=2, help="consumer threads (default 2)")
    ap.add_argument("--only", help="run only backends whose label contains this")
    args = ap.parse_args(argv)
    rows: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sapari-bench-") as tmp:
        for label, url in _backends(Path(tmp)).items():
            if args.only and args.only not in label:
                continue
            huey = make_huey(url, f"bench_{secrets.token_hex(4)}")
            try:
                rows.append((label, _run(huey, args.tasks, args.workers)))
            except Exception as e:  # a backend that is not running: say so, go on
                rows.append((label, f"skipped: {type(e).__name__}: {e}"))
            finally:
                try:
                    _cleanup(huey)
                except Exception:
                    pass
    print(f"\nqueue throughput: {args.tasks} trivial tasks, {args.workers} worker threads\n")
    print(f"{'backend':28} {'enqueue/s':>10} {'8 threads':>10} {'drain/s':>10} "
          f"{'enq+exec/s':>11} {'p50 start ms':>13}")
    for label, r in rows:
        if isinstance(r, str):
            print(f"{label:28} {r}")
        else:
            print(f"{label:28} {r['enqueue']:10.0f} {r['parallel']:10.0f} {r['drain']:10.0f} "
                  f"{r['both']:11.0f} {r['p50_ms']:13.1f}")


if __name__ == "__main__":
    main()

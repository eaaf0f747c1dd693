"""Events across OS processes through Redis pub/sub (``SAPARI_EVENTS_URL=redis://``).

A ``sapari-nb serve`` process serves the SSE stream; a separate process (the emitter, built
on the real runtime like any worker) commits events and notifies the bus. Latency is the
client's receive time minus the time taken just before the commit (same machine clock).
"""

from __future__ import annotations

import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sapari_nb import Client
from sapari_nb.events import Event, iter_events
from sapari_testkit.generate import TalkTruth

from ..conftest import need_service
from .fleet import ROOT, Api, RedisServer, pg_database, service_env

pytestmark = pytest.mark.services
LIMIT_MS = 100.0


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    from sapari_server.db.migrate import upgrade

    with pg_database("sapari_events") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="module")
def channel_url() -> str:
    need_service("Redis", "127.0.0.1", 6379)
    # Pub/sub leaves no keys behind; a channel of its own keeps other tests' wake-ups out.
    return f"redis://127.0.0.1:6379/0?channel=sapari-test-{secrets.token_hex(4)}"


def new_account(db_url: str, name: str) -> tuple[str, str]:
    from sapari_server.auth import create_user
    from sapari_server.db.engine import make_sync_engine, sync_sessions, transaction

    engine = make_sync_engine(db_url)
    try:
        with transaction(sync_sessions(engine)) as s:
            user, token = create_user(s, f"{name}-{secrets.token_hex(3)}")
            return user.id, token
    finally:
        engine.dispose()


class Emitter:
    """The event-committing process (tests/services/event_emitter.py)."""

    def __init__(self, env: dict[str, str], user_id: str, project_id: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.services.event_emitter", user_id, project_id],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        assert self._line(60) == "ready", self.proc.stderr.read() if self.proc.stderr else ""

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        assert out, f"the emitter said nothing in {timeout} s"
        return out[0].strip()

    def send(self, count: int, interval: float) -> None:
        """Start emitting (returns at once); ``sent()`` waits for the end."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"emit {count} {interval}\n")
        self.proc.stdin.flush()

    def sent(self, timeout: float = 60.0) -> None:
        assert self._line(timeout).startswith("sent")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def receive(api: Api, token: str, project_id: str, count: int,
            start: Callable[[], None], timeout: float = 60.0) -> list[tuple[int, float]]:
    """Connect to ``api``'s stream, call ``start`` once connected, collect ``count`` events:
    [(seq, latency ms)]."""
    got: list[tuple[int, float]] = []
    started = False

    def on_status(state: str, _msg: str) -> None:
        nonlocal started
        if state == "connected" and not started:
            started = True
            start()

    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as http:
        cursor = http.get("/events/cursor").json()["last_event_id"]
        for ev in iter_events(http, project_id=project_id, after=cursor, on_status=on_status,
                              deadline=time.monotonic() + timeout, read_timeout=10):
            got.append((ev.payload["seq"], (time.time() - ev.payload["t"]) * 1000))
            if len(got) == count:
                break
    assert len(got) == count, f"{len(got)} of {count} events arrived\n{api.tail()}"
    return got


def summary(lat: list[float]) -> str:
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    return f"p50 {statistics.median(lat):.1f} ms, p99 {q[98]:.1f} ms, max {max(lat):.1f} ms"


@pytest.fixture
def fleet_env(pg: str, tmp_path: Path) -> Callable[..., dict[str, str]]:
    def env(**extra: str) -> dict[str, str]:
        return service_env(database_url=pg, local_user="false", sse_keepalive="1",
                           data_dir=str(tmp_path / "data"), **extra)
    return env


def _project(api: Api, token: str) -> str:
    with Client(api.url, token, progress=False) as c:
        return c.create_project("events").id


def test_cross_process_latency_under_100ms(fleet_env: Callable[..., dict[str, str]], pg: str,
                                           channel_url: str, tmp_path: Path) -> None:
    env = fleet_env(events_url=channel_url)
    api = Api("api-1", env, tmp_path / "api1", tmp_path / "api1.log").start()
    emitter = None
    try:
        api.wait_ready()
        user_id, token = new_account(pg, "latency")
        project_id = _project(api, token)
        emitter = Emitter(env, user_id, project_id)
        # Warm-up: the API's first stream subscribes, the emitter's publisher connects.
        receive(api, token, project_id, 1, lambda: emitter.send(1, 0))
        emitter.sent()
        got = receive(api, token, project_id, 60, lambda: emitter.send(60, 0.03))
        emitter.sent()
        assert [s for s, _ in got] == list(range(1, 61)), "events lost, repeated or reordered"
        lat = [ms for _, ms in got]
        print(f"\nRedis bus, worker process -> API process -> client: {summary(lat)}")
        within = sum(ms < LIMIT_MS for ms in lat) / len(lat)
        # Every event within 100 ms is the requirement; a shared 2-core test machine may
        # stall a process now and then, so one straggler in twenty is tolerated, not more.
        assert within >= 0.95, f"only {within:.0%} within {LIMIT_MS} ms ({summary(lat)})"
        assert statistics.median(lat) < LIMIT_MS / 2, summary(lat)
    finally:
        if emitter is not None:
            emitter.close()
        api.stop()


def test_without_the_redis_bus_other_processes_wait_for_the_poll(
        fleet_env: Callable[..., dict[str, str]], pg: str, tmp_path: Path) -> None:
    """The control: the in-process bus cannot hear another process, so the stream only finds
    its events at the next poll of the log. What the Redis bus removes is measurable."""
    env = fleet_env()
    api = Api("api-local-bus", env, tmp_path / "api", tmp_path / "api.log").start()
    emitter = None
    try:
        api.wait_ready()
        user_id, token = new_account(pg, "control")
        project_id = _project(api, token)
        emitter = Emitter(env, user_id, project_id)
        got = receive(api, token, project_id, 20, lambda: emitter.send(20, 0.05))
        lat = [ms for _, ms in got]
        print(f"\nin-process bus, events from another process: {summary(lat)}")
        assert statistics.median(lat) > LIMIT_MS, summary(lat)
    finally:
        if emitter is not None:
            emitter.close()
        api.stop()


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_api_restart_client_misses_nothing(fleet_env: Callable[..., dict[str, str]], pg: str,
                                           channel_url: str, tmp_path: Path, how: str) -> None:
    """The client's EventStream is connected to API 1 while a worker process commits events;
    API 1 dies (SIGKILL) or stops (SIGINT) and starts again on its port: the stream
    reconnects with Last-Event-ID and hears every event once, in order."""
    env = fleet_env(events_url=channel_url)
    api = Api("api-1", env, tmp_path / "api1", tmp_path / "api1.log").start()
    emitter = None
    try:
        api.wait_ready()
        user_id, token = new_account(pg, "restart")
        project_id = _project(api, token)
        emitter = Emitter(env, user_id, project_id)
        seqs: list[int] = []
        statuses: list[str] = []
        total = 120
        waited: list[int] = []
        with Client(api.url, token, progress=False) as client, \
                Client(api.url, token, progress=False) as waiter:
            cursor = client.cursor()
            stream = client.stream(project_id, after=cursor,
                                   on_status=lambda s, _m: statuses.append(s))
            stream.on(lambda ev: seqs.append(ev.payload["seq"]))
            # The blocking reader (Client.wait_for, behind wait_clip/wait_export) too.
            waiting = threading.Thread(target=lambda: waiter.wait_for(
                lambda ev: ev.payload.get("seq") == total - 1, project_id=project_id,
                after=cursor, timeout=60, on_event=lambda ev: waited.append(ev.payload["seq"])))
            waiting.start()
            deadline = time.monotonic() + 20
            while "connected" not in statuses:
                assert time.monotonic() < deadline, "the stream never connected"
                time.sleep(0.02)
            emitter.send(total, 0.025)  # 3 s of events
            while len(seqs) < 20:
                assert time.monotonic() < deadline, f"no events before the restart: {seqs}"
                time.sleep(0.01)
            down_at = len(seqs)
            t0 = time.monotonic()
            api.kill() if how == "kill" else api.stop()
            # A graceful stop must not wait on the open event stream (a rolling restart).
            stopping = time.monotonic() - t0
            assert stopping < 8, f"the API took {stopping:.1f} s to stop\n{api.tail()}"
            assert not api.alive()
            api.start().wait_ready()
            emitter.sent()
            deadline = time.monotonic() + 30
            while (len(seqs) < total or statuses[-1] != "connected") \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            assert seqs == list(range(total)), \
                f"missed or repeated: {sorted(set(range(total)) - set(seqs))[:10]}, {len(seqs)}"
            # The restart really cut the stream mid-way, and it came back.
            assert down_at < total * 0.8, down_at
            assert "reconnecting" in statuses, statuses
            assert statuses[-1] == "connected", statuses
            waiting.join(30)
            assert waited == list(range(total)), f"wait_for: {len(waited)} of {total}"
    finally:
        if emitter is not None:
            emitter.close()
        api.stop()


def test_redis_lost_and_back(fleet_env: Callable[..., dict[str, str]], pg: str,
                             tmp_path: Path) -> None:
    """Redis dies: streams keep finding events by polling the log (nothing lost); Redis comes
    back: the bus re-subscribes by itself and delivery is fast again."""
    redis_srv = RedisServer(tmp_path / "redis").start()
    env = fleet_env(events_url=redis_srv.url)
    api = Api("api-1", env, tmp_path / "api1", tmp_path / "api1.log").start()
    emitter = None
    try:
        api.wait_ready()
        user_id, token = new_account(pg, "redis-loss")
        project_id = _project(api, token)
        emitter = Emitter(env, user_id, project_id)
        receive(api, token, project_id, 1, lambda: emitter.send(1, 0))
        emitter.sent()
        fast = receive(api, token, project_id, 10, lambda: emitter.send(10, 0.05))
        emitter.sent()
        assert statistics.median(ms for _, ms in fast) < LIMIT_MS

        redis_srv.kill()
        lost = receive(api, token, project_id, 10, lambda: emitter.send(10, 0.1))
        emitter.sent()
        assert [s for s, _ in lost] == list(range(11, 21))
        lat = [ms for _, ms in lost]
        print(f"\nRedis down, polling the log: {summary(lat)}")
        # The poll interval without Redis is 1 s (plus a loaded machine's slack).
        assert max(lat) < 2500, summary(lat)

        redis_srv.start()
        # The API re-subscribes and the emitter reconnects within the 2 s retry ceiling.
        deadline = time.monotonic() + 30
        while True:
            back = receive(api, token, project_id, 5, lambda: emitter.send(5, 0.05))
            emitter.sent()
            lat = [ms for _, ms in back]
            if statistics.median(lat) < LIMIT_MS:
                break
            assert time.monotonic() < deadline, f"still slow after Redis came back: {summary(lat)}"
            time.sleep(0.5)
        print(f"Redis back: {summary(lat)}")
    finally:
        if emitter is not None:
            emitter.close()
        api.stop()
        redis_srv.kill()


def test_events_of_a_worker_inside_api_2_reach_a_client_on_api_1(
        fleet_env: Callable[..., dict[str, str]], pg: str, channel_url: str, tmp_path: Path,
        talk: tuple[Path, TalkTruth]) -> None:
    """The issue's case word for word: the job runs in the worker threads of API process 2
    (it was submitted there); the client listens on API process 1 only."""
    shared = tmp_path / "objects"  # both processes sign and serve the same local objects
    env = fleet_env(events_url=channel_url, storage_url=f"file://{shared}",
                    secret_key=secrets.token_urlsafe(32), transcriber="none",
                    preview_artifacts="false")
    api1 = Api("api-1", env, tmp_path / "api1", tmp_path / "api1.log").start()
    api2 = Api("api-2", env, tmp_path / "api2", tmp_path / "api2.log", workers=1).start()
    try:
        api1.wait_ready()
        api2.wait_ready()
        _, token = new_account(pg, "two-apis")
        heard: list[tuple[Event, float]] = []
        with Client(api1.url, token, progress=False) as on1, \
                Client(api2.url, token, progress=False) as on2:
            project = on1.create_project("two apis")
            stream = on1.stream(project.id, after=on1.cursor())
            stream.on(lambda ev: heard.append((ev, time.time())))
            clip = on2.upload(project.id, talk[0])
            deadline = time.monotonic() + 120
            while not any(ev.type in ("ClipReady", "ClipFailed") for ev, _ in heard):
                assert time.monotonic() < deadline, f"no ClipReady on API 1\n{api2.tail()}"
                time.sleep(0.05)
            assert on1.clip(clip.id).status == "ready"
        lat = [(t - ev.created_at.timestamp()) * 1000 for ev, t in heard
               if ev.type in ("JobProgress", "ClipReady")]
        print(f"\nworker in API 2 -> client on API 1: {len(lat)} events, {summary(lat)}")
        assert len(lat) >= 3
        assert statistics.median(lat) < LIMIT_MS, summary(lat)
    finally:
        api1.stop()
        api2.stop()

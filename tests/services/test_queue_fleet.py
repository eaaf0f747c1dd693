"""Workers as separate OS processes (``sapari-nb worker``) on RabbitMQ + Redis + PostgreSQL:
priority, a worker killed or frozen mid-render (the export completes exactly once), and
heavy/light separation. The API runs in this process; the workers share its data folder
(local object storage) and database."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pika
import psycopg
import pytest
import redis

from sapari_nb import Client
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import generate_talk

from ..conftest import need_service, start_server

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F?results=redis://127.0.0.1:6379/0"
STALE = 3.0  # seconds without a heartbeat before a running job counts as orphaned
# A render slow enough to stop mid-way: exact mode (every frame encoded), a slow preset.
SLOW_EXPORT = {"mode": "exact", "preset": "slow", "crf": 18}


@dataclass
class Fleet:
    server: EmbeddedServer
    client: Client
    data_dir: Path
    db_url: str
    env: dict[str, str]
    logs: Path
    project_id: str  # a project with one processed clip
    seconds: float  # the clip's duration

    def worker(self, name: str, queue: str = "all", threads: int = 1) -> Worker:
        return Worker(name, self, queue, threads).start()

    def job(self, job_id: str) -> dict:
        with psycopg.connect(self.db_url.replace("+psycopg", "")) as conn:
            row = conn.execute("select status, attempts, progress, started_at, error from jobs "
                               "where id = %s", (job_id,)).fetchone()
        return dict(zip(("status", "attempts", "progress", "started_at", "error"), row,
                        strict=True))

    def events(self, type_: str, key: str, value: str) -> list[dict]:
        with psycopg.connect(self.db_url.replace("+psycopg", "")) as conn:
            rows = conn.execute("select payload from events where type = %s",
                                (type_,)).fetchall()
        return [p for (p,) in rows if p.get(key) == value]


class Worker:
    def __init__(self, name: str, fleet: Fleet, queue: str, threads: int) -> None:
        self.name, self.log = name, fleet.logs / f"{name}.log"
        self.argv = [sys.executable, "-m", "sapari_nb.cli", "worker", "--queue", queue,
                     "--workers", str(threads), "--data-dir", str(fleet.data_dir)]
        self.env = fleet.env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a frozen one must run to exit
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-30:])


def wait_until(what: str, cond: Callable[[], object], timeout: float,
               *workers: Worker) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" +
                                 "\n".join(w.tail() for w in workers))
        time.sleep(0.05)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379), ("RabbitMQ", 5672)):
        need_service(name, "127.0.0.1", port)
    root = tmp_path_factory.mktemp("queue-fleet")
    db = f"sapari_queue_{secrets.token_hex(4)}"
    queue_name = f"t_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    settings = {"database_url": db_url, "queue_url": AMQP, "queue_name": queue_name,
                "job_stale_after": STALE, "preview_artifacts": False, "transcriber": "none",
                "take_detector": "heuristic"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAPARI_")}
    env.update({f"SAPARI_{k.upper()}": str(v) for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    data_dir = root / "data"
    server = start_server(data_dir, embedded_workers=0, **settings)
    logs = root / "logs"
    logs.mkdir()
    clip_path = root / "talk.mp4"
    truth = generate_talk(clip_path, pauses=[0.6, 1.0, 0.8], speech_lengths=[3.0] * 4,
                          width=640, height=360, seed=3)
    client = Client(server.url, server.token, progress=False)
    fl = Fleet(server, client, data_dir, db_url, env, logs, "", truth.duration)
    try:
        project = client.create_project("fleet")
        after = client.cursor()
        clip = client.upload(project.id, clip_path)
        w = fl.worker("setup", "heavy")
        try:
            assert client.wait_clip(clip, after=after, timeout=60).status == "ready", w.tail()
        finally:
            w.stop()
        fl.project_id = project.id
        yield fl
    finally:
        client.close()
        server.stop()
        amqp = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
        ch = amqp.channel()
        for q in ("heavy", "light"):
            ch.queue_delete(f"{queue_name}_{q}")
        amqp.close()
        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = [k for q in ("heavy", "light") for k in r.keys(f"huey.*.{queue_name}_{q}*")]
        if keys:
            r.delete(*keys)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _export_objects(fleet: Fleet, export_id: str) -> list[Path]:
    return sorted(p for p in (fleet.data_dir / "objects").rglob("*")
                  if p.is_file() and export_id in p.parts)


def _check_one_valid_export(fleet: Fleet, export_id: str, tmp_path: Path) -> None:
    """Completed exactly once: one completion event, one object, a video that decodes."""
    exp = fleet.client.export_status(export_id)
    assert exp.status == "succeeded", exp.error
    assert len(fleet.events("ExportComplete", "export_id", export_id)) == 1
    assert not fleet.events("ExportFailed", "export_id", export_id)
    objects = _export_objects(fleet, export_id)
    assert len(objects) == 1, objects
    out = fleet.client.download(export_id, tmp_path / "out.mp4")
    with av.open(str(out)) as f:
        frames = sum(1 for _ in f.decode(video=0))
    assert abs(frames / 30 - fleet.seconds) < 0.2, (frames, fleet.seconds)


def _running(fleet: Fleet, job_id: str, attempt: int, progress: float) -> bool:
    job = fleet.job(job_id)
    return (job["status"] == "running" and job["attempts"] == attempt
            and job["progress"] >= progress)


def test_interactive_job_starts_before_200_batch_jobs(fleet: Fleet) -> None:
    # Exports of an empty project fail at once ("no clips"): 201 real jobs, quick to run.
    empty = fleet.client.create_project("backlog")
    batch = [fleet.client.export(empty.id, priority="batch").job_id for _ in range(200)]
    interactive = fleet.client.export(empty.id, priority="interactive").job_id
    w = fleet.worker("prio", "heavy", threads=1)
    try:
        wait_until("the backlog to drain", lambda: all(
            fleet.job(j)["status"] == "failed" for j in (interactive, batch[-1])), 60, w)
    finally:
        w.stop()
    started = {j: fleet.job(j)["started_at"] for j in [interactive, *batch]}
    assert all(started.values())
    assert started[interactive] < min(started[j] for j in batch)
    # Within one priority, first in, first out.
    assert started[batch[0]] < started[batch[100]] < started[batch[-1]]


def test_worker_killed_mid_render_export_completes_once(fleet: Fleet, tmp_path: Path) -> None:
    a = fleet.worker("kill-a", "heavy")
    b = None
    try:
        exp = fleet.client.export(fleet.project_id, **SLOW_EXPORT)
        wait_until("worker A to render", lambda: _running(fleet, exp.job_id, 1, 0.15), 60, a)
        b = fleet.worker("kill-b", "heavy")
        a.signal(signal.SIGKILL)  # its unacknowledged message goes back to the queue
        a.proc.wait(10)
        wait_until("worker B to finish it", lambda: fleet.job(exp.job_id)["status"]
                   in ("succeeded", "failed"), 90, b)
        job = fleet.job(exp.job_id)
        assert job["status"] == "succeeded" and job["attempts"] == 2, (job, b.tail())
        _check_one_valid_export(fleet, exp.id, tmp_path)
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_frozen_worker_resumed_after_takeover_does_not_commit(fleet: Fleet,
                                                             tmp_path: Path) -> None:
    a = fleet.worker("stop-a", "heavy")
    b = None
    try:
        exp = fleet.client.export(fleet.project_id, **SLOW_EXPORT)
        wait_until("worker A to render", lambda: _running(fleet, exp.job_id, 1, 0.15), 60, a)
        a.signal(signal.SIGSTOP)
        time.sleep(STALE + 0.5)
        # A new worker finds the orphan at its start (as recovery does every minute).
        b = fleet.worker("stop-b", "heavy")
        wait_until("worker B to take it over", lambda: _running(fleet, exp.job_id, 2, 0.0),
                   60, b)
        a.signal(signal.SIGCONT)  # A wakes mid-render, still holding its message
        wait_until("worker B to finish it", lambda: fleet.job(exp.job_id)["status"]
                   in ("succeeded", "failed"), 90, a, b)
        job = fleet.job(exp.job_id)
        assert job["status"] == "succeeded" and job["attempts"] == 2, (job, a.tail(), b.tail())
        # A noticed it lost the job and refused its own results.
        wait_until("worker A to give up", lambda: "attempt 1 stopped" in a.log.read_text(),
                   30, a)
        assert a.proc.poll() is None, a.tail()  # and it is still serving
        _check_one_valid_export(fleet, exp.id, tmp_path)
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_long_heavy_job_does_not_block_a_light_one(fleet: Fleet) -> None:
    heavy = fleet.worker("sep-heavy", "heavy")
    light = fleet.worker("sep-light", "light")
    try:
        exp = fleet.client.export(fleet.project_id, **SLOW_EXPORT)
        wait_until("the render to start", lambda: _running(fleet, exp.job_id, 1, 0.05), 60,
                   heavy)
        run = fleet.client.analyze(fleet.project_id)
        wait_until("the analysis", lambda: fleet.job(run.job_id)["status"] == "succeeded", 60,
                   light)
        assert fleet.job(exp.job_id)["status"] == "running", "the render should still run"
        fleet.client.cancel(exp.job_id)  # no need to wait for the rest of it
    finally:
        heavy.stop()
        light.stop()


def test_recovery_on_many_workers_requeues_an_orphan_once(fleet: Fleet) -> None:
    """Recovery runs on every worker; a stale job must get one new message, not one each."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from sqlalchemy import update

    from sapari_server.db.base import utcnow
    from sapari_server.db.models import Job
    from sapari_server.queue.jobs import take_orphans

    rt = fleet.server.app.state.runtime
    empty = fleet.client.create_project("orphan")
    job_id = fleet.client.export(empty.id, priority="batch").job_id  # no worker: stays queued
    with rt.sync_session() as s, s.begin():  # as if a worker claimed it and then died
        s.execute(update(Job).where(Job.id == job_id).values(
            status="running", attempts=1, heartbeat_at=utcnow() - timedelta(seconds=60)))
    with ThreadPoolExecutor(6) as pool:
        taken = list(pool.map(lambda _: [j.id for j in take_orphans(rt, 3600)], range(6)))
    assert sorted(sum(taken, [])) == [job_id]
    job = fleet.job(job_id)
    # Queued again, and the dead attempt's fence is closed (a late commit would be refused).
    assert job["status"] == "queued" and job["attempts"] == 1
    assert take_orphans(rt, 3600) == []
    fleet.client.cancel(job_id)

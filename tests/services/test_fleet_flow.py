"""THE WHOLE FLOW on the fleet, every part its own OS process, nothing shared on disk:

PostgreSQL (metadata) + S3 (moto's server on loopback: bytes) + RabbitMQ (Huey queues, results
in Redis) + Redis pub/sub (events); ``sapari-nb db upgrade`` and ``sapari-nb storage setup``
first (the deploy's one-shots), then two ``sapari-nb serve`` and two ``sapari-nb worker``
(heavy and light, as in server/deploy/compose.yaml).

The client talks to API 1 only: it uploads in presigned multipart parts straight to S3,
processes, analyzes, accepts, exports and downloads, and every event the workers commit
reaches its stream on API 1. API 2 serves the same state and the same event log.
"""

from __future__ import annotations

import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import av
import httpx
import pytest

from sapari_nb import Client
from sapari_nb.events import Event
from sapari_testkit.generate import TalkTruth, generate_talk

from ..conftest import need_service
from .fleet import ROOT, Api, Proc, cli, free_port, pg_database, service_env, worker

pytestmark = [pytest.mark.services, pytest.mark.slow]
MiB = 1024 * 1024
RESULTS = "redis://127.0.0.1:6379/0"


@dataclass
class Fleet:
    api1: Api
    api2: Api
    workers: list[Proc]
    token: str
    settings: dict[str, str]
    s3_endpoint: str
    bucket: str
    data_root: Path

    def tails(self) -> str:
        return "\n".join(p.tail(25) for p in (self.api1, self.api2, *self.workers))


def _run_cli(env: dict[str, str], *args: str) -> str:
    r = subprocess.run(cli(*args), cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"sapari-nb {' '.join(args)}: {r.stderr}"
    return r.stdout.strip()


def _s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def talk720(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TalkTruth]:
    # Lossless 720p: over 5 MiB (S3's smallest part), so the upload takes two parts.
    path = tmp_path_factory.mktemp("media") / "talk720.mp4"
    truth = generate_talk(path, pauses=[0.8, 1.5, 0.6, 1.1], seed=7, width=1280, height=720,
                          crf=0, lead_silence=0.5, tail_silence=0.8, audio_bitrate=320_000)
    assert path.stat().st_size > 5 * MiB
    return path, truth


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379), ("RabbitMQ", 5672)):
        need_service(name, "127.0.0.1", port)
    pytest.importorskip("moto")
    root = tmp_path_factory.mktemp("fleet")
    tag = secrets.token_hex(4)
    moto_port = free_port()
    moto = Proc("moto-s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                            str(moto_port)], service_env(), root / "moto.log").start()
    endpoint = f"http://127.0.0.1:{moto_port}"
    bucket = f"sapari-fleet-{tag}"
    queue_name = f"fleet_{tag}"
    procs: list[Proc] = []
    with pg_database("sapari_fleet") as db_url:
        settings = {
            "database_url": db_url,
            "storage_url": f"s3://{bucket}?endpoint={endpoint}&region=us-east-1&path_style=1",
            "storage_access_key": "testing", "storage_secret_key": "testing",
            "queue_url": f"amqp://guest:guest@127.0.0.1:5672/%2F?results={RESULTS}",
            "queue_name": queue_name,
            "events_url": f"redis://127.0.0.1:6379/0?channel=sapari-fleet-{tag}",
            # Every process signs with the same key; no process makes a local user.
            "secret_key": secrets.token_urlsafe(32), "local_user": "false",
            "multipart_threshold": str(1 * MiB), "multipart_part_size": str(5 * MiB),
            "transcriber": "none", "take_detector": "heuristic", "sse_keepalive": "1",
        }
        env = service_env(**settings)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(endpoint, timeout=2)
                    break
                except httpx.TransportError:
                    assert moto.alive() and time.monotonic() < deadline, moto.tail()
                    time.sleep(0.1)
            # The deploy's one-shots, then the long-running processes.
            assert "upgraded from empty to" in _run_cli(env, "db", "upgrade",
                                                         "--data-dir", str(root / "setup"))
            _run_cli(env, "storage", "setup", "--data-dir", str(root / "setup"))
            token = _run_cli(env, "users", f"fleet-{tag}", "--data-dir", str(root / "setup"))
            assert token.startswith("sap_")
            api1 = Api("api-1", env, root / "api1", root / "api1.log")
            api2 = Api("api-2", env, root / "api2", root / "api2.log")
            workers = [worker("worker-heavy", env, root / "w1", root / "w1.log", 2,
                              "--queue", "heavy"),
                       worker("worker-light", env, root / "w2", root / "w2.log", 2,
                              "--queue", "light")]
            procs = [api1, api2, *workers]
            for p in procs:
                p.start()
            api1.wait_ready()
            api2.wait_ready()
            yield Fleet(api1, api2, workers, token, settings, endpoint, bucket, root)
        finally:
            for p in procs:
                p.stop()
            _cleanup(endpoint, bucket, queue_name)
            moto.stop()


def _cleanup(endpoint: str, bucket: str, queue_name: str) -> None:
    import pika
    import redis

    try:
        c = _s3_client(endpoint)
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                c.delete_object(Bucket=bucket, Key=o["Key"])
        for u in c.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            c.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        c.delete_bucket(Bucket=bucket)
    except Exception:  # moto goes away with its process anyway
        pass
    conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
    ch = conn.channel()
    for q in ("heavy", "light"):
        ch.queue_delete(f"{queue_name}_{q}")
    conn.close()
    r = redis.Redis.from_url(RESULTS)
    keys = [k for k in r.scan_iter(f"huey.*{queue_name}*")]
    if keys:
        r.delete(*keys)


def test_whole_flow_two_apis_two_workers(fleet: Fleet, talk720: tuple[Path, TalkTruth],
                                         tmp_path: Path) -> None:
    src, truth = talk720
    heard: list[tuple[Event, float]] = []
    with Client(fleet.api1.url, fleet.token, progress=False) as client:
        project = client.create_project("fleet flow")
        after = client.cursor()
        stream = client.stream(project.id, after=after)
        stream.on(lambda ev: heard.append((ev, time.time())))

        # 1 upload: presigned parts straight to S3 (the API never sees the bytes).
        clip = client.upload(project.id, src)
        s3 = _s3_client(fleet.s3_endpoint)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=fleet.bucket)["Contents"]]
        source = next(k for k in keys if f"/clips/{clip.id}/source" in k)
        head = s3.head_object(Bucket=fleet.bucket, Key=source)
        assert head["ContentLength"] == src.stat().st_size
        # A multipart object's ETag says how many parts made it.
        assert head["ETag"].strip('"').endswith("-2"), head["ETag"]

        # 2 process (heavy worker), 3 analyze (light worker), 4 accept, 5 export (heavy).
        clip = client.wait_clip(clip, after=after, timeout=240)
        assert clip.status == "ready", fleet.tails()
        run = client.wait_analysis(client.analyze(project.id), after=after, timeout=240)
        assert run.status == "succeeded", fleet.tails()
        # The four pauses between the phrases at least (lead and tail silence may be cut too).
        assert client.accept_all(project.id) >= 4
        assert len(client.edits(project.id, status="accepted")) >= 4
        exp = client.wait_export(client.export(project.id), after=after, timeout=300)
        assert exp.status == "succeeded", fleet.tails()

        # 6 download: a signed GET on S3, not on the API.
        link = client.download_link(exp.id)
        assert link.url.startswith(fleet.s3_endpoint)
        out = client.download(exp.id, tmp_path / "out.mp4")
        with av.open(str(out)) as c:
            duration = float(c.duration or 0) / 1e6
            assert c.streams.video and c.streams.audio
            frames = sum(1 for _ in c.decode(video=0))
        assert truth.duration - 4.5 < duration < truth.duration - 3.0, duration
        assert abs(frames - duration * 30) <= 2

        # Every worker event reached the stream on API 1, once, in order.
        deadline = time.monotonic() + 10
        while not any(ev.type == "ExportComplete" for ev, _ in heard):
            assert time.monotonic() < deadline, [ev.type for ev, _ in heard]
            time.sleep(0.05)
        ids = [ev.id for ev, _ in heard]
        assert ids == sorted(set(ids))
        types = {ev.type for ev, _ in heard}
        assert {"ClipReady", "AnalysisComplete", "EditsChanged", "ExportComplete",
                "JobProgress"} <= types, types
        # Worker events (committed in the worker processes) against the time API 1's stream
        # handed them over: created_at is stamped before the commit, so this is an upper
        # bound of the delivery time.
        lat = [(t - ev.created_at.replace(tzinfo=ev.created_at.tzinfo or UTC).timestamp())
               * 1000 for ev, t in heard if ev.type in ("JobProgress", "ClipReady",
                                                       "AnalysisComplete", "ExportComplete")]
        print(f"\nfleet: {len(lat)} worker events on API 1's stream, delivery p50 "
              f"{statistics.median(lat):.0f} ms, max {max(lat):.0f} ms")
        assert statistics.median(lat) < 100, sorted(lat)

    # API 2 serves the same state and the same event log.
    with Client(fleet.api2.url, fleet.token, progress=False) as other:
        assert other.export_status(exp.id).status == "succeeded"
        assert [c.id for c in other.clips(project.id)] == [clip.id]
        replay = []
        for ev in other.events(project_id=project.id, after=after):
            replay.append(ev.id)
            if ev.id == ids[-1]:
                break
        assert replay[-len(ids):] == ids and set(ids) <= set(replay)

    # Nothing went through the processes' own folders: no object lives on a local disk.
    local = [p for p in fleet.data_root.rglob("objects") if any(p.rglob("*.*"))]
    assert local == []
    # Each step ran once, on the queue meant for it.
    import psycopg

    with psycopg.connect(fleet.settings["database_url"].replace("+psycopg", "")) as conn:
        kinds = dict(conn.execute("select kind, count(*) from jobs where status = 'succeeded'"
                                  " group by kind").fetchall())
        failed = conn.execute("select count(*) from jobs where status <> 'succeeded'").fetchone()
    assert kinds == {"process_clip": 1, "analyze_project": 1, "render_export": 1}
    assert failed == (0,)
    for p in (fleet.api1, fleet.api2, *fleet.workers):
        assert p.alive(), p.tail()

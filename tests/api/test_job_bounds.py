"""Bounded jobs: cancel, time limits, export sizes bounded by the source, scratch folders."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from sapari_nb import Client
from sapari_nb.errors import JobFailed
from sapari_server.db.models import Artifact, Clip, Job
from sapari_server.queue.consumer import start_embedded_consumer
from sapari_server.queue.factory import BATCH
from sapari_testkit.generate import TalkTruth, generate_talk

from ..conftest import start_server


@pytest.fixture(scope="module")
def long_talk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bounds") / "long talk.mp4"
    generate_talk(path, pauses=[0.6, 0.8, 0.5], speech_lengths=[2.5, 2.5, 2.5, 2.5], seed=5,
                  width=960, height=540)
    return path


def _cancel(srv_url: str, token: str, job_id: str) -> httpx.Response:
    return httpx.post(f"{srv_url}/jobs/{job_id}/cancel",
                      headers={"Authorization": f"Bearer {token}"})


def test_cancel_a_queued_job(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", embedded_workers=0)
    rt = srv.app.state.runtime
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("cancel queued")
            after = client.cursor()
            exp = client.export(project.id)
            r = _cancel(srv.url, srv.token, exp.job_id)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["id"] == exp.job_id and body["status"] == "cancelled"
            assert body["error"] == "cancelled by the user"
            with pytest.raises(JobFailed, match="cancelled by the user"):
                client.wait_export(exp, after=after, timeout=10)
            failed = client.export_status(exp.id)
            assert failed.status == "failed" and failed.error == "cancelled by the user"
            again = _cancel(srv.url, srv.token, exp.job_id)
            assert again.status_code == 409
            assert again.json()["detail"] == (f"job {exp.job_id} is already cancelled: only "
                                              "queued or running jobs can be cancelled")
            # A worker that dequeues it later leaves it alone.
            consumer = start_embedded_consumer(rt, 1)
            try:
                time.sleep(1.5)
            finally:
                consumer.stop(graceful=True)
            assert client.job(exp.job_id).status == "cancelled"
            assert client.export_status(exp.id).status == "failed"
    finally:
        srv.stop()


def test_cancel_a_running_job_stops_it_and_keeps_nothing(tmp_path: Path,
                                                         long_talk: Path) -> None:
    srv = start_server(tmp_path / "data", embedded_workers=1, transcriber="none")
    rt = srv.app.state.runtime
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("cancel running")
            after = client.cursor()
            clip = client.upload(project.id, long_talk)
            with rt.sync_session() as s:
                job_id = s.scalars(select(Job.id).where(Job.target_id == clip.id)).one()
            deadline = time.monotonic() + 30
            while client.job(job_id).status != "running":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            r = _cancel(srv.url, srv.token, job_id)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "cancelled"
            with pytest.raises(JobFailed, match="cancelled by the user"):
                client.wait_clip(clip, after=after, timeout=30)
            # The worker stops at its next report; nothing it made is kept.
            scratch = srv.settings.data_dir / "scratch"
            deadline = time.monotonic() + 30
            while scratch.exists() and any(scratch.iterdir()):
                assert time.monotonic() < deadline, list(scratch.iterdir())
                time.sleep(0.05)
            time.sleep(0.5)
            assert client.job(job_id).status == "cancelled"
            assert client.clip(clip.id).status == "failed"
            with rt.sync_session() as s:
                assert s.scalars(select(Artifact).where(Artifact.clip_id == clip.id)).all() == []
                row = s.get(Clip, clip.id)
                assert row is not None
                key = row.object_key
            clip_dir = rt.storage.path(key).parent
            left = [p.relative_to(clip_dir) for p in clip_dir.rglob("*") if p.is_file()]
            assert [str(p) for p in left] == [Path(key).name], left
    finally:
        srv.stop()


def test_a_job_past_its_time_limit_fails_readably(tmp_path: Path, long_talk: Path) -> None:
    srv = start_server(tmp_path / "data", embedded_workers=1, transcriber="none",
                       job_time_limit=0.3, job_time_limit_per_media_second=0.0)
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("too slow")
            after = client.cursor()
            clip = client.upload(project.id, long_talk)
            with pytest.raises(JobFailed, match="time limit"):
                client.wait_clip(clip, after=after, timeout=60)
            error = client.clip(clip.id).error or ""
            assert "ran longer than its time limit" in error
            assert "SAPARI_JOB_TIME_LIMIT" in error and "SAPARI_JOB_TIME_LIMIT_PER_MEDIA_SECOND" \
                in error
    finally:
        srv.stop()


def test_export_size_is_bounded_by_the_source(client: Client,
                                              talk: tuple[Path, TalkTruth]) -> None:
    project = client.create_project("bounded export")
    after = client.cursor()
    client.wait_clip(client.upload(project.id, talk[0]), after=after, timeout=60)
    src = "320x240"
    with pytest.raises(Exception, match=rf"width 7680 is larger than the project's largest "
                                        rf"source \({src}\)") as e:
        client.export(project.id, width=7680, height=4320)
    assert getattr(e.value, "status", 422) == 422
    with pytest.raises(Exception, match=r"height 480 is larger"):
        client.export(project.id, height=480)
    with pytest.raises(Exception, match=r"more than 2x .* at most 640 with allow_upscale"):
        client.export(project.id, width=1000, allow_upscale=True)
    ok = client.export(project.id, width=640, allow_upscale=True)  # within the factor
    assert ok.status == "queued"
    same = client.export(project.id, width=320)  # the source's own size needs no flag
    for exp in (ok, same):
        client.cancel(exp.job_id)


def test_stale_scratch_folders_are_removed_at_worker_start(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", embedded_workers=0, job_stale_after=5.0)
    rt = srv.app.state.runtime
    try:
        scratch = srv.settings.data_dir / "scratch"
        dead = scratch / "job_0123456789abcdef.1"  # a render killed with kill -9
        fresh = scratch / "job_fedcba9876543210.1"  # too young to judge
        for folder in (dead, fresh):
            folder.mkdir(parents=True)
            (folder / "cut.mp4").write_bytes(b"x" * 1000)
        old = time.time() - 60
        os.utime(dead, (old, old))
        consumer = start_embedded_consumer(rt, 1)
        consumer.stop(graceful=True)
        assert not dead.exists() and fresh.exists()
    finally:
        srv.stop()


def test_normal_runs_leave_no_temporary_folders(client: Client,
                                                talk: tuple[Path, TalkTruth]) -> None:
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.glob("sapari-*"))
    project = client.create_project("no leftovers")
    after = client.cursor()
    client.wait_clip(client.upload(project.id, talk[0]), after=after, timeout=60)
    client.wait_export(client.export(project.id), after=after, timeout=60)
    assert set(tmp.glob("sapari-*")) - before == set()


def test_importing_the_runtime_pulls_in_no_pipeline() -> None:
    code = ("import sys, sapari_server.runtime; "
            "bad = [m for m in sys.modules if m.startswith('sapari_server.pipelines')]; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_lifecycle_runs_hourly_as_batch_work(server) -> None:  # noqa: ANN001
    rt = server.app.state.runtime
    periodic = {t.name: t for t in rt.queues["light"]._registry.periodic_tasks}
    task = periodic["storage_lifecycle"]
    assert task.priority == BATCH
    # Hourly: due at the top of every hour, at no other minute.
    assert task.validate_datetime(datetime(2025, 1, 1, 5, 0))
    assert not task.validate_datetime(datetime(2025, 1, 1, 5, 30))

"""Exactly once: a worker paused (SIGSTOP) past the stale limit loses its job to another
worker; when it resumes, its late results are refused and the objects it wrote are deleted."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sapari_nb import Client
from sapari_server.db.models import Artifact, Clip, Event, Job
from sapari_testkit.generate import generate_talk

from ..conftest import start_server

STALE = 1.0


@pytest.fixture(scope="module")
def slow_talk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Big enough that the preview proxy is still encoding after the audio artifacts landed.
    path = tmp_path_factory.mktemp("fence") / "talk.mp4"
    generate_talk(path, pauses=[0.6, 0.8, 0.5], speech_lengths=[2.5, 2.5, 2.5, 2.5], seed=3,
                  width=960, height=540)
    return path


def _worker(data: Path, log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SAPARI_JOB_STALE_AFTER": str(STALE)}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sapari_nb.cli", "worker", "--workers", "1",
             "--data-dir", str(data)], stdout=out, stderr=subprocess.STDOUT, text=True, env=env)


def _stop(proc: subprocess.Popen[str], log: Path) -> str:
    proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = log.read_text()
    print(f"--- {log.name}\n{text}")  # shown by pytest when the test fails
    return text


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _unlocked(db: Path) -> bool:
    con = sqlite3.connect(db, timeout=0.3)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


def _stopped(proc: subprocess.Popen[str]) -> bool:
    """True once every thread of the process is really stopped (SIGSTOP is asynchronous)."""
    tasks = Path(f"/proc/{proc.pid}/task")
    try:
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0]
                  for t in tasks.iterdir()]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return bool(states) and all(s in "tT" for s in states)


def _pause_outside_transactions(proc: subprocess.Popen[str], data: Path) -> None:
    """SIGSTOP, but not while it holds SQLite's write lock (that would stall everyone)."""
    for _ in range(50):
        proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not _stopped(proc):
            assert time.monotonic() < deadline, "the worker did not stop"
            time.sleep(0.001)
        if all(_unlocked(data / name) for name in ("sapari.db", "queue.db")):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.005)
    pytest.fail("could not pause the worker outside a database transaction")


def _pause_mid_job(client: Client, rt: Any, first: subprocess.Popen[str], data: Path,
                   talk: Path, log: Path) -> tuple[Any, str, int, Path] | None:
    """Upload, and pause the worker once it stored some artifacts but has not finished."""
    project = client.create_project("fence")
    after = client.cursor()
    clip = client.upload(project.id, talk)
    with rt.sync_session() as s:
        row = s.get(Clip, clip.id)
        assert row is not None
        job_id = s.scalars(select(Job.id).where(Job.target_id == clip.id)).one()
        objects = rt.storage.path(row.object_key).parent
    deadline = time.monotonic() + 60
    while not _files(objects / f"{job_id}.1"):
        assert time.monotonic() < deadline, "the first worker never stored anything"
        assert first.poll() is None, log.read_text()
        time.sleep(0.002)
    _pause_outside_transactions(first, data)
    job = client.job(job_id)
    if job.status != "running":  # it finished before the pause landed: try again
        first.send_signal(signal.SIGCONT)
        return None
    return clip, job_id, after, objects


def test_paused_worker_is_fenced_out(tmp_path: Path, slow_talk: Path) -> None:
    data = tmp_path / "data"
    srv = start_server(data, embedded_workers=0, job_stale_after=STALE)
    rt = srv.app.state.runtime
    first = _worker(data, tmp_path / "first.log")
    second = None
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            for _ in range(5):
                caught = _pause_mid_job(client, rt, first, data, slow_talk,
                                        tmp_path / "first.log")
                if caught is not None:
                    break
            assert caught is not None, "the worker always finished before it could be paused"
            clip, job_id, after, objects = caught
            loser, winner = objects / f"{job_id}.1", objects / f"{job_id}.2"
            assert _files(loser)
            time.sleep(STALE * 2.5)  # its heartbeat goes stale
            # A second worker finds the orphan at its start and takes it over.
            second = _worker(data, tmp_path / "second.log")
            ready = client.wait_clip(clip, after=after, timeout=90)
            assert ready.status == "ready"
            job = client.job(job_id)
            assert job.status == "succeeded" and job.attempts == 2
            kept = {p.name: p.read_bytes() for p in _files(winner)}
            first.send_signal(signal.SIGCONT)  # the late worker resumes...
            deadline = time.monotonic() + 30
            while _files(loser):  # ...notices it lost the job, and deletes what it wrote
                assert time.monotonic() < deadline, [p.name for p in _files(loser)]
                time.sleep(0.1)
            time.sleep(STALE)  # room for any late commit it might still attempt
            artifacts = client.artifacts(clip.id)
            kinds = [a.kind for a in artifacts]
            assert sorted(kinds) == sorted(set(kinds)) and "levels" in kinds
            with rt.sync_session() as s:
                keys = s.scalars(select(Artifact.object_key).where(
                    Artifact.clip_id == clip.id)).all()  # soft-deleted rows included
                ready_events = [e for e in s.scalars(select(Event).where(
                    Event.type == "ClipReady")) if e.payload["clip_id"] == clip.id]
            assert keys and all(f"/{job_id}.2/" in k for k in keys), keys
            assert len(ready_events) == 1
            # The winner's objects are intact, byte for byte.
            assert kept and {p.name: p.read_bytes() for p in _files(winner)} == kept
            assert client.job(job_id).status == "succeeded"
    finally:
        log = _stop(first, tmp_path / "first.log")
        if second is not None:
            _stop(second, tmp_path / "second.log")
        srv.stop()
    assert "results refused" in log or "discarded" in log, log

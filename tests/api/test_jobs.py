"""Jobs survive a dead worker, run by priority, and record status, progress and errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from sapari_nb import Client
from sapari_server.db.base import utcnow
from sapari_server.db.models import Job
from sapari_server.queue.consumer import start_embedded_consumer
from sapari_server.queue.jobs import claim
from sapari_testkit.generate import TalkTruth

from ..conftest import start_server


@pytest.fixture
def idle_server(tmp_path: Path):  # noqa: ANN201
    """A server with no worker threads: the test plays the worker."""
    srv = start_server(tmp_path / "data", embedded_workers=0, job_stale_after=1.0)
    yield srv
    srv.stop()


def test_job_of_a_dead_worker_is_recovered(idle_server, talk: tuple[Path, TalkTruth]) -> None:  # noqa: ANN001
    rt = idle_server.app.state.runtime
    with Client(idle_server.url, idle_server.token, progress=False) as client:
        project = client.create_project("crash")
        after = client.cursor()
        clip = client.upload(project.id, talk[0])
        # A worker takes the task off the queue, claims the job, and dies mid-way.
        task = rt.queues["heavy"].dequeue()
        assert task is not None and task.name == "process_clip"
        job_id = task.args[0]
        assert claim(rt, job_id) is not None
        assert claim(rt, job_id) is None  # claimed: nobody else may run it now
        with rt.sync_session() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id)
                      .values(heartbeat_at=utcnow() - timedelta(seconds=30)))
        assert all(q.pending_count() == 0 for q in rt.queues.values())
        # A new worker starts: it re-queues the orphan and finishes it.
        consumer = start_embedded_consumer(rt, 1)
        try:
            ready = client.wait_clip(clip, after=after, timeout=60)
        finally:
            consumer.stop(graceful=True)
        assert ready.status == "ready"
        job = client.job(job_id)
        assert job.status == "succeeded" and job.attempts == 2 and job.progress == 1.0


def test_interactive_work_runs_before_batch(idle_server) -> None:  # noqa: ANN001
    rt = idle_server.app.state.runtime
    with Client(idle_server.url, idle_server.token, progress=False) as client:
        project = client.create_project("prio")
        # Both are renders: one queue (heavy), ordered by priority, not arrival.
        batch = client.export(project.id, priority="batch")
        interactive = client.export(project.id, priority="interactive")
        heavy = rt.queues["heavy"]
        first, second = heavy.dequeue(), heavy.dequeue()
        assert first.args[0] == interactive.job_id and first.name == "render_export"
        assert second.args[0] == batch.job_id and second.name == "render_export"
        assert client.job(batch.job_id).priority < client.job(interactive.job_id).priority


def test_failed_job_records_readable_error(client: Client) -> None:
    project = client.create_project("nothing")
    after = client.cursor()
    exp = client.export(project.id)
    with pytest.raises(Exception, match="no clips"):
        client.wait_export(exp, after=after, timeout=60)
    job = client.job(exp.job_id)
    assert job.status == "failed" and "no clips" in job.error and job.finished_at

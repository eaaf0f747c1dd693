"""Deletes and jobs meet: a job finishing after its project was deleted keeps nothing, and an
upload that never arrived does not block an export."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import update

from sapari_nb import Client
from sapari_server.db.base import utcnow
from sapari_server.db.models import Clip, Job
from sapari_server.pipelines.render_export import export_failed
from sapari_server.queue.jobs import JobContext, run_job
from sapari_testkit.generate import TalkTruth

from ..conftest import start_server


def test_a_job_finishing_after_its_project_was_purged_keeps_nothing(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", embedded_workers=0)
    rt = srv.app.state.runtime
    written: dict[str, str] = {}
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("deleted mid-job")
            exp = client.export(project.id)  # queued: no worker runs in this server

            def handler(ctx: JobContext) -> None:
                # The user purges the project while the render runs ...
                r = httpx.delete(f"{srv.url}/projects/{project.id}", params={"purge": "true"},
                                 headers={"Authorization": f"Bearer {srv.token}"})
                assert r.status_code == 204, r.text
                # ... and then the worker stores its output and tries to complete.
                out = tmp_path / "late.mp4"
                out.write_bytes(b"late render")
                written["key"] = f"{exp.id}/late.mp4"
                ctx.put_file(written["key"], out)
                with ctx.finish():
                    raise AssertionError("the completion of a deleted project was accepted")

            run_job(rt, exp.job_id, handler, export_failed)
        with rt.sync_session() as s:
            job = s.get(Job, exp.job_id)
            assert job is not None and job.status == "failed"
            assert "project was deleted" in (job.error or "")
        assert rt.storage.head(written["key"]) is None, "the late output was kept"
    finally:
        srv.stop()


def test_expired_pending_upload_does_not_block_an_export(client: Client, server,  # noqa: ANN001
                                                         talk: tuple[Path, TalkTruth]) -> None:
    project = client.create_project("one upload never came")
    after = client.cursor()
    client.wait_clip(client.upload(project.id, talk[0]), after=after)
    ghost = client.presign(project.id, "never-sent.mp4", 1000)
    rt = server.app.state.runtime
    with rt.sync_session() as s, s.begin():
        s.execute(update(Clip).where(Clip.id == ghost.clip.id).values(
            created_at=utcnow() - timedelta(seconds=rt.settings.signed_url_ttl + 60)))
    exp = client.wait_export(client.export(project.id), after=after, timeout=120)
    assert exp.status == "succeeded"
    assert {k["clip_id"] for k in exp.result["keep_segments"]} == {
        c.id for c in client.clips(project.id) if c.status == "ready"}

"""Readable errors: 500s and crashed jobs give an error id, never SQL, parameters or paths;
errors about an upload name the user's file, never the server's copy."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from sapari_nb import Client
from sapari_nb.errors import JobFailed
from sapari_server.db.models import Artifact
from sapari_testkit.generate import TalkTruth, make_bad_inputs

from ..conftest import start_server

ERROR_ID = re.compile(r"error id ([0-9a-f]{8,})")


def _no_server_details(text: str) -> None:
    assert not re.search(r"(?:^|[\s'\"(=])/\w", text), text  # no absolute paths
    assert "users/" not in text and "scratch" not in text, text  # no object keys, no folders
    for leak in ("source.", "SELECT", "Traceback", "sqlite", "[parameters"):
        assert leak not in text, text


def test_500_answers_an_error_id_and_logs_the_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    srv = start_server(tmp_path / "data", embedded_workers=0)
    try:
        def broken() -> None:
            raise RuntimeError("SELECT token FROM api_tokens WHERE path='/srv/secret.key'")

        # A route that fails the way a bug would: the app's own handler must answer.
        srv.app.add_api_route("/broken-for-test", broken)
        with caplog.at_level(logging.ERROR):
            r = httpx.get(f"{srv.url}/broken-for-test")
        assert r.status_code == 500
        detail = r.json()["detail"]
        m = ERROR_ID.search(detail)
        assert m and detail == (f"internal error (error id {m.group(1)}): the server log has "
                                "the details")
        logged = [rec for rec in caplog.records if m.group(1) in rec.getMessage()]
        assert logged and logged[0].exc_info is not None  # the traceback, under the same id
    finally:
        srv.stop()


def test_broken_upload_names_the_users_file(client: Client, tmp_path: Path) -> None:
    bad = make_bad_inputs(tmp_path / "bad")
    mine = tmp_path / "my talk.mp4"
    shutil.copy(bad["truncated"], mine)
    project = client.create_project("broken upload")
    after = client.cursor()
    clip = client.upload(project.id, mine)
    with pytest.raises(JobFailed):
        client.wait_clip(clip, after=after, timeout=60)
    error = client.clip(clip.id).error  # the server's own words, not the client's rewrite
    assert error and "my talk.mp4" in error, error
    _no_server_details(error)


def test_crashed_job_says_internal_error_with_an_id(
        tmp_path: Path, talk: tuple[Path, TalkTruth], caplog: pytest.LogCaptureFixture) -> None:
    srv = start_server(tmp_path / "data", transcriber="none")
    rt = srv.app.state.runtime
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("crash")
            after = client.cursor()
            clip = client.wait_clip(client.upload(project.id, talk[0]), after=after, timeout=90)
            # The server's own data goes bad (a disk error, say): the levels file is garbage.
            with rt.sync_session() as s:
                key = s.scalars(select(Artifact.object_key).where(
                    Artifact.clip_id == clip.id, Artifact.kind == "levels")).one()
            rt.storage.path(key).write_bytes(np.arange(10).tobytes())
            after = client.cursor()
            run = client.analyze(project.id)
            with caplog.at_level(logging.ERROR), pytest.raises(JobFailed):
                client.wait_analysis(run, after=after, timeout=60)
            job = client.job(run.job_id)
            assert job.status == "failed"
            m = ERROR_ID.search(job.error or "")
            assert m, job.error
            assert job.error.startswith(
                f"internal error while running analyze_project (error id {m.group(1)})")
            _no_server_details(job.error)
            assert client.analysis(run.id).error == job.error
            logged = [r for r in caplog.records if m.group(1) in r.getMessage()]
            assert logged and "Traceback" in logged[0].getMessage()
    finally:
        srv.stop()

"""`sapari-nb users`, `worker` and `gc`: work on a fresh data folder, revoke tokens, free bytes,
and say a bad backend URL in one line."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sapari_nb import Client
from sapari_nb.cli import main
from sapari_testkit.generate import TalkTruth

from .conftest import start_server


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sapari_nb.cli", *args]


def test_users_on_a_fresh_folder_then_revoke(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    data = tmp_path / "not" / "there" / "yet"
    assert main(["users", "alice", "--data-dir", str(data)]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["users", "alice", "--data-dir", str(data)]) == 0
    second = capsys.readouterr().out.strip()
    assert first.startswith("sap_") and second.startswith("sap_") and first != second
    srv = start_server(data)
    try:
        def me(token: str) -> int:
            return httpx.get(f"{srv.url}/me", headers={"Authorization": f"Bearer {token}"}
                             ).status_code
        assert me(first) == me(second) == me(srv.token) == 200
        assert main(["users", "alice", "--revoke", "--data-dir", str(data)]) == 0
        assert capsys.readouterr().out.strip() == "revoked 2 tokens of alice"
        assert me(first) == me(second) == 401
        assert me(srv.token) == 200  # another user's token is untouched
        assert main(["users", "alice", "--revoke", "--data-dir", str(data)]) == 0
        assert capsys.readouterr().out.strip() == "revoked 0 tokens of alice"
    finally:
        srv.stop()
    assert main(["users", "nobody", "--revoke", "--data-dir", str(data)]) == 1
    assert capsys.readouterr().err.strip() == "sapari-nb users: there is no user named 'nobody'"


def _migrated(db: Path) -> bool:
    try:
        with sqlite3.connect(db) as con:
            return bool(con.execute("select version_num from alembic_version").fetchall())
    except sqlite3.Error:
        return False


def test_worker_on_a_fresh_folder_runs_jobs(tmp_path: Path, talk: tuple[Path, TalkTruth]) -> None:
    data = tmp_path / "fresh"
    worker = subprocess.Popen(_cli("worker", "--workers", "1", "--data-dir", str(data)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "SAPARI_TRANSCRIBER": "none"})
    srv = None
    try:
        deadline = time.monotonic() + 60
        while not _migrated(data / "sapari.db"):
            assert worker.poll() is None, worker.communicate()[0]
            assert time.monotonic() < deadline, "the worker did not migrate its database"
            time.sleep(0.1)
        srv = start_server(data, embedded_workers=0, transcriber="none")
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("fresh worker")
            after = client.cursor()
            clip = client.wait_clip(client.upload(project.id, talk[0]), after=after, timeout=90)
            assert clip.status == "ready"
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            out = worker.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            worker.kill()
            out = worker.communicate()[0]
        if srv is not None:
            srv.stop()
    assert "unable to open database file" not in out and "Traceback" not in out, out


def test_gc_dry_run_then_collect(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("sapari_server.lifecycle.gc")
    data = tmp_path / "fresh"
    assert main(["gc", "--dry-run", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip().startswith("would free 0 objects")
    assert main(["gc", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip().startswith("freed 0 objects")


@pytest.mark.parametrize("command", [["users", "bob"], ["worker"], ["gc"],
                                     ["serve", "--port", "1"]])
def test_unsupported_backend_is_one_line(tmp_path: Path, command: list[str]) -> None:
    proc = subprocess.run(_cli(*command, "--data-dir", str(tmp_path / "d")),
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SAPARI_QUEUE_URL": "nosuch://x"})
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith(f"sapari-nb {command[0]}: SAPARI_QUEUE_URL scheme 'nosuch' is not "
                           "supported"), line
    assert len(line.splitlines()) == 1


def test_unsupported_backend_in_edit_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    proc = subprocess.run(_cli("edit", str(src), "-o", str(tmp_path / "o.mp4"), "--data-dir",
                               str(tmp_path / "d")), capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SAPARI_QUEUE_URL": "nosuch://x"})
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "SAPARI_QUEUE_URL scheme 'nosuch' is not supported" in proc.stderr

"""`sapari-nb edit` is safe with a person's only recording and with their disk.

Inputs are never overwritten, outputs appear whole or not at all, the one-shot edit deletes
its own project, `--ephemeral` leaves no folder behind, and Ctrl-C cancels the server's job.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sapari_nb import Client
from sapari_nb.cli import main
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth

from .conftest import start_server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        rc = main(list(argv))
    except SystemExit as e:
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


def _ours(tmp: Path) -> list[Path]:
    """What the CLI left in TMPDIR (libraries it loads may keep their own caches there)."""
    return sorted(tmp.glob("sapari-nb-*"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sapari_nb.cli", *args]


@pytest.mark.parametrize("how", ["same path", "other spelling", "symlink", "hard link",
                                 "edits json", "timeline file"])
def test_output_that_is_an_input_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            how: str) -> None:
    src = tmp_path / ("cut.srt" if how == "timeline file" else "talk.mp4")
    original = b"the only copy of a recording"
    src.write_bytes(original)
    out = tmp_path / "cut.mp4"
    extra: list[str] = []
    if how == "same path":
        out = src
    elif how == "other spelling":
        (tmp_path / "sub").mkdir()
        out = tmp_path / "sub" / ".." / "talk.mp4"
    elif how == "symlink":
        out.symlink_to(src)
    elif how == "hard link":
        os.link(src, out)
    elif how == "edits json":
        extra = ["--edits", str(src)]
    else:
        extra = ["--timeline", "srt"]  # writes cut.srt beside cut.mp4: the input
    # A server that is down: had the edit started, it would fail differently (exit 1).
    rc, err = _run(capsys, "edit", str(src), "-o", str(out), *extra, "--server",
                   f"http://127.0.0.1:{_closed_port()}", "--token", "t")
    assert rc == 2, err
    assert "refusing to overwrite an input" in err and str(src) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert src.read_bytes() == original


def test_failure_after_download_leaves_no_partial_output(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, talk: tuple[Path, TalkTruth],
        server: EmbeddedServer, client: Client) -> None:
    out, edits = tmp_path / "cut.mp4", tmp_path / "cut.json"
    out.write_bytes(b"an older cut the user keeps")
    before = {p.id for p in client.projects()}
    # The server has no transcriber: captions fail after the video was rendered and
    # downloaded. Nothing may land under the user's names, and the old file stays.
    rc, err = _run(capsys, "edit", str(talk[0]), "-o", str(out), "--edits", str(edits),
                   "--timeline", "srt", "--server", server.url, "--token", server.token, "-q")
    assert rc == 1
    assert "transcript" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"an older cut the user keeps"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]
    # The one-shot edit removed its project on the way out, failure or not.
    assert {p.id for p in client.projects()} == before


def test_edit_deletes_its_project_and_its_bytes(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, talk: tuple[Path, TalkTruth],
                                                server: EmbeddedServer, client: Client) -> None:
    src, truth = talk
    out, edits = tmp_path / "cut.mp4", tmp_path / "cut.json"
    before = {p.id for p in client.projects()}
    # Other tests share this server and leave deleted (not purged) projects: look only at
    # the project folders this run adds.
    objects = server.settings.data_dir / "objects" / "users" / client.me().id / "projects"
    folders_before = set(objects.iterdir()) if objects.exists() else set()
    rc = main(["edit", str(src), "-o", str(out), "--edits", str(edits), "--server", server.url,
               "--token", server.token, "-q"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert out.stat().st_size > 0 and json.loads(edits.read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.json", "cut.mp4"]
    assert {p.id for p in client.projects()} == before
    # Purged at once: none of the project's objects (source, audio, peaks, export) is left.
    new_folders = set(objects.iterdir()) - folders_before if objects.exists() else set()
    mine = [p for folder in new_folders for p in folder.rglob("*") if p.is_file()]
    assert mine == []


def test_keep_leaves_the_project(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 server: EmbeddedServer, client: Client) -> None:
    src = tmp_path / "bad.mp4"
    src.write_bytes(b"not media: processing fails fast")
    before = {p.id for p in client.projects()}
    rc, err = _run(capsys, "edit", str(src), "-o", str(tmp_path / "o.mp4"), "--keep",
                   "--server", server.url, "--token", server.token, "-q")
    assert rc == 1 and str(src) in err
    assert len({p.id for p in client.projects()} - before) == 1


def test_ephemeral_folder_removed_after_success_and_failure(
        tmp_path: Path, talk: tuple[Path, TalkTruth]) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    out = tmp_path / "cut.mp4"
    ok = subprocess.run(_cli("edit", str(talk[0]), "-o", str(out), "--ephemeral", "-q"),
                        capture_output=True, text=True, timeout=180, env=env)
    assert ok.returncode == 0, ok.stderr
    assert out.stat().st_size > 0 and "Traceback" not in ok.stderr
    assert _ours(tmp) == []
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"no media here")
    failed = subprocess.run(_cli("edit", str(bad), "-o", str(tmp_path / "o.mp4"), "--ephemeral",
                                 "-q"), capture_output=True, text=True, timeout=180, env=env)
    assert failed.returncode == 1 and str(bad) in failed.stderr
    assert "Traceback" not in failed.stderr
    assert _ours(tmp) == []


def test_ctrl_c_removes_the_ephemeral_folder(tmp_path: Path,
                                             talk: tuple[Path, TalkTruth]) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(_cli("edit", str(talk[0]), "-o", str(tmp_path / "o.mp4"),
                                 "--ephemeral", "-q"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ,
                                                                    "TMPDIR": str(tmp)})
    try:
        deadline = time.monotonic() + 60
        # Interrupt once its embedded server is up (its token written): mid-flight.
        while not list(tmp.glob("sapari-nb-*/token")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _ours(tmp) == []
    assert not (tmp_path / "o.mp4").exists()


def test_ctrl_c_cancels_the_job_on_the_server(tmp_path: Path,
                                              talk: tuple[Path, TalkTruth]) -> None:
    # No workers: the processing job stays queued until the CLI is interrupted.
    srv = start_server(tmp_path / "data", embedded_workers=0, transcriber="none")
    try:
        with Client(srv.url, srv.token, progress=False) as watcher:
            after = watcher.cursor()
            proc = subprocess.Popen(
                _cli("edit", str(talk[0]), "-o", str(tmp_path / "o.mp4"), "-q", "--keep"),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "SAPARI_SERVER": srv.url, "SAPARI_TOKEN": srv.token})
            try:
                uploaded = watcher.wait_for(lambda e: e.type == "ClipUploaded", after=after,
                                            timeout=60)
                time.sleep(0.3)  # it is now waiting for the clip to be processed
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            job_id = uploaded.payload["job_id"]
            assert proc.returncode == 130, err
            assert err.strip() == f"sapari-nb edit: interrupted; cancelled job {job_id} on the " \
                                  "server"
            assert watcher.job(job_id).status == "cancelled"
    finally:
        srv.stop()

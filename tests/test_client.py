"""The Python client a notebook uses: readable errors, env settings, cancel, tokens, clean exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import sapari_nb
from sapari_nb import Client, JobFailed, SapariError, ServerStartFailed, ServerUnreachable
from sapari_nb.outputs import atomic_output
from sapari_server.auth import create_token
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth

from .conftest import new_user_client, start_server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_validation_error_is_one_readable_line(client: Client) -> None:
    project = client.create_project("bad crf")
    with pytest.raises(SapariError) as e:
        client.export(project.id, crf=99)
    assert e.value.status == 422
    assert str(e.value) == "crf: Input should be less than or equal to 51"
    with pytest.raises(SapariError) as e:
        client.export(project.id, crf=99, preset="bogus")
    assert str(e.value).startswith("crf: Input should be less than or equal to 51; preset: ")


def test_server_down_is_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with Client(url, "sap_x", progress=False) as c, pytest.raises(ServerUnreachable) as e:
        c.me()
    assert str(e.value) == f"cannot reach the sapari-nb server at {url}: connection refused"
    assert isinstance(e.value, ConnectionError) and isinstance(e.value, SapariError)
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_connect_reads_server_and_token_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, server: EmbeddedServer) -> None:
    monkeypatch.setenv("SAPARI_SERVER", server.url)
    monkeypatch.setenv("SAPARI_TOKEN", server.token)
    monkeypatch.delenv("SAPARI_URL", raising=False)
    with sapari_nb.connect(progress=False) as c:
        assert c.url == server.url
        assert c.me().name == "local"


def test_connect_says_why_the_embedded_server_did_not_start(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SAPARI_SERVER", raising=False)
    monkeypatch.delenv("SAPARI_URL", raising=False)
    monkeypatch.setenv("SAPARI_QUEUE_URL", "kafka://x")
    with pytest.raises(ServerStartFailed) as e:
        sapari_nb.connect(data_dir=tmp_path / "d", progress=False)
    assert "SAPARI_QUEUE_URL scheme 'kafka' is not supported" in str(e.value)
    assert "see the log" not in str(e.value)
    assert isinstance(e.value.__cause__, ValueError)


def test_connect_as_context_manager_stops_its_embedded_server(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SAPARI_SERVER", raising=False)
    monkeypatch.delenv("SAPARI_URL", raising=False)
    with sapari_nb.connect(data_dir=tmp_path / "d", progress=False) as c:
        url = c.url
        assert c.me().name == "local"
        stream = c.stream()
        assert stream.running
    assert not stream.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)


def test_script_exits_quietly(tmp_path: Path, talk: tuple[Path, TalkTruth]) -> None:
    # The README's snippet, short: an embedded server, an upload, a live event stream; the
    # script ends without closing anything.
    script = textwrap.dedent(f"""
        import time

        import sapari_nb

        client = sapari_nb.connect(data_dir={str(tmp_path / 'data')!r}, progress=False)
        project = client.create_project("episode 12")
        stream = client.stream(project_id=project.id, after=0)
        stream.on(lambda event: print(event.type, flush=True))
        after = client.cursor()
        clip = client.wait_clip(client.upload(project.id, {str(talk[0])!r}), after=after)
        while stream.last_event_id is None:  # the stream is live and has read events
            time.sleep(0.05)
        print("ready", clip.status)
    """)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "ready ready" in proc.stdout
    assert "Traceback" not in proc.stderr and "CancelledError" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == ""
    assert "ClipReady" in proc.stdout
    # No waiting out a graceful-shutdown timeout on the open event stream either.
    assert time.monotonic() - started < 30


def test_cancel_a_queued_job(tmp_path: Path, talk: tuple[Path, TalkTruth]) -> None:
    srv = start_server(tmp_path / "data", embedded_workers=0, transcriber="none")
    try:
        with Client(srv.url, srv.token, progress=False) as c:
            project = c.create_project("cancel")
            after = c.cursor()
            clip = c.upload(project.id, talk[0])
            uploaded = c.wait_for(lambda e: e.type == "ClipUploaded", after=after, timeout=30)
            job = c.cancel(uploaded.payload["job_id"])
            assert job.status == "cancelled" and job.target_id == clip.id
            with pytest.raises(SapariError) as e:
                c.cancel(job.id)
            assert e.value.status == 409
    finally:
        srv.stop()


def test_list_and_revoke_tokens(server: EmbeddedServer) -> None:
    with new_user_client(server, "token-owner") as c:
        rt = server.app.state.runtime
        with rt.sync_session() as s, s.begin():
            second = create_token(s, c.me().id, name="laptop")
        tokens = c.tokens()
        assert [t.name for t in tokens] == ["default", "laptop"]
        with Client(server.url, second, progress=False) as laptop:
            assert laptop.me().name == "token-owner"
            c.revoke_token(tokens[1].id)
            with pytest.raises(SapariError) as e:
                laptop.me()
            assert e.value.status == 401
        assert [t.id for t in c.tokens()] == [tokens[0].id]


def test_job_errors_name_the_users_file(client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "my recordings"
    folder.mkdir()
    src = folder / "take 1.mp4"
    src.write_bytes(b"this is text, not a video")
    project = client.create_project("names")
    after = client.cursor()
    clip = client.upload(project.id, src)
    with pytest.raises(JobFailed) as e:
        client.wait_clip(clip, after=after, timeout=60)
    said = str(e.value)
    assert said.startswith(f"processing {src} failed: {src} ")
    assert "source.mp4" not in said
    # The server's own words stay available as they were stored.
    assert e.value.detail == client.clip(clip.id).error


@pytest.mark.parametrize("fail", [RuntimeError, KeyboardInterrupt])
def test_atomic_output_never_leaves_a_partial_file(tmp_path: Path,
                                                   fail: type[BaseException]) -> None:
    dest = tmp_path / "cut.mp4"
    dest.write_bytes(b"previous result")
    with pytest.raises(fail), atomic_output(dest) as tmp:
        tmp.write_bytes(b"half of the new")
        raise fail()
    assert dest.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["cut.mp4"]
    with atomic_output(dest) as tmp:
        tmp.write_bytes(b"all of the new")
    assert dest.read_bytes() == b"all of the new"
    assert [p.name for p in tmp_path.iterdir()] == ["cut.mp4"]

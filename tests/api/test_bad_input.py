"""Bad uploads get a clear 4xx or a failed job with a readable reason and an event."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sapari_nb import Client, JobFailed, SapariError
from sapari_testkit.generate import TalkTruth, make_bad_inputs

from ..conftest import clip_key


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("kind, words", [
    ("text", "not a media file"),
    ("truncated", "cut short"),
    ("no_audio", "no audio track"),
    ("no_streams", "no audio"),
])
def test_unusable_media_fails_job_with_reason_and_event(client: Client, bad: dict[str, Path],
                                                        kind: str, words: str) -> None:
    project = client.create_project(f"bad-{kind}")
    after = client.cursor()
    clip = client.upload(project.id, bad[kind])
    with pytest.raises(JobFailed) as e:
        client.wait_clip(clip, after=after, timeout=60)
    assert words in e.value.detail.lower(), e.value.detail
    assert "Traceback" not in e.value.detail and "internal error" not in e.value.detail
    failed = client.clip(clip.id)
    assert failed.status == "failed" and failed.error == e.value.detail
    job_events = []
    for ev in client.events(project_id=project.id, after=after):
        job_events.append(ev)
        if ev.type == "ClipFailed":
            break
    assert job_events[-1].payload["clip_id"] == clip.id
    # Analysis of a project whose only clip failed says so instead of crashing.
    with pytest.raises(JobFailed) as e2:
        client.wait_analysis(client.analyze(project.id), after=after, timeout=60)
    assert "not processed" in e2.value.detail


def test_zero_bytes_refused(client: Client, bad: dict[str, Path]) -> None:
    project = client.create_project("empty")
    with pytest.raises(SapariError) as e:
        client.upload(project.id, bad["empty"])
    assert e.value.status == 422 and "size" in e.value.detail
    # Declared non-empty, uploaded empty: refused at confirm, bytes removed.
    ticket = client.presign(project.id, "e.mp4", 100)
    assert httpx.put(ticket.upload_url, content=b"").status_code == 200
    with pytest.raises(SapariError) as e:
        client.confirm(ticket.clip.id)
    assert e.value.status == 422 and "empty" in e.value.detail
    assert client.clip(ticket.clip.id).status == "failed"


def test_upload_larger_than_declared_is_refused(client: Client, server,  # noqa: ANN001
                                                talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    project = client.create_project("liar")
    ticket = client.presign(project.id, "t.mp4", 1000)
    r = httpx.put(ticket.upload_url, content=src.read_bytes())
    assert r.status_code == 413 and "declared" in r.json()["detail"]
    # Streaming without a Content-Length is cut off too, and nothing is kept.
    r = httpx.put(ticket.upload_url, content=iter([b"x" * 600, b"y" * 600]))
    assert r.status_code == 413
    storage = server.app.state.runtime.storage
    key = clip_key(server, ticket.clip.id)
    assert storage.head(key) is None
    assert not list(storage.path(key).parent.glob("*.part"))
    with pytest.raises(SapariError) as e:
        client.confirm(ticket.clip.id)
    assert e.value.status == 409 and "PUT the file" in e.value.detail
    # Bytes that reach storage some other way (a bucket without length checks) are
    # caught at confirm: rejected and removed.
    storage.path(key).parent.mkdir(parents=True, exist_ok=True)
    storage.path(key).write_bytes(b"z" * 2000)
    with pytest.raises(SapariError) as e:
        client.confirm(ticket.clip.id)
    assert e.value.status == 422 and "declared" in e.value.detail
    assert storage.head(key) is None


def test_quota_is_enforced_at_presign(client: Client) -> None:
    project = client.create_project("huge")
    with pytest.raises(SapariError) as e:
        client.presign(project.id, "big.mp4", 50 * 1024**3)
    assert e.value.status == 413 and "largest upload" in e.value.detail


def test_validation_errors_are_readable(client: Client) -> None:
    project = client.create_project("v")
    with pytest.raises(SapariError) as e:
        client.analyze(project.id, min_silence=-1)
    assert e.value.status == 422 and "min_silence" in e.value.detail
    with pytest.raises(SapariError) as e:
        client.set_edits_status(project.id, "maybe")
    assert e.value.status == 422


def test_server_keeps_serving_after_bad_input(client: Client, talk: tuple[Path, TalkTruth],
                                              bad: dict[str, Path]) -> None:
    project = client.create_project("mixed")
    after = client.cursor()
    bad_clip = client.upload(project.id, bad["text"])
    good_clip = client.upload(project.id, talk[0])
    with pytest.raises(JobFailed):
        client.wait_clip(bad_clip, after=after, timeout=60)
    assert client.wait_clip(good_clip, after=after, timeout=60).status == "ready"

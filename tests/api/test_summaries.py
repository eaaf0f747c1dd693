"""Honest summaries: the analysis summary says what really ran, with a note per fallback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sapari_nb import Client
from sapari_testkit.generate import TalkTruth

from ..conftest import start_server
from ..speech.fake_openai import FakeOpenAI, chat_completion


def _analyze(client: Client, src: Path) -> object:
    project = client.create_project("summary")
    after = client.cursor()
    client.wait_clip(client.upload(project.id, src), after=after, timeout=120)
    return client.wait_analysis(client.analyze(project.id), after=after, timeout=120)


def test_empty_transcript_is_said_and_not_counted(tmp_path: Path,
                                                  talk: tuple[Path, TalkTruth]) -> None:
    # A transcription service that hears nothing (music, another language, a silent file).
    with FakeOpenAI(transcribe=lambda rec: {"text": "", "words": [], "language": "english",
                                            "duration": 1.0}) as fake:
        fake.chat.extend([chat_completion('{"findings": []}')] * 3)
        srv = start_server(tmp_path / "data", transcriber="openai", take_detector="llm",
                           openai_api_key=fake.api_key, openai_base_url=fake.url,
                           openai_max_retries=0, preview_artifacts=False)
        try:
            with Client(srv.url, srv.token, progress=False) as client:
                run = _analyze(client, talk[0])
        finally:
            srv.stop()
    summary = run.summary  # type: ignore[attr-defined]
    assert summary["detectors"] == ["silence"], summary
    assert any("heard no words" in n and "silences only" in n for n in summary["notes"]), summary
    assert summary["silence_method"] == "vad"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_vad_model_falls_back_to_loudness_and_says_so(
        tmp_path: Path, talk: tuple[Path, TalkTruth]) -> None:
    # A faster-whisper without its assets folder: the Silero model is missing.
    shadow = tmp_path / "shadow" / "faster_whisper"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    port = _free_port()
    data = tmp_path / "data"
    env = {**os.environ, "SAPARI_TRANSCRIBER": "none",
           "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sapari_nb.cli", "serve", "--port", str(port),
         "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.2)
        with Client(url, (data / "token").read_text().strip(), progress=False) as client:
            run = _analyze(client, talk[0])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    summary = run.summary  # type: ignore[attr-defined]
    assert summary["silence_method"] == "loudness", summary
    note = [n for n in summary["notes"] if "voice activity detection" in n]
    assert note and "loudness instead" in note[0], summary
    assert "/" not in note[0].split("(pip")[0]  # no server paths in the note
    assert summary["edits"] >= 3  # the fallback still cuts the pauses

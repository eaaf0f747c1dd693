"""The local transcriber says how far it is, often, in seconds of audio (issue 13, item 7)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sapari_server.speech.types import clock, progress_caller

_MSG = re.compile(r"^transcribe (\d+):(\d\d) / (\d+):(\d\d)$")


def test_progress_messages_on_a_generated_talk(tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    from sapari_server.speech import LocalTranscriber, TranscriptionError
    from sapari_server.speech.transcribe_local import PROGRESS_STEP
    from sapari_testkit.generate import generate_talk

    try:
        tr = LocalTranscriber()
    except TranscriptionError as e:
        pytest.skip(str(e))
    wav = tmp_path / "talk.wav"
    truth = generate_talk(wav, pauses=[1.0, 2.0, 1.5], speech_lengths=[4.0, 6.0, 3.0, 5.0],
                          video=False, sample_rate=16000, voice="formant", noise_db=-50.0)
    seen: list[tuple[float, str]] = []
    tr.transcribe(wav, progress=lambda f, msg: seen.append((f, msg)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    positions = []
    for f, msg in seen:
        m = _MSG.match(msg)
        assert m, msg
        pos, total = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
        assert total == int(truth.duration)
        assert abs(pos - f * truth.duration) <= 1.0
        positions.append(f * truth.duration)
    # Never more than a step of audio between two reports.
    gaps = [b - a for a, b in zip(positions, positions[1:], strict=False)]
    assert max(gaps) <= PROGRESS_STEP + 1e-6, gaps
    assert len(seen) >= truth.duration / PROGRESS_STEP


def test_one_argument_callbacks_still_get_the_fraction() -> None:
    got: list[object] = []

    # The pipeline's callback: one required argument, others defaulted and not to be touched.
    def report(f: float, base: float = 10.0, d: float = 2.0) -> None:
        got.append(base + f * d)

    progress_caller(report)(0.5, "transcribe 0:05 / 0:10")
    both: list[tuple[float, str]] = []
    progress_caller(lambda f, m: both.append((f, m)))(0.25, "msg")
    progress_caller(None)(1.0, "ignored")
    assert got == [11.0] and both == [(0.25, "msg")]


def test_clock() -> None:
    assert [clock(0), clock(80.9), clock(300), clock(3723)] == ["0:00", "1:20", "5:00", "1:02:03"]

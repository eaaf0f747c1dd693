"""Silero VAD: fast streaming probabilities, and pause cuts that survive noisy rooms."""

from __future__ import annotations

import json
import logging
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from sapari_server.media import vad
from sapari_server.media.audio import analyze_audio
from sapari_server.media.silence import SilenceSettings, detect_pauses
from sapari_server.media.vad import (
    WINDOW_S,
    detect_silences_vad,
    speech_mask,
    speech_probabilities,
)

from ._rooms import PINK_HUM, Talk, assert_no_speech_cut, make_talks, recall

SAMPLES = Path(__file__).resolve().parents[2] / "sapari_nb" / "samples"


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> list[Talk]:
    return make_talks(tmp_path_factory.mktemp("noisy"), **PINK_HUM)


@pytest.fixture(scope="module")
def espeak(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, float]:
    wav = tmp_path_factory.mktemp("espeak") / "audio16k.wav"
    a = analyze_audio(SAMPLES / "talk.mp4", wav_out=wav)
    return wav, json.loads((SAMPLES / "talk.json").read_text()), a.duration


def test_streaming_matches_one_call_and_is_fast(espeak: tuple[Path, dict, float]) -> None:
    wav, _, duration = espeak
    vad.load_model()
    t = time.perf_counter()
    probs = speech_probabilities(wav)
    speed = duration / (time.perf_counter() - t)
    with wave.open(str(wav)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    # One window per 32 ms, the last partial one included.
    assert probs.shape == (int(np.ceil(samples.size / vad.WINDOW)),)
    assert probs.dtype == np.float32 and 0 <= probs.min() and probs.max() <= 1
    # Block-wise reading with state carried gives what one call over everything gives.
    np.testing.assert_allclose(probs, speech_probabilities(samples), atol=1e-5)
    # ~700x on this 2-core box when idle; the floor leaves room for a busy machine.
    assert speed > 100, f"VAD ran at {speed:.0f}x realtime"


def test_any_media_file_is_resampled(espeak: tuple[Path, dict, float]) -> None:
    wav, _, _ = espeak
    direct = speech_probabilities(SAMPLES / "talk.mp4")
    via_wav = speech_probabilities(wav)
    assert abs(direct.size - via_wav.size) <= 1
    n = min(direct.size, via_wav.size)
    # Two resampling paths differ in the last bits, not in what is speech.
    assert np.mean((direct[:n] >= 0.5) == (via_wav[:n] >= 0.5)) > 0.98


def test_espeak_sample_pauses(espeak: tuple[Path, dict, float]) -> None:
    wav, truth, duration = espeak
    a = analyze_audio(SAMPLES / "talk.mp4")
    s = SilenceSettings()
    cuts = detect_pauses(a, wav, settings=s)
    for c in cuts:
        # VAD and the loudness floor both have to agree, and the reason says so.
        assert c.reason.startswith("no speech for ") and "(VAD) and quiet: silence" in c.reason
        for ph in truth["phrases"]:
            assert c.end <= ph["start"] or c.start >= ph["end"], (c, ph)
    for p in truth["pauses"]:
        if p["end"] - p["start"] < s.min_silence:
            continue
        hits = [c for c in cuts if c.start < p["end"] and c.end > p["start"]]
        assert len(hits) == 1, (p, cuts)
        assert hits[0].length >= p["end"] - p["start"] - 2 * s.padding - 0.15
    # Comma pauses inside sentences (< 0.5 s) stay; only the real pauses are cut.
    assert len(cuts) == len(truth["pauses"])
    assert cuts[-1].end == pytest.approx(duration)


def test_noisy_rooms_default_method(noisy: list[Talk]) -> None:
    s = SilenceSettings()
    assert s.method == "vad"
    all_cuts = []
    for t in noisy:
        cuts = detect_pauses(t.analysis, t.wav, settings=s)
        assert_no_speech_cut(cuts, t.truth)
        for c in cuts:
            # Padding (less one 10 ms level hop of edge refinement) is kept next to speech.
            for s0, s1 in t.truth.speech:
                if c.end <= s0:
                    assert s0 - c.end >= s.padding - 0.011, (c, s0)
                if c.start >= s1:
                    assert c.start - s1 >= s.padding - 0.011, (c, s1)
        all_cuts.append(cuts)
    assert recall(all_cuts, noisy, s.padding) >= 0.95


def test_probabilities_can_be_reused(noisy: list[Talk]) -> None:
    t = noisy[0]
    probs = speech_probabilities(t.wav)
    assert detect_pauses(t.analysis, None, probs=probs) == detect_pauses(t.analysis, t.wav)


def test_hysteresis_keeps_breaths_and_short_pauses() -> None:
    w = WINDOW_S
    # 2 s speech, a 0.3 s pause, a breath (p hovering 0.4) for 0.6 s, 1 s pause, speech.
    p = np.concatenate([
        np.full(int(2 / w), 0.9), np.full(int(0.3 / w), 0.05), np.full(int(2 / w), 0.9),
        np.full(int(0.6 / w), 0.4), np.full(int(2 / w), 0.9), np.full(int(1.0 / w), 0.02),
        np.full(int(2 / w), 0.9),
    ]).astype(np.float32)
    mask = speech_mask(p, 0.5, 0.35)
    assert mask[int(4.5 / w)]  # 0.4 after speech is still speech (above the offset)
    duration = p.size * w
    cuts = detect_silences_vad(p, w, duration, SilenceSettings(min_silence=0.5, padding=0.1))
    assert len(cuts) == 1
    c = cuts[0]
    start = (int(2 / w) * 2 + int(0.3 / w) + int(0.6 / w) + int(2 / w)) * w
    assert c.start == pytest.approx(start + 0.1, abs=1e-6)
    # The end is guarded by one window for the model's onset latency, then padded.
    assert c.end == pytest.approx(start + int(1.0 / w) * w - w - 0.1, abs=1e-6)
    assert c.reason == f"no speech for {int(1.0 / w) * w - w:.2f} s (VAD p<0.35)"


def test_edges_of_file_are_not_padded() -> None:
    w = WINDOW_S
    p = np.concatenate([np.zeros(40), np.full(60, 0.9), np.zeros(40)]).astype(np.float32)
    cuts = detect_silences_vad(p, w, p.size * w, SilenceSettings())
    assert [c.start for c in cuts][0] == 0.0 and cuts[-1].end == pytest.approx(p.size * w)
    assert detect_silences_vad(np.zeros(0, np.float32), w, 1.0) == []


def test_falls_back_to_loudness_without_model(
    noisy: list[Talk], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise vad.VadUnavailable("onnxruntime is not installed (test)")

    monkeypatch.setattr(vad, "_session", broken)
    t = noisy[0]
    with caplog.at_level(logging.WARNING):
        cuts = detect_pauses(t.analysis, t.wav)
    assert "loudness instead" in caplog.text
    assert cuts and all("auto" in c.reason and "dBFS" in c.reason for c in cuts)
    assert_no_speech_cut(cuts, t.truth)
    # Plain levels (hum included) and no WAV: loudness with auto threshold still cuts.
    with caplog.at_level(logging.WARNING):
        plain = detect_pauses(t.analysis.levels_db, None, t.analysis.duration, hop=t.analysis.hop)
    assert len(plain) >= 7
    assert_no_speech_cut(plain, t.truth)


def test_vad_never_cuts_loud_non_speech(tmp_path: Path) -> None:
    """A tone voice reads as "no speech" to Silero; the loudness guard keeps it whole."""
    from sapari_testkit.generate import generate_talk

    path = tmp_path / "tone.mp4"
    truth = generate_talk(path, pauses=[0.8, 1.5, 2.0], seed=7)
    a = analyze_audio(path, wav_out=tmp_path / "tone16.wav")
    guarded = detect_pauses(a, tmp_path / "tone16.wav", settings=SilenceSettings())
    raw = detect_pauses(a, tmp_path / "tone16.wav", settings=SilenceSettings(vad_guard=False))
    speech_in = sum(max(0.0, min(c.end, e) - max(c.start, s)) for c in raw
                    for s, e in truth.speech)
    assert speech_in > 1.0  # Silero alone would cut the "speech"
    for c in guarded:
        for s, e in truth.speech:
            assert c.end <= s + 0.02 or c.start >= e - 0.02, c
    assert len(guarded) == 3

"""Noisy rooms: pink noise and mains hum in the generator, hum-rejecting levels, auto threshold."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from sapari_server.media.audio import analyze_audio
from sapari_server.media.silence import (
    SilenceSettings,
    auto_threshold,
    detect_pauses,
    detect_silences,
    detect_silences_in,
)
from sapari_testkit.generate import generate_talk

from ._rooms import PINK_HUM, Talk, assert_no_speech_cut, make_talks, recall


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> list[Talk]:
    return make_talks(tmp_path_factory.mktemp("noise"), **PINK_HUM)


def _room_only(tmp_path: Path, **room: object) -> np.ndarray:
    """Samples of a talk that is all pause: just the room."""
    f = tmp_path / "room.wav"
    generate_talk(f, pauses=[], speech_lengths=[0.05], tail_silence=4.0, video=False,
                  **room)  # type: ignore[arg-type]
    with wave.open(str(f)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768
    return x[48000:]  # skip the tiny syllable


def test_generator_pink_noise_and_hum_levels(tmp_path: Path) -> None:
    pink = _room_only(tmp_path, noise_db=-32.0, noise_color="pink")
    assert 20 * np.log10(np.sqrt(np.mean(pink**2))) == pytest.approx(-32, abs=1.5)
    # Pink: about 3 dB less power per octave; white would be +3 dB.
    spec = np.abs(np.fft.rfft(pink[: 2**17])) ** 2
    freqs = np.fft.rfftfreq(2**17, 1 / 48000)
    band = [spec[(freqs >= f) & (freqs < 2 * f)].sum() for f in (250, 500, 1000, 2000, 4000)]
    slope = np.polyfit(np.arange(5), 10 * np.log10(band), 1)[0]
    assert slope == pytest.approx(0, abs=1.5)  # equal power per octave
    hum = _room_only(tmp_path, hum_db=-30.0)
    assert 20 * np.log10(np.sqrt(np.mean(hum**2))) == pytest.approx(-30, abs=0.5)
    spec = np.abs(np.fft.rfft(hum[:48000])) ** 2  # 1 Hz bins
    assert spec.argmax() == 50 and spec[100] > 0.1 * spec[50]


def test_dehum_levels_cancel_hum(tmp_path: Path) -> None:
    f = tmp_path / "hum.mp4"
    truth = generate_talk(f, pauses=[1.0], speech_lengths=[1.5, 1.5], video=False,
                          hum_db=-30.0, voice="formant", seed=3)
    a = analyze_audio(f)
    assert a.levels_dehum_db is not None and a.levels_dehum_db.shape == a.levels_db.shape
    p0, p1 = truth.pauses[0]
    pause = slice(int(p0 / a.hop) + 5, int(p1 / a.hop) - 5)
    assert np.median(a.levels_db[pause]) == pytest.approx(-30, abs=1.5)
    assert np.median(a.levels_dehum_db[pause]) < -55  # the hum is gone
    s0, s1 = truth.speech[1]
    speech = slice(int(s0 / a.hop) + 10, int(s1 / a.hop) - 10)
    # Speech keeps its loudness (within a few dB) in the hum-rejected track.
    assert np.median(a.levels_dehum_db[speech]) > np.median(a.levels_db[speech]) - 4


def test_auto_threshold_sits_between_floor_and_speech() -> None:
    levels = np.concatenate([np.full(300, -50.0), np.full(700, -18.0)]).astype(np.float32)
    t = auto_threshold(levels)
    assert t.floor_db == -50 and t.speech_db == -18
    assert t.threshold_db == pytest.approx(-50 + 0.35 * 32, abs=0.1)
    # Digital silence: the floor is clamped so the threshold stays near real quiet.
    t = auto_threshold(np.concatenate([np.full(300, -120.0), np.full(700, -20.0)]))
    assert t.floor_db == -70 and t.threshold_db == pytest.approx(-70 + 0.35 * 50, abs=0.1)


def test_loudness_fixed_threshold_fails_auto_finds_pauses(noisy: list[Talk]) -> None:
    fixed = SilenceSettings(method="loudness", threshold_db=-40.0)
    auto = SilenceSettings(method="loudness", threshold_db=None)
    # The room sits above -40 dBFS: a fixed threshold finds nothing at all.
    assert not any(detect_silences_in(t.analysis, fixed) for t in noisy)
    found = []
    for t in noisy:
        cuts = detect_pauses(t.analysis, None, settings=auto)
        assert_no_speech_cut(cuts, t.truth)
        for c in cuts:
            assert c.reason.startswith("silence ") and "below" in c.reason
            assert "auto: floor" in c.reason and "dBFS" in c.reason
        found.append(cuts)
    assert recall(found, noisy, auto.padding) >= 0.95


def test_short_pauses_are_never_cut(noisy: list[Talk]) -> None:
    for s in (SilenceSettings(), SilenceSettings(method="loudness", threshold_db=None)):
        for t in noisy:
            cuts = detect_pauses(t.analysis, t.wav, settings=s)
            for p0, p1 in t.truth.pauses:
                if p1 - p0 < s.min_silence and 0 < p0 and p1 < t.truth.duration - 1e-6:
                    assert not [c for c in cuts if c.start < p1 and c.end > p0], (p0, p1)


def test_blips_inside_a_pause_do_not_split_it() -> None:
    levels = np.full(300, -60.0, dtype=np.float32)
    levels[:50] = levels[250:] = -20.0
    levels[150:152] = -20.0  # a 20 ms click in the middle of the pause
    cuts = detect_silences(levels, 0.01, 3.0, SilenceSettings(threshold_db=-40.0))
    assert len(cuts) == 1 and cuts[0].start == pytest.approx(0.6)
    assert cuts[0].end == pytest.approx(2.4)

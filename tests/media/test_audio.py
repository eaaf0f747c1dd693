"""analyze_audio(): levels, peaks and the 16 kHz WAV from one streaming decode."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from sapari_server.media.audio import analyze_audio
from sapari_server.media.errors import MediaError
from sapari_testkit.generate import generate_talk, make_bad_inputs


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    f = tmp_path_factory.mktemp("audio") / "talk.mp4"
    truth = generate_talk(
        f, pauses=[0.8, 1.2], speech_lengths=[1.5, 1.0, 1.3], channels=2, width=160, height=120
    )
    return f, truth


def test_levels_and_peaks_shape(talk) -> None:
    f, truth = talk
    calls: list[float] = []
    a = analyze_audio(f, progress=calls.append)
    assert a.sample_rate == 48000
    assert a.duration == pytest.approx(truth.duration, abs=0.03)
    assert a.levels_db.dtype == np.float32
    assert len(a.levels_db) == int(np.ceil(a.duration / a.hop - 1e-9))
    assert a.peaks.dtype == np.int16 and a.peaks.shape == (int(np.ceil(a.duration * 100 - 1e-9)), 2)
    assert np.all(a.peaks[:, 0] <= a.peaks[:, 1])
    assert calls and calls[-1] == 1.0 and all(0 <= c <= 1 for c in calls)


def test_levels_follow_truth(talk) -> None:
    f, truth = talk
    a = analyze_audio(f)
    t = a.times()
    for s, e in truth.speech:
        inside = (t > s + 0.05) & (t < e - 0.05)
        # Speech is loud (about -20..-12 dBFS on average) with short dips.
        mean_db = 10 * np.log10(np.mean(10 ** (a.levels_db[inside] / 10)))
        assert -24 < mean_db < -8
    for s, e in truth.pauses:
        inside = (t > s + 0.05) & (t < e - 0.05)
        assert np.all(a.levels_db[inside] < -60)
        peaks = a.peaks[
            (np.arange(len(a.peaks)) / 100 > s + 0.05) & (np.arange(len(a.peaks)) / 100 < e - 0.06)
        ]
        assert np.abs(peaks).max() < 100


def test_exact_windows_with_fractional_hop(tmp_path: Path) -> None:
    # 22.05 kHz and a 10 ms hop: 220.5 samples per window; windows must not drift.
    f = tmp_path / "odd.wav"
    truth = generate_talk(
        f, pauses=[1.0], speech_lengths=[2.0, 2.0], video=False, sample_rate=22050
    )
    a = analyze_audio(f, hop=0.01, peaks_per_second=30)
    n = round(truth.duration * 22050)
    assert len(a.levels_db) == int(np.ceil(n / 220.5 - 1e-9))
    assert len(a.peaks) == int(np.ceil(n / 735 - 1e-9))
    pause_start = truth.pauses[0][0]
    quiet = a.levels_db < -40
    # First window that starts 0.3 s of quiet (stop gaps inside speech are shorter).
    run = np.convolve(quiet, np.ones(30), mode="valid") == 30
    first_quiet = int(np.argmax(run)) * 0.01
    assert first_quiet == pytest.approx(pause_start, abs=0.011)


def test_wav_out_is_16k_mono_with_right_duration(talk, tmp_path: Path) -> None:
    f, truth = talk
    out = tmp_path / "speech.wav"
    a = analyze_audio(f, wav_out=out)
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        dur = w.getnframes() / 16000
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert dur == pytest.approx(a.duration, abs=0.01)
    assert dur == pytest.approx(truth.duration, abs=0.03)
    s, e = truth.speech[0]
    assert np.abs(pcm[int(s * 16000) + 800 : int(e * 16000) - 800]).max() > 3000
    p0, p1 = truth.pauses[0]
    assert np.abs(pcm[int(p0 * 16000) + 800 : int(p1 * 16000) - 800]).max() < 50


def test_no_audio_track(tmp_path: Path) -> None:
    bad = make_bad_inputs(tmp_path)
    with pytest.raises(MediaError, match="has no audio track: sapari-nb cuts by speech"):
        analyze_audio(bad["no_audio"])
    for kind in ("text", "empty", "truncated"):
        with pytest.raises(MediaError):
            analyze_audio(bad[kind])


def test_truncated_data_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "fast.mp4"
    generate_talk(f, pauses=[0.5], speech_lengths=[2.0, 2.0], faststart=True, width=160, height=120)
    cut = tmp_path / "cut.mp4"
    data = f.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(MediaError, match="truncated"):
        analyze_audio(cut)

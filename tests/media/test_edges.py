"""Cut edges placed on the audio (media.edges), on synthetic levels and VAD probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from sapari_server.media.edges import MARGIN, snap_cut, speech_track
from sapari_server.media.vad import WINDOW_S

HOP = 0.01
FLOOR_DB = -60.0
SPEECH_DB = -20.0


def _levels(duration: float, voiced: list[tuple[float, float]]) -> np.ndarray:
    n = int(round(duration / HOP))
    lv = np.full(n, FLOOR_DB, dtype=np.float32)
    for s, e in voiced:
        lv[int(round(s / HOP)):int(round(e / HOP))] = SPEECH_DB
    return lv


def _probs(duration: float, voiced: list[tuple[float, float]]) -> np.ndarray:
    n = int(np.ceil(duration / WINDOW_S))
    p = np.full(n, 0.02, dtype=np.float32)
    for s, e in voiced:
        p[int(np.ceil(s / WINDOW_S)):int(e / WINDOW_S)] = 0.95
    return p


def test_vad_late_onset_is_pulled_back_to_the_level_rise() -> None:
    # Speech really starts at 2.00 s (levels); the model flags it only from 2.16 s.
    lv = _levels(4.0, [(0.5, 1.2), (2.0, 3.5)])
    track = speech_track(lv, HOP, 4.0, _probs(4.0, [(0.5, 1.2), (2.16, 3.5)]))
    assert track.runs[1][0] == pytest.approx(2.0, abs=HOP)


def test_cut_end_moves_before_an_onset_earlier_than_the_word_time() -> None:
    # False start 0.5-1.0, pause, retake voiced from 2.0; Whisper starts the retake at 2.6.
    voiced = [(0.5, 1.0), (2.0, 3.5)]
    track = speech_track(_levels(4.0, voiced), HOP, 4.0, _probs(4.0, voiced))
    placed = snap_cut(track, 0.5, 2.55, kept_after=(2.6, 3.0))
    assert placed is not None
    assert 2.0 - 0.05 <= placed[1] <= 2.0 - MARGIN + 1e-6


def test_padding_is_kept_before_the_retake_where_the_pause_has_room() -> None:
    voiced = [(0.5, 1.0), (2.0, 3.5)]
    track = speech_track(_levels(4.0, voiced), HOP, 4.0, _probs(4.0, voiced))
    placed = snap_cut(track, 0.5, 2.55, padding=0.1, kept_after=(2.6, 3.0))
    assert placed is not None
    assert placed[1] == pytest.approx(1.9, abs=0.011)


def test_cut_start_inside_trailing_voicing_moves_after_it() -> None:
    # A kept word's voicing runs to 1.30 s; Whisper ended the word at 1.10 and the cut
    # (of a pause and a false start) starts at 1.15.
    voiced = [(0.2, 1.3), (2.0, 2.4), (3.0, 3.8)]
    track = speech_track(_levels(4.0, voiced), HOP, 4.0, _probs(4.0, voiced))
    placed = snap_cut(track, 1.15, 2.9, kept_before=(0.8, 1.1), kept_after=(3.0, 3.4))
    assert placed is not None
    assert placed[0] >= 1.3 + MARGIN - 1e-6
    assert placed[1] <= 3.0 - MARGIN + 1e-6


def test_trailing_voicing_past_the_vad_offset_is_kept() -> None:
    # Levels stay voiced until 1.40 s but the model let go at 1.20 s.
    lv = _levels(4.0, [(0.2, 1.4), (3.0, 3.8)])
    track = speech_track(lv, HOP, 4.0, _probs(4.0, [(0.2, 1.2), (3.0, 3.8)]))
    placed = snap_cut(track, 1.25, 2.9)
    assert placed is not None
    assert placed[0] >= 1.4


def test_a_false_start_whose_words_start_late_is_cut_from_its_own_onset() -> None:
    # The false start is voiced from 1.5 s; Whisper puts its first word at 1.7 s.
    voiced = [(0.2, 1.0), (1.5, 1.9), (2.8, 3.8)]
    track = speech_track(_levels(4.0, voiced), HOP, 4.0, _probs(4.0, voiced))
    placed = snap_cut(track, 1.7, 2.8, kept_before=(0.6, 1.0), kept_after=(2.9, 3.3))
    assert placed is not None
    assert placed[0] <= 1.5 - MARGIN + 1e-6
    assert placed[0] >= 1.0 + MARGIN - 1e-6


def test_never_crosses_into_the_next_kept_voiced_stretch() -> None:
    # The cut's end lies past the whole next stretch, which holds a kept word.
    voiced = [(0.5, 1.0), (2.0, 2.6), (3.0, 3.8)]
    track = speech_track(_levels(4.0, voiced), HOP, 4.0, _probs(4.0, voiced))
    placed = snap_cut(track, 0.5, 2.8, kept_after=(2.1, 2.5))
    assert placed is not None
    assert placed[1] <= 2.0 - MARGIN + 1e-6


def test_margin_keeps_a_few_ms_of_quiet_before_speech() -> None:
    voiced = [(0.5, 1.0), (2.0, 3.5)]
    track = speech_track(_levels(4.0, voiced), HOP, 4.0, _probs(4.0, voiced))
    placed = snap_cut(track, 1.2, 1.995)  # a manual cut ending 5 ms before the onset
    assert placed is not None
    assert placed[1] == pytest.approx(2.0 - MARGIN, abs=1e-6)
    assert placed[0] == pytest.approx(1.2)


def test_a_filler_inside_continuous_speech_ends_at_the_quietest_point() -> None:
    # "... um the ..." with no pause: a 40 ms dip at 2.20-2.24 between filler and word;
    # Whisper says the next word starts at 2.35.
    lv = _levels(4.0, [(0.5, 3.5)])
    lv[220:224] = -45.0
    voiced = [(0.5, 3.5)]
    track = speech_track(lv, HOP, 4.0, _probs(4.0, voiced))
    placed = snap_cut(track, 1.9, 2.35)
    assert placed is not None
    assert 2.2 <= placed[1] <= 2.24


def test_loudness_only_track_without_vad() -> None:
    lv = _levels(4.0, [(0.5, 1.0), (2.0, 3.5)])
    track = speech_track(lv, HOP, 4.0, None)
    assert [(round(s, 2), round(e, 2)) for s, e in track.runs] == [(0.5, 1.0), (2.0, 3.5)]
    placed = snap_cut(track, 0.5, 2.5, kept_after=(2.4, 2.8))
    assert placed is not None and placed[1] <= 2.0 - MARGIN + 1e-6


def test_a_cut_with_nothing_left_is_dropped() -> None:
    voiced = [(0.5, 3.5)]
    track = speech_track(_levels(4.0, voiced), HOP, 4.0, _probs(4.0, voiced))
    # Both edges flank kept words in the same stretch, no dip at all: nothing to cut safely.
    assert snap_cut(track, 1.0, 1.005) is None


# ------------------------------------------------------------- on real audio: spectrum, snap

RATE = 16_000


def _pink(n: int, db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.arange(spec.size), 1))
    x = np.fft.irfft(spec, n)
    return (x * 10 ** (db / 20) / (np.std(x) + 1e-12)).astype(np.float32)


def _levels_of(x: np.ndarray) -> np.ndarray:
    n = x.size // 160
    p = (x[: n * 160].astype(np.float64).reshape(n, 160) ** 2).mean(1)
    return (10 * np.log10(p + 1e-12)).astype(np.float32)


def test_a_soft_onset_under_pink_noise_is_found_on_the_spectrum() -> None:
    from sapari_server.media.edges import refine_on_spectrum

    # Pink room noise everywhere; a voiced sound (150 Hz harmonics up to 3 kHz) starts softly
    # at 2.00 s, 2 dB under the noise's broadband level, and is loud from 2.20 s.
    dur = 4.0
    t = np.arange(int(dur * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20)).astype(np.float32)
    env = np.where(t < 2.0, 0.0, np.where(t < 2.2, 10 ** (-50 / 20), 10 ** (-20 / 20)))
    env = np.where(t > 3.5, 0.0, env)
    x = _pink(t.size, -48.0) + (voice / np.std(voice) * env).astype(np.float32)
    levels = _levels_of(x)
    # The VAD flags it only once it is loud; the levels cannot see the soft part either.
    track = speech_track(levels, HOP, dur, _probs(dur, [(2.22, 3.5)]))
    assert track.runs[0][0] > 2.1
    refined = refine_on_spectrum(track, lambda a, b: x[int(a * RATE):int(b * RATE)])
    assert 1.95 <= refined.runs[0][0] <= 2.04, refined.runs
    assert refined.runs[0][1] >= track.runs[0][1]
    # Noise alone never grows a stretch: the same noise with no soft onset stays put.
    y = x.copy()
    y[int(1.5 * RATE):int(2.2 * RATE)] = _pink(int(0.7 * RATE), -48.0, seed=1)
    plain = refine_on_spectrum(speech_track(_levels_of(y), HOP, dur, _probs(dur, [(2.22, 3.5)])),
                               lambda a, b: y[int(a * RATE):int(b * RATE)])
    assert plain.runs[0][0] >= 2.15, plain.runs


def test_a_manual_cut_is_snapped_into_the_pause_around_it() -> None:
    from pathlib import Path

    import av

    from sapari_server.media.edges import snap_edges

    src = Path(__file__).resolve().parents[2].parent / "shared" / "voices"
    f1, f2 = src / "09_librispeech-251-male-engineer.wav", src / "10_librispeech-251-male-poison.wav"
    if not (f1.is_file() and f2.is_file()):
        pytest.skip("needs ../shared/voices")

    def read(p: Path) -> np.ndarray:
        with av.open(str(p)) as c:
            res = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            return np.concatenate([o.to_ndarray().reshape(-1) for fr in c.decode(audio=0)
                                   for o in res.resample(fr)]).astype(np.float32)

    a, b = read(f1), read(f2)
    gap = np.zeros(RATE, np.float32)
    x = np.concatenate([a, gap, b])
    x += _pink(x.size, -55.0)
    lv = _levels_of(a)
    on_a = np.flatnonzero(lv > lv.max() - 35)
    end_a = (on_a[-1] + 1) * HOP  # the first recording's last loud hop
    lv = _levels_of(b)
    start_b = a.size / RATE + 1.0 + np.flatnonzero(lv > lv.max() - 35)[0] * HOP
    levels = _levels_of(x)
    dur = x.size / RATE
    placed = snap_edges(lambda s, e: x[int(s * RATE):int(e * RATE)], levels, HOP, dur,
                        end_a - 0.15, start_b + 0.15)
    assert placed is not None
    assert end_a - 0.02 <= placed[0] < start_b and end_a < placed[1] <= start_b, (
        placed, end_a, start_b)
    # A cut inside one stretch of speech with no pause: nothing left to cut.
    mid = start_b + 1.0
    assert snap_edges(lambda s, e: x[int(s * RATE):int(e * RATE)], levels, HOP, dur,
                      mid, mid + 0.01) is None

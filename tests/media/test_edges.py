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

"""detect_silences(): cuts land on the pauses (+/- padding) and never reach into speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sapari_server.media.audio import analyze_audio
from sapari_server.media.silence import Cut, SilenceSettings, detect_silences, detect_silences_in
from sapari_testkit.generate import TalkTruth, generate_talk

TOL = 0.05


def check_cuts(cuts: list[Cut], truth: TalkTruth, s: SilenceSettings, duration: float) -> None:
    # Sorted, non-overlapping, inside the file.
    for c in cuts:
        assert 0 <= c.start < c.end <= duration + 1e-9
        assert c.kind == "silence" and "silence" in c.reason and "dBFS" in c.reason
    for a, b in zip(cuts, cuts[1:], strict=False):
        assert a.end < b.start
    # No cut reaches into speech.
    for c in cuts:
        for sp0, sp1 in truth.speech:
            assert c.end <= sp0 + 1e-6 or c.start >= sp1 - 1e-6, (c, (sp0, sp1))
    # Every pause longer than min_silence is cut where expected.
    for p0, p1 in truth.pauses:
        if p1 - p0 <= s.min_silence + 0.02:
            continue
        e0 = 0.0 if p0 == 0 else p0 + s.padding
        e1 = duration if p1 >= truth.duration - 1e-6 else p1 - s.padding
        hits = [c for c in cuts if c.start < p1 and c.end > p0]
        assert len(hits) == 1, (p0, p1, hits)
        assert hits[0].start == pytest.approx(e0, abs=TOL)
        assert hits[0].end == pytest.approx(e1, abs=TOL)
    # Nothing cut that is not a pause.
    assert len(cuts) <= len(truth.pauses)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        (dict(channels=2, sample_rate=48000), "stereo48k.mp4"),
        (dict(channels=1, sample_rate=44100), "mono44k.mp4"),
        (dict(channels=1, sample_rate=44100, video=False), "mono44k.wav"),
        (dict(channels=2, sample_rate=48000, video=False), "stereo48k.wav"),
    ],
)
def test_generated_talk(tmp_path: Path, kw: dict, name: str) -> None:
    f = tmp_path / name
    truth = generate_talk(
        f,
        pauses=[0.8, 0.3, 1.6, 0.55, 2.2, 0.45],
        seed=5,
        lead_silence=0.9,
        tail_silence=1.1,
        width=160,
        height=120,
        **kw,
    )
    a = analyze_audio(f)
    s = SilenceSettings()
    cuts = detect_silences_in(a, s)
    check_cuts(cuts, truth, s, a.duration)
    assert cuts[0].start == 0.0 and cuts[-1].end == pytest.approx(a.duration)
    assert len(cuts) == 6  # lead, 0.8, 1.6, 0.55, 2.2, tail


def test_noise_floor_below_threshold(tmp_path: Path) -> None:
    f = tmp_path / "noisy.mp4"
    truth = generate_talk(f, pauses=[0.7, 1.3, 0.6], seed=9, noise_db=-55, width=160, height=120)
    a = analyze_audio(f)
    s = SilenceSettings(min_silence=0.5, padding=0.15)
    cuts = detect_silences_in(a, s)
    check_cuts(cuts, truth, s, a.duration)
    assert len(cuts) == 3
    assert all(-60 < c.level_db < -50 for c in cuts)


def test_pure_function_rules() -> None:
    hop = 0.01
    # 1 s loud, 0.6 s quiet, 1 s loud, 0.3 s quiet (too short), 1 s loud, 0.8 s quiet to the end.
    levels = np.concatenate(
        [
            np.full(100, -15),
            np.full(60, -80),
            np.full(100, -15),
            np.full(30, -80),
            np.full(100, -15),
            np.full(80, -90),
        ]
    ).astype(np.float32)
    duration = len(levels) * hop
    cuts = detect_silences(levels, hop, duration, SilenceSettings(padding=0.1))
    assert [(c.start, c.end) for c in cuts] == [
        pytest.approx((1.1, 1.5)),
        pytest.approx((4.0, duration)),  # at the end: shrunk only on the speech side
    ]
    assert cuts[0].reason == "silence 0.60 s below -40 dBFS (mean -80 dBFS)"
    # Padding that eats the whole 0.6 s pause leaves nothing to cut there.
    assert detect_silences(
        levels, hop, duration, SilenceSettings(padding=0.3, min_silence=0.5)
    ) == [
        Cut(
            start=pytest.approx(4.2),
            end=pytest.approx(duration),
            reason=cuts[1].reason,
            level_db=-90.0,
        )
    ]
    # All silent: one cut over everything; nothing: no cuts.
    all_quiet = detect_silences(np.full(100, -100.0), hop, 1.0)
    assert [(c.start, c.end) for c in all_quiet] == [(0.0, 1.0)]
    assert detect_silences(np.zeros(0), hop, 0.0) == []
    assert detect_silences(np.full(100, -10.0), hop, 1.0) == []


def test_shipped_sample() -> None:
    import json

    from sapari_nb.samples import sample_path, sample_truth_path

    truth = json.loads(sample_truth_path().read_text())
    a = analyze_audio(sample_path())
    assert a.duration == pytest.approx(truth["duration"], abs=0.05)
    cuts = detect_silences_in(a)
    for p in truth["pauses"]:
        hits = [c for c in cuts if c.start < p["end"] and c.end > p["start"]]
        assert len(hits) == 1, p
    for ph in truth["phrases"]:
        # espeak's quiet word endings fall below -40 dBFS: allow the padding to cover them.
        for c in cuts:
            assert c.end <= ph["start"] + 1e-6 or c.start >= ph["end"] - 0.1, (c, ph)
    assert len(truth["false_starts"]) == 1

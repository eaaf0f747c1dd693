"""Generated noisy talks shared by the VAD and noise tests, scored against their truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sapari_server.media.audio import AudioAnalysis, analyze_audio
from sapari_server.media.silence import Cut
from sapari_testkit.generate import TalkTruth, generate_talk

LONG = 0.75  # pauses at least this long must be found
PINK_HUM = {"noise_db": -32.0, "noise_color": "pink", "hum_db": -30.0}


@dataclass
class Talk:
    path: Path
    wav: Path
    truth: TalkTruth
    analysis: AudioAnalysis


def make_talks(d: Path, n: int = 3, **room: object) -> list[Talk]:
    """``n`` formant-voice talks, 8 pauses each (0.3-2.0 s, at least 7 of them >= 0.75 s)."""
    out = []
    for seed in range(n):
        rng = np.random.default_rng(500 + seed)
        pauses = [float(x) for x in rng.uniform(0.75, 2.0, 7)] + [0.3]
        rng.shuffle(pauses)
        speech = [float(x) for x in rng.uniform(1.2, 2.5, len(pauses) + 1)]
        path = d / f"talk{seed}.mp4"
        truth = generate_talk(
            path, pauses=pauses, speech_lengths=speech, seed=seed, video=False,
            voice="formant", lead_silence=0.6, tail_silence=0.6, **room,  # type: ignore[arg-type]
        )
        wav = d / f"talk{seed}.16k.wav"
        out.append(Talk(path, wav, truth, analyze_audio(path, wav_out=wav)))
    return out


def recall(cuts_per_talk: list[list[Cut]], talks: list[Talk], padding: float) -> float:
    """Share of inner pauses >= LONG with a cut covering >= half of what padding leaves."""
    found = total = 0
    for cuts, t in zip(cuts_per_talk, talks, strict=True):
        for p0, p1 in t.truth.pauses:
            if p0 == 0 or p1 >= t.truth.duration - 1e-6 or p1 - p0 < LONG:
                continue
            total += 1
            got = sum(max(0.0, min(c.end, p1) - max(c.start, p0)) for c in cuts)
            found += got >= 0.5 * (p1 - p0 - 2 * padding)
    assert total >= 20
    return found / total


def assert_no_speech_cut(cuts: list[Cut], truth: TalkTruth) -> None:
    for c in cuts:
        assert 0 <= c.start < c.end <= truth.duration + 0.05
        for s0, s1 in truth.speech:
            assert c.end <= s0 + 1e-6 or c.start >= s1 - 1e-6, (c, (s0, s1))

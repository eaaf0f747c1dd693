"""Take cuts are deterministic, made only over real words, and bounded in length (issue 13).

Whisper writes text over non-speech (the generator's formant voice, tones); transcript
heuristics over that text used to cut minutes, differently on each run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sapari_server.speech.evidence import LONG_TAKE, MAX_TAKE
from sapari_server.speech.takes import TakeFinding, validate_findings
from sapari_server.speech.takes_heuristic import HeuristicTakeDetector
from sapari_server.speech.types import Word

from .wordlists import words_of

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def _local() -> object:
    pytest.importorskip("faster_whisper")
    from sapari_server.speech import LocalTranscriber, TranscriptionError

    try:
        tr = LocalTranscriber()
        tr.model  # noqa: B018 - load now, skip if unusable
    except TranscriptionError as e:
        pytest.skip(str(e))
    return tr


def _cuts(findings: list[TakeFinding]) -> list[tuple[object, ...]]:
    return [(f.kind, f.first_word, f.last_word, round(f.start, 3), round(f.end, 3), f.flag)
            for f in findings]


def _assert_bounded(findings: list[TakeFinding]) -> None:
    for f in findings:
        length = f.end - f.start
        assert length <= MAX_TAKE, f
        assert length <= LONG_TAKE or f.flag == "long", f


# ------------------------------------------------------------- evidence, no model needed


def _hallucinated(text: str, step: float) -> list[Word]:
    """Words spread over minutes, as Whisper writes them over noise: unsure segments."""
    return [
        Word(t, i * step, i * step + 0.8 * step, 0.3, no_speech_prob=0.55, avg_logprob=-1.6,
             compression_ratio=1.1)
        for i, t in enumerate(text.split())
    ]


def test_hallucinated_restart_over_minutes_is_never_cut() -> None:
    words = _hallucinated("so the the the thing so the thing is here.", 12.0)
    assert HeuristicTakeDetector().detect(words) == []


def test_unsure_segment_blocks_a_take_cut_that_sure_words_allow() -> None:
    text = "So the first thing you... So the first thing you want to do is open it."
    sure = words_of(text)
    assert HeuristicTakeDetector().detect(sure)  # the restart is found on real words
    unsure = [Word(w.word, w.start, w.end, w.probability, 0.2, -1.4, 1.2) for w in sure]
    assert HeuristicTakeDetector().detect(unsure) == []
    looping = [Word(w.word, w.start, w.end, w.probability, 0.1, -0.3, 2.9) for w in sure]
    assert HeuristicTakeDetector().detect(looping) == []


def test_words_the_vad_did_not_hear_are_not_cut() -> None:
    text = "So the first thing you... So the first thing you want to do is open it."
    words = words_of(text)
    everywhere = [(0.0, words[-1].end + 1)]
    assert HeuristicTakeDetector().detect(words, voiced=everywhere)
    after_the_start = [(words[5].start, words[-1].end + 1)]  # the false start was silence
    assert HeuristicTakeDetector().detect(words, voiced=after_the_start) == []


def test_long_takes_are_flagged_and_over_the_bound_never_proposed() -> None:
    words = [Word(f"w{i}", 2.0 * i, 2.0 * i + 1.5, 0.95) for i in range(30)]
    words[-1] = Word("w29.", 58.0, 59.5, 0.95)
    long_one = TakeFinding(0, 5, 0, 0, "false_start", "long restart", 0.95)  # 11.5 s
    weak_one = TakeFinding(7, 12, 0, 0, "false_start", "weak restart", 0.7)  # 11.5 s, weak
    huge = TakeFinding(13, 28, 0, 0, "repeated_take", "huge", 1.0)  # 31.5 s
    found = validate_findings(words, [long_one, weak_one, huge])
    assert len(found) == 1
    f = found[0]
    assert (f.first_word, f.last_word, f.flag) == (0, 5, "long")
    assert f.confidence <= 0.5 and f.reason.startswith("long (11.5 s")
    short = validate_findings(words, [TakeFinding(0, 2, 0, 0, "false_start", "x", 0.9)])
    assert short[0].flag is None and short[0].confidence == 0.9


# ------------------------------------------------------------- through the local model


@pytest.mark.parametrize(
    "kw",
    [
        {"voice": "formant", "noise_db": -45.0, "seed": 3},
        {"voice": "formant", "hum_db": -40.0, "seed": 5},
        {"voice": "tone", "seed": 1},
    ],
    ids=["formant-noise", "formant-hum", "tones"],
)
def test_non_speech_gets_no_unbounded_take_cut_and_same_words_twice(
    tmp_path: Path, kw: dict[str, object]
) -> None:
    from sapari_testkit.generate import generate_talk

    tr = _local()
    wav = tmp_path / "talk.wav"
    truth = generate_talk(wav, pauses=[1.5, 0.8], speech_lengths=[5.0, 6.0, 4.0], video=False,
                          sample_rate=16000, **kw)  # type: ignore[arg-type]
    runs = [tr.transcribe(wav).words for _ in range(2)]  # type: ignore[attr-defined]
    assert runs[0] == runs[1]  # temperature 0 only: no sampled fallback
    found = HeuristicTakeDetector().detect(runs[0], pauses=truth.pauses, voiced=truth.speech)
    _assert_bounded(found)
    # Whatever Whisper heard there, nothing it wrote is trusted enough to cut.
    assert [f for f in found if f.kind != "filler"] == []


@needs_espeak
def test_spoken_talk_gives_identical_cuts_three_times(tmp_path: Path) -> None:
    from sapari_testkit.speechgen import FalseStart, Pause, Sentence, generate_spoken_talk

    script = [
        Sentence("Welcome to the workshop."),
        Pause(0.6),
        FalseStart("So the first thing"),
        Pause(0.5),
        Sentence("So the first thing is the power supply."),
        Pause(0.7),
        Sentence("Then we connect the red wire."),
    ]
    wav = tmp_path / "talk.wav"
    truth = generate_spoken_talk(wav, script, seed=2, sample_rate=16000)
    tr = _local()
    results = []
    for _ in range(3):
        t = tr.transcribe(wav)  # type: ignore[attr-defined]
        found = HeuristicTakeDetector().detect(t.words, pauses=truth.pauses, voiced=truth.speech)
        results.append((t.to_json(), _cuts(found)))
    assert results[0] == results[1] == results[2]
    _assert_bounded(validate_findings(t.words, found, voiced=truth.speech))
    # The words carry Whisper's segment judgement, and it survives storing.
    w = t.words[0]
    assert w.avg_logprob is not None and w.no_speech_prob is not None
    assert type(t).from_json(t.to_json()).words == t.words
    # The false start is real speech: it is still found.
    fs = truth.false_starts[0]
    assert any(f.start < fs[1] and fs[0] < f.end for f in found), found

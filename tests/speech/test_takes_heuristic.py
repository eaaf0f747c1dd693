"""Transcript heuristics for takes, validation shared by all backends, and spoken talks."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from sapari_server.settings import Settings
from sapari_server.speech.takes import (
    TakeFinding,
    make_take_detector,
    validate_findings,
)
from sapari_server.speech.takes_heuristic import HeuristicTakeDetector
from sapari_server.speech.types import Word

from .wordlists import words_of


def cut(words: list[Word], findings: list[TakeFinding]) -> list[tuple[str, str]]:
    return [
        (f.kind, " ".join(w.word for w in words[f.first_word : f.last_word + 1])) for f in findings
    ]


def detect(text: str, **kw: object) -> list[tuple[str, str]]:
    words = words_of(text)
    return cut(words, HeuristicTakeDetector().detect(words, **kw))  # type: ignore[arg-type]


def test_restart_repeating_the_opening_words() -> None:
    text = "So the first thing you... So the first thing you want to do is open it."
    assert detect(text) == [("false_start", "So the first thing you...")]


def test_restart_folded_into_one_phrase_without_marks() -> None:
    # Whisper folded the retake: no "...", no pause; the abandoned words are an exact prefix.
    text = "so the first thing you so the first thing you want to do is open it."
    assert detect(text) == [("false_start", "so the first thing you")]


def test_abandoned_sentence_with_fuzzy_retake_and_cut_off_word() -> None:
    text = "Next we connect the red wi... <0.5> Next we connect the red wire to the pin."
    assert detect(text) == [("false_start", "Next we connect the red wi...")]


def test_repeated_whole_take_keeps_the_last() -> None:
    text = "The answer is forty two. <0.6> The answer is forty two. Now the next part."
    assert detect(text) == [("repeated_take", "The answer is forty two.")]


def test_fillers_are_conservative() -> None:
    found = detect("Um, so you know, I like it. Uh <0.3> it erm works, hmm.")
    assert found == [("filler", "Um,"), ("filler", "Uh"), ("filler", "erm"), ("filler", "hmm.")]


def test_stutter_keeps_the_last_repetition() -> None:
    assert detect("I I I think the the answer is here.") == [
        ("stutter", "I I"),
        ("stutter", "the"),
    ]


def test_intended_doubles_are_not_stutters() -> None:
    # Emphasis and grammatical doubles are meant; said three times they are a stutter.
    assert detect("It is very very good and I had had enough of that that day.") == []
    assert detect("It is very very very good.") == [("stutter", "very very")]


def test_adjacent_phrase_repeat_inside_a_sentence() -> None:
    assert detect("and then we need to we need to check the wires.") == [
        ("false_start", "we need to")
    ]


def test_parallel_phrases_are_not_restarts() -> None:
    assert detect("In the morning, in the evening we walk to the river.") == []
    assert detect("It is fast, it is cheap, and it is easy to build.") == []


def test_summary_repeated_later_is_not_a_retake() -> None:
    far = "The sensor sits left. The fan keeps air moving. The case is closed. We are done."
    # Parallel sentences are structure, not retakes.
    assert detect("Point one is the case. Point two is the lid. Point three is the fan.") == []
    text = f"The battery lasts three weeks. {far} The battery lasts three weeks."
    assert detect(text) == []
    # Even close by, a complete sentence of content in between blocks the match.
    text = "We open the file. Then we close it and save it. We open the file."
    assert detect(text) == []


def test_unworded_speech_before_a_sentence_is_a_false_start() -> None:
    # Whisper dropped "So the first" (0.3-1.1 s): the VAD heard it, no word covers it.
    words = [
        Word("Hello", 0.0, 0.3),
        Word("there.", 0.3, 0.9),  # end runs long into the pause, as Whisper's do
        Word("So", 1.6, 1.8),
        Word("the", 1.8, 1.9),
        Word("first", 1.9, 2.2),
        Word("thing.", 2.2, 2.6),
    ]
    voiced = [(0.0, 0.65), (0.8, 1.3), (1.6, 2.6)]
    found = HeuristicTakeDetector().detect(words, voiced=voiced)
    assert len(found) == 1
    f = found[0]
    assert (f.kind, f.has_words, f.first_word, f.last_word) == ("false_start", False, 2, 1)
    assert (f.start, f.end) == (0.8, 1.3)
    assert "no word covers" in f.reason
    # Speech glued to the next sentence (no pause after it) is not evidence of a restart.
    assert HeuristicTakeDetector().detect(words, voiced=[(0.0, 0.65), (1.45, 2.6)]) == []


def test_validate_drops_out_of_range_reversed_and_unknown(caplog: pytest.LogCaptureFixture) -> None:
    words = words_of("One two three. Four five six. Four five six seven.")
    bad = [
        TakeFinding(5, 12, 0, 1, "false_start", "past the end"),
        TakeFinding(-1, 1, 0, 1, "filler", "negative"),
        TakeFinding(4, 2, 0, 1, "filler", "reversed"),
        TakeFinding(0, 0, 0, 1, "nonsense", "bad kind"),  # type: ignore[arg-type]
        TakeFinding(3, 5, 99.0, 100.0, "false_start", "times\nignored"),
    ]
    with caplog.at_level(logging.WARNING):
        good = validate_findings(words, bad)
    assert [(f.first_word, f.last_word) for f in good] == [(3, 5)]
    assert (good[0].start, good[0].end) == (words[3].start, words[5].end)  # from the words
    assert good[0].reason == "times ignored"  # one line
    assert caplog.text.count("dropped take finding") == 4


def test_validate_merges_same_kind_and_keeps_larger_otherwise() -> None:
    words = words_of("a b c d e f g h i j k l.")
    found = [
        TakeFinding(0, 2, 0, 0, "filler", "x"),
        TakeFinding(2, 3, 0, 0, "filler", "y"),
        TakeFinding(6, 6, 0, 0, "stutter", "small"),
        TakeFinding(5, 8, 0, 0, "aside", "big"),
    ]
    out = validate_findings(words, found)
    assert [(f.first_word, f.last_word, f.kind) for f in out] == [
        (0, 3, "filler"),
        (5, 8, "aside"),
    ]
    assert out[0].reason == "x; y"


def test_validate_never_removes_the_last_take() -> None:
    words = words_of("The cat sat. The cat sat down. Another sentence here.")
    # Both takes proposed: the final one survives, the earlier one goes.
    out = validate_findings(
        words,
        [
            TakeFinding(0, 2, 0, 0, "false_start", "a"),
            TakeFinding(3, 6, 0, 0, "repeated_take", "b"),
        ],
    )
    assert [(f.first_word, f.last_word) for f in out] == [(0, 2)]
    # A sentence with no retake may not be removed whole; part of it may.
    assert validate_findings(words, [TakeFinding(7, 9, 0, 0, "aside", "c")]) == []
    assert len(validate_findings(words, [TakeFinding(7, 7, 0, 0, "aside", "c")])) == 1
    # A filler-only sentence may go.
    w2 = words_of("Um. Hello there.")
    assert len(validate_findings(w2, [TakeFinding(0, 0, 0, 0, "filler", "um")])) == 1


def test_validate_allows_a_short_aside_between_a_take_and_its_retake() -> None:
    words = words_of("So the first... Sorry, let me redo that. So the first thing is power.")
    out = validate_findings(words, [TakeFinding(0, 7, 0, 0, "false_start", "flub")])
    assert [(f.first_word, f.last_word) for f in out] == [(0, 7)]


def test_validate_clips_wordless_findings_to_their_gap() -> None:
    words = words_of("Hello there. <1.0> So it goes.")
    f = TakeFinding(2, 1, 0.0, 5.0, "false_start", "audio")
    (out,) = validate_findings(words, [f])
    assert out.start == pytest.approx((words[1].start + words[1].end) / 2)
    assert out.end == pytest.approx((words[2].start + words[2].end) / 2)


def test_factory() -> None:
    assert make_take_detector(Settings(take_detector="none")) is None
    assert make_take_detector(Settings(take_detector="auto")).name == "heuristic"  # type: ignore[union-attr]
    assert make_take_detector(Settings(take_detector="heuristic")).name == "heuristic"  # type: ignore[union-attr]
    llm = make_take_detector(Settings(take_detector="auto", llm_api_key="k", llm_model="m"))
    assert llm is not None and llm.name == "llm"
    from sapari_server.speech.takes import TakeDetectionError

    with pytest.raises(TakeDetectionError, match="no key"):
        make_take_detector(Settings(take_detector="llm", llm_api_key="", openai_api_key=""))


# ---------------------------------------------------------------- spoken talks (espeak-ng)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@pytest.fixture(scope="module")
def talks(tmp_path_factory: pytest.TempPathFactory) -> list:
    from sapari_testkit.speechgen import generate_spoken_talk, random_script

    root = tmp_path_factory.mktemp("talks")
    voices = ["en-us", "en-gb", "en+f3"]
    return [
        generate_spoken_talk(
            Path(root) / f"talk{seed}.wav",
            random_script(seed, n_sentences=7, p_false_start=0.35, p_filler=0.15),
            voice=voices[seed % 3],
            speed=140 + 5 * seed,
            seed=seed,
        )
        for seed in range(10)
    ]


@needs_espeak
@pytest.mark.parametrize("whisper_dropped_them", [False, True])
def test_false_starts_on_spoken_talks(talks: list, whisper_dropped_them: bool) -> None:
    tp = fp = fn = 0
    for truth in talks:
        words = truth.words(include_false_starts=not whisper_dropped_them)
        voiced = truth.speech if whisper_dropped_them else None
        found = HeuristicTakeDetector().detect(words, voiced=voiced)
        spans = [(f.start, f.end) for f in found if f.kind in ("false_start", "repeated_take")]
        for t in truth.false_starts:
            hit = any(_overlap(s, t) >= 0.5 * (t[1] - t[0]) for s in spans)
            tp, fn = tp + hit, fn + (not hit)
        fp += sum(
            not any(_overlap(s, t) >= 0.5 * (s[1] - s[0]) for t in truth.false_starts)
            for s in spans
        )
        # No complete (kept) sentence loses more than a sliver to any finding.
        for sentence in truth.sentences:
            assert sum(_overlap((f.start, f.end), sentence) for f in found) < 0.05
    assert tp + fn >= 10  # the scripts do contain false starts
    assert tp / (tp + fn) >= 0.9
    assert tp / max(1, tp + fp) >= 0.9


@needs_espeak
def test_spoken_talk_truth(tmp_path: Path) -> None:
    from sapari_testkit.speechgen import (
        FalseStart,
        Filler,
        Pause,
        Sentence,
        generate_spoken_talk,
    )

    script = [
        Sentence("Welcome to the show."),
        Pause(0.6),
        Filler("um"),
        Pause(0.3),
        FalseStart("So the first"),
        Pause(0.5),
        Sentence("So the first thing is the power supply."),
    ]
    truth = generate_spoken_talk(tmp_path / "t.mp4", script, video=True, seed=3, noise_db=-60)
    assert (tmp_path / "t.mp4").stat().st_size > 0
    assert len(truth.sentences) == 2 and len(truth.false_starts) == 1 and len(truth.fillers) == 1
    fs = truth.false_starts[0]
    assert truth.sentences[1][0] - fs[1] == pytest.approx(0.5, abs=1e-4)
    assert truth.words()[7].word == "first..."  # abandoned take marked as Whisper does


def test_speechgen_says_when_espeak_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sapari_testkit import speechgen

    monkeypatch.setattr(speechgen.shutil, "which", lambda _name: None)
    with pytest.raises(speechgen.SpeechGenUnavailable, match="espeak-ng is not installed"):
        speechgen.generate_spoken_talk(tmp_path / "x.wav", [speechgen.Sentence("Hi.")])


def test_validate_moves_a_finding_that_ends_on_the_retake_back_to_the_abandoned_take() -> None:
    # A real case (LibriSpeech 5703 under hum, LLM path): Whisper heard the retake's "plied
    # up" as "and then apply it up", and a judge matched "and incidentally" across the
    # pause, proposing to cut the abandoned take's second half *and the retake's head*.
    text = ("with her white paint and her scarlet smoke stack. <1.3> "
            "plied up and down the lock, <0.9> "
            "and incidentally carried on communication between inverish seal and <1.2> "
            "and then apply it up and down the lock, <0.9> "
            "and incidentally carry down communication between in British heel and crayon "
            "knife.")
    words = words_of(text)
    idx = {i: w.word for i, w in enumerate(words)}
    first = next(i for i in idx if idx[i] == "incidentally") - 1
    last = next(i for i in idx if idx[i] == "lock," and i > first)
    (out,) = validate_findings(words, [TakeFinding(first, last, 0, 0, "false_start", "judge")])
    said = " ".join(w.word for w in words[out.first_word:out.last_word + 1])
    assert said == ("plied up and down the lock, and incidentally carried on communication "
                    "between inverish seal and")
    assert "moved back" in out.reason
    assert (out.start, out.end) == (words[out.first_word].start, words[out.last_word].end)


def test_validate_keeps_findings_whose_last_phrase_is_redone_after_them() -> None:
    # An abandoned take in two phrases, redone whole after it: nothing to move.
    words = words_of("Hello there. <1.0> So the first <0.8> thing is... <0.8> "
                     "So the first thing is power.")
    (out,) = validate_findings(words, [TakeFinding(2, 6, 0, 0, "false_start", "flub")])
    assert (out.first_word, out.last_word) == (2, 6)
    # The last phrase repeats the one before the finding, but what follows redoes it: the
    # finding is a take of its own (a phrase said three times keeps its last).
    words = words_of("Power lines hum. <1.0> We start here, <0.8> power lines hum. <0.8> "
                     "Power lines hum loudly.")
    (out,) = validate_findings(words, [TakeFinding(3, 8, 0, 0, "repeated_take", "again")])
    assert (out.first_word, out.last_word) == (3, 8)

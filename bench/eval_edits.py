"""False-start detection quality on spoken talks with exact ground truth.

    .venv/bin/python bench/eval_edits.py [--talks 6] [--sentences 8] [--real full|ci|none]

Generates espeak-ng talks (voices en-us, en-gb, en+f3; speeds 140-190; some with noise)
whose false starts, sentences and pauses are known to the sample, and prints per detector
setup: precision and recall of false starts (a truth false start is found when a finding
covers half of it; a finding is right when half of it lies in a truth false start; a
finding on a filler Whisper dropped is counted apart, as "dropped fillers"), and "speech
damaged", the seconds of kept sentences (truth) that any finding would remove.

Setups:
- truth words: the heuristic on words built from the script and truth timing (an ideal
  transcript that keeps the false starts, marked "..." as Whisper does).
- truth words, false starts dropped + VAD: the same words minus the false starts (Whisper
  folding a retake), with Silero VAD speech ranges of the audio as the only evidence.
- local Whisper + VAD: the heuristic on a real local transcript (skipped, with the reason,
  when the transcriber factory or the model is unavailable).

Then the real-voice tables (``--real``, default ``full``; ``none`` skips them): talks composed
from recordings of real people (bench/voices_set.py) through the whole engine the way
``sapari-nb edit`` runs it, scored per recording by bench/score_edits.py (pause recall,
false-start recall and precision, speech inside cuts, clipped words): once offline with no
key, once on the LLM path against the loopback fake, whose judge is a deterministic rule
(a phrase whose first words are said again after a pause): that table measures the LLM
plumbing and that rule, not a real model. Synthetic espeak speech is easy mode for ASR and
VAD: the real tables are the ones that count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped

from sapari_server.speech.takes import TakeFinding  # noqa: E402
from sapari_server.speech.takes_heuristic import HeuristicTakeDetector  # noqa: E402
from sapari_server.speech.types import Word  # noqa: E402
from sapari_testkit.speechgen import (  # noqa: E402
    SpokenTruth,
    generate_spoken_talk,
    random_script,
)

TAKE_KINDS = ("false_start", "repeated_take")
VOICES = ("en-us", "en-gb", "en+f3")


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    fillers_as_fs: int = 0  # unworded speech findings that were dropped fillers
    damaged: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        p = self.tp / max(1, self.tp + self.fp)
        r = self.tp / max(1, self.tp + self.fn)
        return (
            f"{name:<44} precision {p:5.2f}  recall {r:5.2f}  (tp {self.tp}, fp {self.fp}, "
            f"fn {self.fn}, dropped fillers {self.fillers_as_fs})  speech damaged {self.damaged:5.2f} s  [{self.seconds:.1f} s]"
        )


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def score(truth: SpokenTruth, found: list[TakeFinding], into: Score) -> None:
    spans = [(f.start, f.end) for f in found if f.kind in TAKE_KINDS]
    for t in truth.false_starts:
        if any(overlap(s, t) >= 0.5 * (t[1] - t[0]) for s in spans):
            into.tp += 1
        else:
            into.fn += 1
    for s in spans:
        if any(overlap(s, t) >= 0.5 * (s[1] - s[0]) for t in truth.false_starts):
            continue
        # A filler Whisper dropped shows up as unworded speech: a right cut, wrong kind.
        if any(overlap(s, t) >= 0.5 * (s[1] - s[0]) for t in truth.fillers):
            into.fillers_as_fs += 1
        else:
            into.fp += 1
    into.damaged += sum(overlap((f.start, f.end), s) for f in found for s in truth.sentences)


def vad_voiced(wav: Path) -> list[tuple[float, float]]:
    """Speech ranges Silero VAD hears (onset 0.5, offset 0.35 hysteresis)."""
    from sapari_server.media.vad import WINDOW_S, speech_mask, speech_probabilities

    mask = speech_mask(speech_probabilities(wav), 0.5, 0.35)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [
        (float(a * WINDOW_S), float(b * WINDOW_S))
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


def local_transcriber() -> tuple[Callable[[Path], list[Word]] | None, str]:
    try:
        from sapari_server.settings import Settings
        from sapari_server.speech.factory import make_transcriber
    except ImportError as exc:
        return None, f"skipped: transcriber factory not importable ({exc})"
    try:
        transcriber = make_transcriber(Settings(transcriber="local"))
    except Exception as exc:  # any reason the local model cannot run: say it, skip it
        return None, f"skipped: local transcriber unavailable ({exc})"
    if transcriber is None:
        return None, "skipped: no local transcriber configured"
    return (lambda wav: list(transcriber.transcribe(wav).words)), ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--talks", type=int, default=6)
    ap.add_argument("--sentences", type=int, default=8)
    ap.add_argument("--p-false-start", type=float, default=0.35)
    ap.add_argument("--real", choices=["full", "ci", "none"], default="full",
                    help="real-voice set to run through the engine (none: synthetic only)")
    args = ap.parse_args()

    detector = HeuristicTakeDetector()
    transcribe, skip_reason = local_transcriber()
    scores = {"ideal": Score(), "dropped": Score(), "whisper": Score()}
    total_audio = 0.0
    with tempfile.TemporaryDirectory(prefix="eval-edits-") as tmp:
        for k in range(args.talks):
            voice, speed = VOICES[k % len(VOICES)], 140 + (50 * k) // max(1, args.talks - 1)
            noise = -45.0 if k % 2 else None
            script = random_script(
                100 + k, n_sentences=args.sentences, p_false_start=args.p_false_start
            )
            wav = Path(tmp) / f"talk{k}.wav"
            truth = generate_spoken_talk(
                wav, script, voice=voice, speed=speed, seed=k, noise_db=noise, sample_rate=16000
            )
            total_audio += truth.duration
            print(
                f"talk {k}: {voice:<6} {speed} wpm  noise {noise or 'none':>5}  "
                f"{truth.duration:5.1f} s  {len(truth.false_starts)} false starts"
            )

            t0 = time.perf_counter()
            score(truth, detector.detect(truth.words()), scores["ideal"])
            scores["ideal"].seconds += time.perf_counter() - t0

            t0 = time.perf_counter()
            voiced = vad_voiced(wav)
            found = detector.detect(truth.words(include_false_starts=False), voiced=voiced)
            score(truth, found, scores["dropped"])
            scores["dropped"].seconds += time.perf_counter() - t0

            if transcribe is not None:
                t0 = time.perf_counter()
                words = transcribe(wav)
                score(truth, detector.detect(words, voiced=voiced), scores["whisper"])
                scores["whisper"].seconds += time.perf_counter() - t0

    print(f"\n{args.talks} talks, {total_audio:.0f} s of speech audio")
    print(scores["ideal"].line("heuristic / truth words"))
    print(scores["dropped"].line("heuristic / truth words w/o false starts + VAD"))
    if transcribe is not None:
        print(scores["whisper"].line("heuristic / local Whisper + VAD"))
    else:
        print(f"{'heuristic / local Whisper + VAD':<44} {skip_reason}")

    if args.real != "none":
        real_voices(args.real)


def real_voices(which: str) -> None:
    """The real-voice tables: offline (no key), then the LLM path against the loopback fake."""
    from bench.score_edits import evaluate, print_table
    from bench.voices_set import build

    talks, notes = build(which)
    for n in notes:
        print(f"note: {n}")
    audio = sum(t.truth.duration for t in talks)
    for llm, what in ((False, "offline, no key (sapari-nb edit path)"),
                      (True, "LLM path, loopback fake with a rule-based judge: plumbing only")):
        t0 = time.perf_counter()
        rows = evaluate(talks, llm=llm, echo=False)
        print_table(f"real voices ({which} set), {what}: {len(talks)} talks, {audio:.0f} s of "
                    f"audio, {time.perf_counter() - t0:.0f} s", rows)


if __name__ == "__main__":
    main()

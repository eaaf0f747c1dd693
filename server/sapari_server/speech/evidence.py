"""Is a take finding about real words, and is it a plausible size? Shared by every backend.

Whisper writes text over anything: a synthetic formant voice, tones, music, noise. Run over
such text, transcript heuristics find "false starts" and "stutters" everywhere, some of them
minutes long. So a take cut needs evidence that its words were really said:

- Whisper's own judgement of the segment each word came from (faster-whisper gives it):
  ``no_speech_prob`` (it thinks the window is not speech), ``avg_logprob`` (how sure the
  decoder was), ``compression_ratio`` (repetitive text: the looping hallucination);
  the thresholds are Whisper's own fallback thresholds;
- the word's own probability;
- agreement with the VAD: a word must overlap speech the VAD heard.

And it must be a plausible size: a false start or repeated take lasts seconds. Over
``LONG_TAKE`` seconds a finding needs strong evidence and is proposed flagged ``long`` with
lower confidence; over ``MAX_TAKE`` seconds it is never proposed.

Everything here is a pure function of its inputs (no sets iterated, no randomness), so the
same transcript gives the same verdicts every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .types import Word

# Whisper's own thresholds for "this window failed" (its temperature fallback uses them).
NO_SPEECH_MAX = 0.6
LOGPROB_MIN = -1.0
# Where the audio itself hears the restart (the same sounds twice, speech to the VAD, which
# tones and music are not), the retake's words need only not be a hallucination: tiny.en
# decodes real spontaneous speech under hum at -1.0 to -1.6.
RESTART_LOGPROB_MIN = -2.0
COMPRESSION_MAX = 2.4
# A word this unlikely is a guess; a finding whose words average below MEAN_PROB_MIN is too.
# Low on purpose: Whisper gives the first word after a pause (exactly where false starts
# are) probabilities of 0.05-0.2 on real voices; the segment's own judgement and the VAD
# are what tell made-up text from speech.
WORD_PROB_MIN = 0.03
MEAN_PROB_MIN = 0.35
# Share of a word's span the VAD must hear as speech (word edges are rough, so not all).
VOICED_SHARE_MIN = 0.3
# Share of a finding's words (and of the words that justify it) that must be real.
REAL_SHARE_MIN = 0.8
# Size bounds, seconds.
LONG_TAKE = 8.0
MAX_TAKE = 30.0
# What a long finding needs: every word real, sure words, a sure detector.
LONG_MEAN_PROB_MIN = 0.7
LONG_CONFIDENCE_MIN = 0.85
LONG_CONFIDENCE = 0.5  # the confidence a long finding is proposed with (at most)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    why: str  # a readable sentence when not ok


def word_doubt(w: Word, voiced: Sequence[tuple[float, float]] | None,
               logprob_min: float = LOGPROB_MIN) -> str | None:
    """Why this word may not have been said, or None when it looks real."""
    if w.no_speech_prob is not None and w.no_speech_prob > NO_SPEECH_MAX:
        return f"Whisper rated its segment {w.no_speech_prob:.2f} likely not speech"
    if w.avg_logprob is not None and w.avg_logprob < logprob_min:
        return f"its segment decoded with low confidence (log-probability {w.avg_logprob:.2f})"
    if w.compression_ratio is not None and w.compression_ratio > COMPRESSION_MAX:
        return f"its segment is repetitive text (compression ratio {w.compression_ratio:.2f})"
    if w.probability < WORD_PROB_MIN:
        return f"word probability {w.probability:.2f}"
    if voiced is not None and voiced_share(w.start, w.end, voiced) < VOICED_SHARE_MIN:
        return "the voice activity detector heard no speech there"
    return None


def voiced_share(start: float, end: float, voiced: Sequence[tuple[float, float]]) -> float:
    """Share of [start, end] the VAD heard as speech (a zero-length word: 1 if inside)."""
    span = end - start
    if span <= 0:
        return 1.0 if any(a <= start <= b for a, b in voiced) else 0.0
    covered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in voiced)
    return min(1.0, covered / span)


def words_real(
    words: Sequence[Word], voiced: Sequence[tuple[float, float]] | None,
    logprob_min: float = LOGPROB_MIN,
) -> tuple[float, float, str | None]:
    """(share of real words, mean probability, first doubt) over ``words``."""
    if not words:
        return 1.0, 1.0, None
    doubts = [word_doubt(w, voiced, logprob_min) for w in words]
    real = sum(d is None for d in doubts) / len(words)
    mean_p = sum(w.probability for w in words) / len(words)
    first = next((f'"{w.word}": {d}' for w, d in zip(words, doubts, strict=True) if d), None)
    return real, mean_p, first


def judge(
    words: Sequence[Word],
    first: int,
    last: int,
    start: float,
    end: float,
    confidence: float,
    voiced: Sequence[tuple[float, float]] | None,
    *,
    logprob_min: float = LOGPROB_MIN,
) -> tuple[Verdict, bool]:
    """(verdict, long) for a finding over words first..last (empty when last < first).

    The words cut and the words kept after them (the retake that justifies the cut, as many
    as are cut, at least one) must both be real.
    """
    length = end - start
    if length > MAX_TAKE:
        return Verdict(False, f"it would cut {length:.0f} s; a take is never over {MAX_TAKE:.0f} s"), True
    cut = list(words[first : last + 1])
    after = list(words[last + 1 : last + 1 + max(1, len(cut))])
    real_cut, mean_cut, doubt_cut = words_real(cut, voiced, logprob_min)
    real_after, _, doubt_after = words_real(after, voiced, logprob_min)
    if real_cut < REAL_SHARE_MIN:
        return Verdict(False, f"its words may not have been said ({doubt_cut})"), False
    if cut and mean_cut < MEAN_PROB_MIN:
        return Verdict(False, f"its words are unsure (mean probability {mean_cut:.2f})"), False
    if real_after < REAL_SHARE_MIN:
        return Verdict(False, f"the words after it may not have been said ({doubt_after})"), False
    if length <= LONG_TAKE:
        return Verdict(True, ""), False
    strong = (
        bool(cut)
        and real_cut == 1.0
        and real_after == 1.0
        and mean_cut >= LONG_MEAN_PROB_MIN
        and confidence >= LONG_CONFIDENCE_MIN
    )
    if not strong:
        return (
            Verdict(False, f"it would cut {length:.1f} s (over {LONG_TAKE:.0f} s) without "
                    "strong evidence"),
            True,
        )
    return Verdict(True, ""), True

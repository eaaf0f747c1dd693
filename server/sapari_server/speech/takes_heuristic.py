"""Transcript heuristics for takes: no key, no network, conservative by design.

What it flags (each checked over normalised tokens: lowercase, no punctuation):

- filler: um, uh, er, erm, hmm (never "like", "so", "you know": those are often content).
- stutter: a word said again at once ("I I I think"): all but the last repetition. Doubles
  that are usually meant ("very very", "had had", "that that") count only when said 3+ times.
- false_start: an abandoned take followed by its retake within RESTART_MAX_WORDS words:
  the retake opens with the same two words and the abandoned words are an exact prefix of
  it ("we need to we need to check"), or, when the abandonment is marked (Whisper's "...",
  a dash, a comma, a filler, or a pause), a fuzzy prefix (difflib ratio >= 0.75).
- repeated_take: a complete sentence said again word for word (the later take is kept);
  a complete sentence followed by a similar one is parallel structure, not a retake.
- false_start without words: speech the VAD heard that no word covers, before a sentence
  and followed by a pause (``takes.unworded_speech``): Whisper dropped a false start.
- false_start folded by Whisper: a sentence stops mid-way at a long pause and the next word
  is stretched over far more time than its letters need ("you [pause] want(1.6 s) to do"):
  Whisper heard the retake's opening words and folded them into one long word, so the
  words before the pause are the abandoned take.

The search window is bounded (words and seconds), and an abandoned take may not swallow a
complete sentence of content: a sentence repeated later as a summary is never a retake.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from difflib import SequenceMatcher

from .takes import (
    FILLER_WORDS,
    TakeFinding,
    ends_abandoned,
    ends_sentence,
    norm,
    unworded_speech,
    validate_findings,
)
from .types import Word

logger = logging.getLogger(__name__)

# Usually intended when said twice: emphasis and grammatical doubles.
LEGIT_DOUBLES: frozenset[str] = frozenset(
    {
        "very", "really", "so", "much", "far", "too", "no", "yes", "yeah", "bye", "ha", "haha",
        "ho", "hey", "had", "that", "is", "more", "many", "long", "well", "now", "right",
        "okay", "ok", "go", "come", "on", "knock", "tut", "blah", "la", "pretty", "big", "do",
        "again", "over", "round", "around", "slowly", "step", "little", "wait",
    }
)  # fmt: skip
RESTART_MAX_WORDS = 25  # longest abandoned take considered
RESTART_MAX_SECONDS = 15.0
# Below this, "In the morning, in the evening" (parallel phrases) would count as a restart.
MARKED_MIN_RATIO = 0.75
# A pause at least this long between two words marks an abandonment point.
MARK_PAUSE = 0.25
# A mid-sentence pause this long, followed by a stretched word, is a folded retake.
FOLD_PAUSE = 0.4
# Seconds a word may plausibly take: base plus per letter (espeak/slow talkers included).
FOLD_BASE, FOLD_PER_CHAR = 0.6, 0.1
# A complete sentence with this many content tokens inside a candidate abandoned take means
# the "retake" is really a later repetition of content: no finding.
CONTENT_SENTENCE_TOKENS = 5


@dataclass
class HeuristicTakeDetector:
    name: str = "heuristic"
    restart_max_words: int = RESTART_MAX_WORDS
    restart_max_seconds: float = RESTART_MAX_SECONDS

    def detect(
        self,
        words: list[Word],
        *,
        pauses: list[tuple[float, float]] | None = None,
        voiced: list[tuple[float, float]] | None = None,
    ) -> list[TakeFinding]:
        toks = [norm(w.word) for w in words]
        found: list[TakeFinding] = []
        found += self._fillers(words, toks)
        found += self._stutters(words, toks)
        found += self._restarts(words, toks, pauses or [])
        found += self._folded_retakes(words, toks, pauses or [])
        if voiced:
            found += unworded_speech(words, voiced, pauses)
        return validate_findings(words, found, log=logger, voiced=voiced)

    # -------------------------------------------------------------- rules

    def _fillers(self, words: list[Word], toks: list[str]) -> list[TakeFinding]:
        return [
            _finding(words, i, i, "filler", f'filler "{words[i].word.strip()}"', 0.95)
            for i, t in enumerate(toks)
            if t in FILLER_WORDS
        ]

    def _stutters(self, words: list[Word], toks: list[str]) -> list[TakeFinding]:
        out: list[TakeFinding] = []
        i = 0
        while i < len(toks):
            j = i
            # A run of the same token, not crossing a sentence end.
            while j + 1 < len(toks) and toks[j + 1] == toks[i] and not ends_sentence(words[j].word):
                j += 1
            run = j - i + 1
            if toks[i] and toks[i] not in FILLER_WORDS and run >= 2:
                if run >= 3 or toks[i] not in LEGIT_DOUBLES:
                    out.append(
                        _finding(
                            words, i, j - 1, "stutter",
                            f'"{toks[i]}" said {run} times in a row; the last one is kept', 0.9,
                        )
                    )  # fmt: skip
            i = j + 1
        return out

    def _folded_retakes(
        self, words: list[Word], toks: list[str], pauses: list[tuple[float, float]]
    ) -> list[TakeFinding]:
        out: list[TakeFinding] = []
        start = 0  # first word of the current sentence
        for j in range(1, len(words)):
            if ends_sentence(words[j - 1].word):
                start = j
                continue
            prev, word = words[j - 1], words[j]
            gap = word.start - prev.end
            gap = max([gap] + [b - a for a, b in pauses if prev.start <= a and b <= word.end])
            length = word.end - word.start
            plausible = FOLD_BASE + FOLD_PER_CHAR * len(toks[j])
            abandoned = j - start
            if (gap >= FOLD_PAUSE and length > plausible and toks[j]
                    and 2 <= abandoned <= self.restart_max_words):
                said = " ".join(w.word.strip() for w in words[start:j])
                # A guess from timing alone: a natural pause inside a sentence looks the
                # same. Where the pipeline listens, the audio must hear the restart.
                out.append(replace(_finding(
                    words, start, j - 1, "false_start",
                    f'"{said}" stops at a {gap:.1f} s pause and "{word.word.strip()}" then '
                    f"lasts {length:.1f} s: the retake was folded into it", 0.7),
                    audio_check=True))
                start = j
        return out

    def _marked_before(self, words: list[Word], j: int, pauses: list[tuple[float, float]]) -> bool:
        """Is there an abandonment mark between word j-1 and word j?"""
        prev = words[j - 1]
        text = prev.word.strip()
        if ends_abandoned(text) or ends_sentence(text) or text.endswith((",", ";", ":")):
            return True
        if norm(text) in FILLER_WORDS:
            return True
        if words[j].start - prev.end >= MARK_PAUSE:
            return True
        mid_prev = (prev.start + prev.end) / 2
        mid_next = (words[j].start + words[j].end) / 2
        # Listed pauses count even where Whisper's long word ends hide the gap.
        return any(mid_prev <= a and b <= mid_next and b - a >= MARK_PAUSE for a, b in pauses)

    def _restarts(
        self, words: list[Word], toks: list[str], pauses: list[tuple[float, float]]
    ) -> list[TakeFinding]:
        out: list[TakeFinding] = []
        n = len(toks)
        for j in range(1, n - 1):
            if not toks[j] or not toks[j + 1]:
                continue
            marked = self._marked_before(words, j, pauses)
            # Shortest abandoned take first: the closest earlier opening that matches.
            for s in range(j - 2, max(-1, j - 1 - self.restart_max_words), -1):
                if words[j].start - words[s].start > self.restart_max_seconds:
                    break
                if toks[s] != toks[j] or toks[s + 1] != toks[j + 1]:
                    continue
                if self._swallows_content(words, toks, s, j):
                    break
                a = [t for t in toks[s:j] if t and t not in FILLER_WORDS]
                b = [t for t in toks[j : j + len(a) + 2] if t and t not in FILLER_WORDS]
                if a and len(b) >= len(a) and b[len(a) - 1].startswith(a[-1]):
                    a[-1] = b[len(a) - 1]  # a word cut off mid-way ("fir-") is still a prefix
                exact = b[: len(a)] == a
                ratio = SequenceMatcher(None, a, b[: len(a)], autojunk=False).ratio()
                complete = ends_sentence(words[j - 1].word) and not ends_abandoned(
                    words[j - 1].word
                )
                # A complete sentence counts as a take only when said again word for word:
                # "Step one is the case. Step two is the lid." is structure, not a retake.
                fuzzy_ok = marked and not complete and ratio >= MARKED_MIN_RATIO
                if not exact and not fuzzy_ok:
                    continue
                kind = (
                    "repeated_take" if complete and len(a) >= 4 and ratio >= 0.8 else "false_start"
                )
                conf = 0.95 if exact and marked else 0.85 if exact else 0.7
                said = " ".join(w.word.strip() for w in words[s:j])
                reason = (
                    f'"{said}" is redone at word {j}'
                    if kind == "false_start"
                    else f'sentence "{said}" is said again at word {j}; the later take is kept'
                )
                out.append(_finding(words, s, j - 1, kind, reason, conf))
                break
        return out

    def _swallows_content(self, words: list[Word], toks: list[str], s: int, j: int) -> bool:
        """Would words s..j-1 include a complete sentence of content (not the last word)?"""
        count = 0
        for i in range(s, j - 1):
            if toks[i] and toks[i] not in FILLER_WORDS:
                count += 1
            if ends_sentence(words[i].word) and not ends_abandoned(words[i].word):
                if count >= CONTENT_SENTENCE_TOKENS:
                    return True
                count = 0
        return False


def _finding(
    words: list[Word], first: int, last: int, kind: str, reason: str, conf: float
) -> TakeFinding:
    return TakeFinding(first, last, words[first].start, words[last].end, kind, reason, conf)  # type: ignore[arg-type]

"""Judging takes: which words of a transcript are false starts, flubbed takes, fillers.

A ``TakeDetector`` turns a word list (and, when the pipeline has them, the pauses and the
speech ranges a VAD heard) into ``TakeFinding`` ranges with a kind and a one-line reason.
Backends: transcript heuristics (``takes_heuristic``, no key needed) and an LLM through the
``openai`` client (``takes_llm``). Whatever a backend says goes through
``validate_findings``: a detector may propose, but it can never cut outside the transcript,
and it can never remove the last complete take of a sentence.

A finding normally covers words ``words[first_word : last_word + 1]``. Whisper sometimes
drops a false start's words entirely; the audio still shows speech there. Such a finding
covers no word: it is an empty range ``last_word == first_word - 1`` placed before word
``first_word`` (the first word after it, ``len(words)`` at the end), and its ``start``/``end``
come from the audio. ``TakeFinding.has_words`` tells the two apart; slicing works for both.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from .evidence import (
    LONG_CONFIDENCE,
    LONG_CONFIDENCE_MIN,
    LONG_TAKE,
    RESTART_LOGPROB_MIN,
    judge,
)
from .types import Word

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

Kind = Literal["false_start", "repeated_take", "filler", "aside", "stutter"]
KINDS: frozenset[str] = frozenset(get_args(Kind))

# Conservative: only sounds that are never content words ("you know", "like", "so" can be).
FILLER_WORDS: frozenset[str] = frozenset(
    {"um", "umm", "uh", "uhh", "uhm", "er", "erm", "hmm", "hm", "mm", "mmm"}
)
# A retake is looked for at most this many sentences and seconds after the abandoned take:
# a sentence repeated later as a summary is content, not a retake.
RETAKE_MAX_SENTENCES = 3
RETAKE_MAX_SECONDS = 30.0
# Similarity (difflib ratio over normalised tokens) for "the later sentence retakes this one".
RETAKE_MIN_RATIO = 0.6
# A short sentence between an abandoned take and its retake ("Sorry, let me redo that.") is
# part of the flub and may go with it; longer ones are content.
ASIDE_MAX_TOKENS = 8
_MAX_REASON = 200
_TERMINAL = re.compile(r"(\.\.\.|…|[.!?]|[-–—])[\"')\]]*$")
_ABANDONED = re.compile(r"(\.\.\.|…|[-–—])[\"')\]]*$")


class TakeDetectionError(RuntimeError):
    """Take detection could not run or its backend gave no usable answer (message is readable)."""


@dataclass(frozen=True)
class TakeFinding:
    first_word: int  # inclusive word indices into the transcript
    last_word: int  # == first_word - 1: a finding with no words (speech Whisper dropped)
    start: float  # seconds (from the words; the pipeline later snaps edges to audio)
    end: float
    kind: Kind
    reason: str  # one line
    confidence: float = 1.0
    # "long": over evidence.LONG_TAKE seconds, proposed on strong evidence only; the pipeline
    # carries it into the cut's meta so an editor can review it first.
    flag: str | None = None
    # True: start/end were heard in the audio (a restart, ``add_restarts``), not taken from
    # word times; the cut keeps them and ignores words that straddle them.
    audio: bool = False
    # True: a guess from word timing alone (a retake Whisper folded); where the pipeline
    # can listen (``add_restarts``), it is proposed only if the audio hears the restart.
    audio_check: bool = False

    @property
    def has_words(self) -> bool:
        return self.last_word >= self.first_word

    @property
    def n_words(self) -> int:
        return max(0, self.last_word - self.first_word + 1)


class TakeDetector(Protocol):
    name: str

    def detect(
        self,
        words: list[Word],
        *,
        pauses: list[tuple[float, float]] | None = None,
        voiced: list[tuple[float, float]] | None = None,
    ) -> list[TakeFinding]: ...


# ---------------------------------------------------------------- text helpers shared by backends


def norm(text: str) -> str:
    """Lowercase, punctuation removed (inner apostrophes kept): what matching compares."""
    t = text.strip().lower().replace("’", "'")
    t = re.sub(r"[^\w']+", "", t)
    return t.strip("'")


def is_filler(text: str) -> bool:
    return norm(text) in FILLER_WORDS


def ends_sentence(text: str) -> bool:
    """Terminal punctuation, or Whisper's "..."/dash marking an abandoned sentence."""
    return bool(_TERMINAL.search(text.strip()))


def ends_abandoned(text: str) -> bool:
    return bool(_ABANDONED.search(text.strip()))


def sentence_spans(words: Sequence[Word]) -> list[tuple[int, int]]:
    """Inclusive (first, last) word indices of each sentence, split at terminal punctuation."""
    spans: list[tuple[int, int]] = []
    first = 0
    for i, w in enumerate(words):
        if ends_sentence(w.word) or i == len(words) - 1:
            spans.append((first, i))
            first = i + 1
    return spans


def content_tokens(words: Sequence[Word], first: int, last: int) -> list[tuple[int, str]]:
    """(index, normalised token) of the words in first..last that carry content."""
    out = []
    for i in range(first, last + 1):
        t = norm(words[i].word)
        if t and t not in FILLER_WORDS:
            out.append((i, t))
    return out


def is_retake(earlier: list[str], later: list[str]) -> bool:
    """Does ``later`` redo ``earlier`` (an abandoned start or a whole take of it)?

    Same opening word (or a cut-off prefix of it), and the earlier tokens match the start
    of the later ones, or the whole later sentence, with difflib ratio >= RETAKE_MIN_RATIO.
    """
    if not earlier or not later:
        return False
    a0, b0 = earlier[0], later[0]
    if a0 != b0 and not (len(earlier) == 1 and b0.startswith(a0)):
        return False
    head = SequenceMatcher(None, earlier, later[: len(earlier)], autojunk=False).ratio()
    whole = SequenceMatcher(None, earlier, later, autojunk=False).ratio()
    return max(head, whole) >= RETAKE_MIN_RATIO


# ---------------------------------------------------------------- audio evidence shared by backends


def unworded_speech(
    words: Sequence[Word],
    voiced: Sequence[tuple[float, float]],
    pauses: Sequence[tuple[float, float]] | None = None,
    *,
    min_speech: float = 0.3,
    min_pause: float = 0.2,
) -> list[TakeFinding]:
    """Speech the VAD heard that no word covers, right before a sentence, then a pause.

    That is Whisper dropping a false start (it folds "So the first... So the first thing"
    into one phrase). Each word is credited to the voiced range it overlaps most; Whisper's
    word ends run long into the next pause, so mere overlap would hide the dropped speech.
    A voiced range with no word credited, at least ``min_speech`` long, followed by a pause
    (a gap to the next voiced range, or a listed pause, of ``min_pause`` or more) and then a
    sentence start, becomes a wordless false_start finding.
    """
    regions = sorted((float(a), float(b)) for a, b in voiced if b - a > 0)
    if not regions or not words:
        return []
    credited = [0] * len(regions)
    for w in words:
        best, best_ov = -1, 0.0
        for k, (a, b) in enumerate(regions):
            if a >= w.end:
                break
            ov = min(b, w.end) - max(a, w.start)
            if ov > best_ov:
                best, best_ov = k, ov
        if best >= 0:
            credited[best] += 1
    starts = {s for s, _ in sentence_spans(words)}
    out: list[TakeFinding] = []
    for k, (a, b) in enumerate(regions):
        if credited[k] or b - a < min_speech:
            continue
        nxt = next((i for i, w in enumerate(words) if (w.start + w.end) / 2 >= b), None)
        if nxt is None:
            continue  # speech after the last word: a trailing noise, not a false start
        # The next word must start clearly after the region (else the region is that word,
        # misaligned by Whisper), and must not be a filler (a mistimed "um" is cut anyway).
        if words[nxt].start < b + min_pause / 2 or is_filler(words[nxt].word):
            continue
        next_region = regions[k + 1][0] if k + 1 < len(regions) else math.inf
        gap = next_region - b
        listed = any(p0 <= b + 0.05 and p1 - max(p0, b) >= min_pause for p0, p1 in pauses or [])
        if gap < min_pause and not listed:
            continue
        # The next word should open a sentence: after terminal punctuation, or capitalised.
        w = words[nxt].word.strip()
        if nxt not in starts and not (
            w[:1].isupper() and w.lower() not in {"i", "i'm", "i've", "i'll", "i'd"}
        ):
            continue
        out.append(
            TakeFinding(
                first_word=nxt,
                last_word=nxt - 1,
                start=a,
                end=b,
                kind="false_start",
                reason=f"{b - a:.1f}s of speech the VAD heard but no word covers, then a pause "
                f"before the sentence at word {nxt}: likely a false start the transcript dropped",
                confidence=0.6,
            )
        )
    return out


def add_restarts(
    words: Sequence[Word],
    findings: Sequence[TakeFinding],
    restarts: Sequence[Any],
    voiced: Sequence[tuple[float, float]] | None = None,
    *,
    log: logging.Logger = logger,
) -> list[TakeFinding]:
    """Findings plus the restarts the audio shows (``speech.restarts``), sorted by start.

    A restart that a take finding overlaps widens it to the audio's edges (Whisper starts
    words late after a pause, and ends them early or late). A finding guessed from word
    timing alone (``audio_check``) that no restart confirms is dropped. Of one phrase heard
    three times or more (a chain: each retake is itself abandoned), only the take right
    before the last is cut: the first may belong to a sentence that stays, and a take left
    in is a smaller harm than kept speech cut. Any other restart becomes a false_start
    finding with the audio's times, over the words said in it (or over none, when Whisper
    dropped or folded them); it is proposed only when the words of the retake after it are
    real (``speech.evidence``), so text Whisper made up over tones or music never gains a
    cut this way.
    """
    takes = ("false_start", "repeated_take")
    out = list(findings)
    used: set[int] = set()
    unheard: list[int] = []
    # Restarts whose retake is itself heard again: not the last take of their phrase.
    chained = {i for i in range(len(restarts) - 1)
               if abs(restarts[i].retake - restarts[i + 1].start) <= 0.15}
    for k, f in enumerate(out):
        if f.kind not in takes:
            continue
        over = [i for i, r in enumerate(restarts) if f.start < r.end and r.start < f.end]
        if not over:
            if f.audio_check:
                log.info("dropped take finding %s: the audio hears no restart there", f)
                unheard.append(k)
            continue
        used.update(over)
        if all(i in chained for i in over):
            log.info("dropped take finding %s: its phrase is heard twice more after it; only "
                     "the take before the last is cut", f)
            unheard.append(k)
            continue
        out[k] = f = replace(f, audio_check=False)
        last = restarts[over[-1]]
        if f.end > last.retake - 0.2 or len(over) > 1:
            # Word times run into (or up to) the retake the audio hears, a folded or late
            # transcript; or the words span several restarts, one phrase said three times,
            # where the first may belong to a sentence that stays: the audio's last
            # abandoned take, right before the retake that stays, is the one to cut.
            out[k] = replace(f, start=last.start, end=last.end, audio=True, flag=None,
                             reason=_one_line(f"{_restart_reason(last)}; {f.reason}", f.kind))
        else:
            # The words found it; the audio says where it really starts and stops.
            first = restarts[over[0]]
            out[k] = replace(f, start=min(f.start, first.start), end=max(f.end, last.end),
                             audio=True)
    out = [f for k, f in enumerate(out) if k not in unheard]
    for i, r in enumerate(restarts):
        if i in used or i in chained or any(f.kind in takes and f.start < r.end and r.start < f.end
                            for f in out):
            continue
        mids = [(w.start + w.end) / 2 for w in words]
        inside = [i for i, m in enumerate(mids) if r.start - 0.05 <= m < r.retake]
        after = next((i for i, m in enumerate(mids) if m >= r.retake), len(words))
        first, last = (inside[0], inside[-1]) if inside else (after, after - 1)
        if after >= len(words):
            continue  # nothing said after it: no retake to keep
        found = TakeFinding(first, last, r.start, r.end, "false_start", _restart_reason(r),
                            confidence=0.8, audio=True)
        # The audio shows the abandoned take was said (the VAD heard it, and it is heard
        # again); Whisper is often unsure of exactly those words. What must be real is the
        # retake that stays: its words are judged.
        # The retake starts a voiced run by construction, so the VAD has spoken; a word
        # Whisper timed into the pause before it must not veto what the audio shows.
        verdict, _ = judge(words, after, after - 1, r.start, r.end, found.confidence, None,
                           logprob_min=RESTART_LOGPROB_MIN)
        if not verdict.ok:
            log.info("restart heard at %.2f-%.2f s not proposed: %s", r.start, r.end, verdict.why)
            continue
        out.append(found)
    # The retake's head is what stays: the audio heard it as the abandoned take said again.
    # A word finding starting there (a judge reading "So so the" in the retake) would clip
    # the very word the restart keeps.
    heads = [(r.retake - 0.05, r.retake + min(1.0, r.end - r.start)) for r in restarts]
    keep = []
    for f in out:
        if (not f.audio and f.kind in ("false_start", "repeated_take", "stutter")
                and any(a <= f.start < b for a, b in heads)):
            log.info("dropped take finding %s: it starts in a retake the audio keeps", f)
            continue
        keep.append(f)
    return sorted(keep, key=lambda f: (f.start, f.first_word))


def _restart_reason(r: Any) -> str:
    return (f"the {r.end - r.start:.1f} s before a pause is heard again right after it (audio "
            f"similarity {r.similarity:.2f}): an abandoned take, then its retake")


# ---------------------------------------------------------------- validation


def _one_line(text: Any, kind: str) -> str:
    s = " ".join(str(text or "").split())
    return (s or kind)[:_MAX_REASON]


def _sanitize(words: Sequence[Word], f: Any, log: logging.Logger) -> TakeFinding | None:
    """A finding checked field by field, its times taken from the words, or None (logged)."""
    n = len(words)
    try:
        first, last = int(f.first_word), int(f.last_word)
        if first != f.first_word or last != f.last_word:
            raise ValueError("word indices must be whole numbers")
        kind = str(f.kind)
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        conf = float(getattr(f, "confidence", 1.0))
        if not math.isfinite(conf):
            raise ValueError("confidence is not a number")
        conf = min(1.0, max(0.0, conf))
        reason = _one_line(getattr(f, "reason", ""), kind)
        if last >= first:
            if first < 0 or last >= n:
                raise ValueError(f"words {first}..{last} are outside the transcript (0..{n - 1})")
            # Times come from the words, never from the backend.
            return TakeFinding(first, last, words[first].start, words[last].end, kind, reason,  # type: ignore[arg-type]
                               conf, audio_check=getattr(f, "audio_check", False) is True)
        if last != first - 1 or not 0 <= first <= n:
            raise ValueError(f"word range {first}..{last} is reversed")
        start, end = float(f.start), float(f.end)
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError("a finding without words needs finite start/end")
        # A wordless finding may only sit in the gap between its neighbour words; word mid
        # points bound it because Whisper's word edges run long.
        lo = (words[first - 1].start + words[first - 1].end) / 2 if first > 0 else 0.0
        hi = (words[first].start + words[first].end) / 2 if first < n else math.inf
        start, end = max(start, lo), min(end, hi)
        if end - start < 0.05:
            raise ValueError(f"no time left between word {first - 1} and word {first}")
        return TakeFinding(first, last, start, end, kind, reason, conf)  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError) as exc:
        log.warning("dropped take finding %r: %s", f, exc)
        return None


def _resolve_overlaps(found: list[TakeFinding], log: logging.Logger) -> list[TakeFinding]:
    """Word findings made disjoint: same kind merges, otherwise the larger one wins."""
    kept: list[TakeFinding] = []
    for f in sorted(found, key=lambda f: (f.first_word, -f.last_word)):
        if kept and f.first_word <= kept[-1].last_word:
            cur = kept[-1]
            if f.kind == cur.kind:
                last = max(cur.last_word, f.last_word)
                reason = cur.reason if f.reason == cur.reason else f"{cur.reason}; {f.reason}"
                kept[-1] = replace(
                    cur,
                    last_word=last,
                    end=max(cur.end, f.end),
                    reason=reason[:_MAX_REASON],
                    confidence=max(cur.confidence, f.confidence),
                    audio_check=cur.audio_check and f.audio_check,
                )
                continue
            loser = f
            if (f.n_words, f.confidence) > (cur.n_words, cur.confidence):
                kept[-1], loser = f, cur
            log.info("overlapping take findings: kept %s, dropped %s", kept[-1], loser)
            continue
        kept.append(f)
    return kept


def _resolve_wordless(empty: list[TakeFinding], spans: list[TakeFinding]) -> list[TakeFinding]:
    """Wordless findings: time overlaps merged, and any inside a word finding dropped."""
    out: list[TakeFinding] = []
    for f in sorted(empty, key=lambda f: f.start):
        if any(s.start <= f.start and f.end <= s.end for s in spans):
            continue
        if out and f.start < out[-1].end:
            cur = out[-1]
            out[-1] = replace(
                cur, end=max(cur.end, f.end), confidence=max(cur.confidence, f.confidence)
            )
            continue
        out.append(f)
    return out


def _protect_last_takes(
    words: Sequence[Word], found: list[TakeFinding], log: logging.Logger
) -> list[TakeFinding]:
    """Drop findings that would remove every content word of a sentence with no later retake.

    Sentences are visited last to first, so "later retake survives" is already settled for
    each sentence when it is judged: the final take of a repeated sentence always stays. A
    short sentence between an abandoned take and its retake (an aside) may go with the flub.
    """
    spans = sentence_spans(words)
    tokens = [content_tokens(words, a, b) for a, b in spans]
    active = list(found)

    def removed(k: int) -> bool:
        idx = [i for i, _ in tokens[k]]
        return bool(idx) and all(any(f.first_word <= i <= f.last_word for f in active) for i in idx)

    def retaken_by(k: int) -> int | None:
        a = [t for _, t in tokens[k]]
        t_end = words[spans[k][1]].end
        for j in range(k + 1, min(len(spans), k + 1 + RETAKE_MAX_SENTENCES)):
            if words[spans[j][0]].start - t_end > RETAKE_MAX_SECONDS:
                break
            if not removed(j) and is_retake(a, [t for _, t in tokens[j]]):
                return j
        return None

    for k in range(len(spans) - 1, -1, -1):
        if not removed(k) or retaken_by(k) is not None:
            continue
        inside_flub = len(tokens[k]) <= ASIDE_MAX_TOKENS and any(
            (j := retaken_by(i)) is not None and j > k
            for i in range(max(0, k - RETAKE_MAX_SENTENCES), k)
        )
        if inside_flub:
            continue
        idx = {i for i, _ in tokens[k]}
        drop = [
            f for f in active if f.has_words and any(f.first_word <= i <= f.last_word for i in idx)
        ]
        for f in drop:
            log.warning(
                "dropped take finding %s: it would remove words %d..%d, the only complete take "
                "of that sentence",
                f,
                spans[k][0],
                spans[k][1],
            )
        active = [f for f in active if f not in drop]
    return active


def _evidenced(
    words: Sequence[Word],
    found: list[TakeFinding],
    voiced: Sequence[tuple[float, float]] | None,
    log: logging.Logger,
) -> list[TakeFinding]:
    """Findings whose words are real and whose size is plausible; long ones flagged."""
    out: list[TakeFinding] = []
    for f in found:
        # A finding flagged long already passed the confidence test; its lowered confidence
        # must not fail it when judged again after merging.
        conf = max(f.confidence, LONG_CONFIDENCE_MIN) if f.flag == "long" else f.confidence
        verdict, long = judge(words, f.first_word, f.last_word, f.start, f.end, conf, voiced)
        if not verdict.ok:
            log.info("dropped take finding %s: %s", f, verdict.why)
            continue
        if long and f.flag != "long":
            f = replace(
                f,
                flag="long",
                confidence=min(f.confidence, LONG_CONFIDENCE),
                reason=_one_line(
                    f"long ({f.end - f.start:.1f} s, over {LONG_TAKE:.0f} s), review it: "
                    f"{f.reason}",
                    f.kind,
                ),
            )
        out.append(f)
    return out


# A silence this long between two words of a finding splits it into phrases.
PHRASE_GAP = 0.5
# A phrase "says again" the one before it when at least this many of the earlier phrase's
# tokens (and this share of them) come back in order.
REDO_MIN_TOKENS = 3
REDO_MIN_SHARE = 0.6


def _phrases(words: Sequence[Word], first: int, last: int) -> list[tuple[int, int]]:
    """Inclusive spans of first..last split at silences of PHRASE_GAP or more."""
    out, start = [], first
    for i in range(first, last):
        if words[i + 1].start - words[i].end >= PHRASE_GAP:
            out.append((start, i))
            start = i + 1
    out.append((start, last))
    return out


def _says_again(earlier: list[str], later: list[str]) -> bool:
    if len(earlier) < REDO_MIN_TOKENS:
        return False
    m = sum(b.size for b in SequenceMatcher(None, earlier, later,
                                            autojunk=False).get_matching_blocks())
    return m >= REDO_MIN_TOKENS and m >= REDO_MIN_SHARE * len(earlier)


def _realign_on_retakes(words: Sequence[Word], found: list[TakeFinding],
                        log: logging.Logger) -> list[TakeFinding]:
    """A take finding whose last phrase says again the phrase right before the finding, and
    is not itself redone by what follows, ends on a retake: a judge matched the abandoned
    take's second half with the retake's (Whisper misheard the retake's opening words), and
    its cut would remove the retake's head. The abandoned take is the phrase before the
    finding up to the finding's last phrase: that is cut instead, and the retake kept.
    """
    out = []
    for f in found:
        if f.kind not in ("false_start", "repeated_take") or not f.has_words:
            out.append(f)
            continue
        phrases = _phrases(words, f.first_word, f.last_word)
        before = _phrases(words, 0, f.first_word - 1)[-1] if f.first_word > 0 else None
        if len(phrases) < 2 or before is None \
                or words[f.first_word].start - words[before[1]].end < PHRASE_GAP:
            out.append(f)
            continue
        tail = phrases[-1]
        tail_tokens = [t for _, t in content_tokens(words, *tail)]
        prev_tokens = [t for _, t in content_tokens(words, *before)]
        follow = [t for _, t in content_tokens(words, f.last_word + 1,
                                               min(len(words) - 1, f.last_word + 40))]
        if not _says_again(prev_tokens, tail_tokens) or is_retake(tail_tokens, follow):
            out.append(f)
            continue
        first, last = before[0], tail[0] - 1
        moved = replace(f, first_word=first, last_word=last, start=words[first].start,
                        end=words[last].end,
                        reason=_one_line(f"{f.reason} (moved back: its last phrase says "
                                         "again the words before it, the retake that stays)",
                                         f.kind))
        log.info("take finding %s moved to words %d..%d: it ended on a retake", f, first, last)
        out.append(moved)
    return out


def validate_findings(
    words: Sequence[Word],
    findings: Sequence[Any],
    *,
    log: logging.Logger = logger,
    voiced: Sequence[tuple[float, float]] | None = None,
) -> list[TakeFinding]:
    """Findings a detector proposed, made safe to cut: see the module docstring.

    Ranges must lie inside the transcript with first <= last (or be a wordless range placed
    between two words); times of word findings are recomputed from the words; a finding
    whose words may not have been said (Whisper's segment judgement, word probabilities,
    the VAD's ``voiced`` ranges when given) or that is too long is dropped, a long one
    flagged (``speech.evidence``); overlapping findings are merged when of the same kind,
    else the larger one is kept, and the merged result is judged again; anything that would
    remove the last complete take of a sentence is dropped. Dropped parts are logged.
    Returns findings sorted by start time.
    """
    clean = [f for f in (_sanitize(words, f, log) for f in findings) if f is not None]
    # Judged before merging (junk must not win an overlap) and after (merging grows spans).
    clean = _evidenced(words, _realign_on_retakes(words, clean, log), voiced, log)
    spans = _resolve_overlaps([f for f in clean if f.has_words], log)
    spans = _evidenced(words, spans, voiced, log)
    spans = _protect_last_takes(words, spans, log)
    empty = _resolve_wordless([f for f in clean if not f.has_words], spans)
    empty = _evidenced(words, empty, voiced, log)
    return sorted(spans + empty, key=lambda f: (f.start, f.first_word))


def make_take_detector(settings: Settings) -> TakeDetector | None:
    """The detector the settings ask for.

    "auto": the LLM when a key is set (llm_api_key, else openai_api_key) and the ``openai``
    package is installed, else transcript heuristics; "llm": the LLM or a readable error;
    "heuristic": heuristics; "none": None (the pipeline then cuts silences only).
    """
    mode = settings.take_detector
    if mode == "none":
        return None
    from .takes_heuristic import HeuristicTakeDetector

    if mode == "heuristic":
        return HeuristicTakeDetector()
    key = settings.llm_api_key or settings.openai_api_key
    if not key:
        if mode == "llm":
            raise TakeDetectionError(
                "take_detector is 'llm' but no key is set: set SAPARI_LLM_API_KEY (or "
                "SAPARI_OPENAI_API_KEY), or use take_detector 'heuristic'."
            )
        return HeuristicTakeDetector()
    try:
        from .takes_llm import LLMTakeDetector
    except ImportError as exc:
        if mode == "llm":
            raise TakeDetectionError(
                f"take_detector is 'llm' but the openai package is missing ({exc}): "
                "pip install openai"
            ) from exc
        logger.warning("openai package missing (%s): judging takes with heuristics", exc)
        return HeuristicTakeDetector()
    return LLMTakeDetector.from_settings(settings)

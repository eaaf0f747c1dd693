"""A second listen where the first transcript is silent but the VAD hears speech.

Whisper on a long file sometimes stops writing words (tiny.en lost the last 14 s of a
talk here after a pause) or drops a stretch it heard as noise; a take detector then has no
words to judge there, and a retake in it goes unseen. Each such stretch is transcribed again
on its own, a short window of the local model (the rest of the file is not touched), and
the words it gets are added where no word was.

Cheap by construction: only voiced stretches no word covers, at least ``MIN_UNCOVERED`` s
of them per window, at most one window per ``BUDGET_EVERY`` s of the clip (plus one). Deterministic: the
same model, temperature 0, the same windows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .types import Word, refine_word_bounds

logger = logging.getLogger(__name__)

RATE = 16_000
MIN_UNCOVERED = 1.0  # seconds of wordless speech worth a second listen
COVERED_SHARE = 0.2  # a voiced stretch with less than this share under words is uncovered
JOIN_GAP = 1.5  # uncovered stretches closer than this go in one window
MAX_WINDOW = 25.0  # inside one Whisper window (30 s)
PAD = 0.3  # audio kept either side of a window
# Each window costs one Whisper pass over 30 s whatever its length: at most one window, plus
# one per BUDGET_EVERY s of the clip (a 10-minute talk: 6, about 6 s on 2 cores).
BUDGET_EVERY = 120.0


def uncovered(words: Sequence[Word], runs: Sequence[tuple[float, float]],
              duration: float) -> list[tuple[float, float]]:
    """Windows (start, end) of voiced runs that no word covers, merged and bounded."""
    spans = sorted((w.start, w.end) for w in words)
    lone: list[tuple[float, float]] = []
    for s, e in runs:
        if e - s <= 0:
            continue
        cov = sum(max(0.0, min(e, b) - max(s, a)) for a, b in spans if a < e and b > s)
        if cov / (e - s) < COVERED_SHARE:
            lone.append((s, e))
    windows: list[list[float]] = []
    for s, e in lone:
        if windows and s - windows[-1][1] <= JOIN_GAP and e - windows[-1][0] <= MAX_WINDOW:
            windows[-1][1] = e
        else:
            windows.append([s, min(e, s + MAX_WINDOW)])
    out: list[tuple[float, float]] = []
    for s, e in windows:
        voiced = sum(max(0.0, min(e, b) - max(s, a)) for a, b in lone)
        if voiced >= MIN_UNCOVERED:
            out.append((voiced, max(0.0, s - PAD), min(duration, e + PAD)))  # type: ignore[arg-type]
    # The windows with the most wordless speech first, then back in time order.
    keep = sorted(out, key=lambda w: (-w[0], w[1]))[: 1 + int(duration // BUDGET_EVERY)]
    return sorted((a, b) for _, a, b in keep)  # type: ignore[misc]


def fill_gaps(words: list[Word], runs: Sequence[tuple[float, float]], duration: float,
              read: Callable[[float, float], np.ndarray],
              listen: Callable[[np.ndarray], list[Word]]) -> list[Word]:
    """``words`` plus what ``listen`` hears in each uncovered window, in time order.

    ``listen(samples)`` transcribes 16 kHz samples (times from their start). Words it finds
    are kept only where no first-pass word is, so nothing said is written twice.
    """
    added: list[Word] = []
    for a, b in uncovered(words, runs, duration):
        samples = read(a, b)
        if samples.size < RATE // 2:
            continue
        for w in listen(samples):
            w = replace(w, start=round(w.start + a, 3), end=round(w.end + a, 3))
            mid = (w.start + w.end) / 2
            if any(x.start <= mid <= x.end for x in words):
                continue
            added.append(w)
    if not added:
        return words
    return sorted(words + added, key=lambda w: (w.start, w.end))


def local_listener(transcriber: Any) -> Callable[[np.ndarray], list[Word]] | None:
    """A ``listen`` for ``fill_gaps`` over the local model, or None for other backends."""
    if getattr(transcriber, "name", "") != "local":
        return None

    def listen(samples: np.ndarray) -> list[Word]:
        try:
            return _listen(transcriber, samples)
        except (RuntimeError, ValueError) as exc:  # a second listen is a bonus, never a failure
            logger.warning("second transcription pass failed (%s); keeping the first", exc)
            return []

    return listen


def _listen(transcriber: Any, samples: np.ndarray) -> list[Word]:
    model = transcriber.model
    segments, _ = model.transcribe(
        samples, language="en" if not model.model.is_multilingual else transcriber.language,
        beam_size=transcriber.beam_size, temperature=0.0, word_timestamps=True,
        vad_filter=False, condition_on_previous_text=False)
    out: list[Word] = []
    for seg in segments:
        stats = {"no_speech_prob": round(float(seg.no_speech_prob), 4),
                 "avg_logprob": round(float(seg.avg_logprob), 4),
                 "compression_ratio": round(float(seg.compression_ratio), 4)}
        for w in seg.words or []:
            text = w.word.strip()
            if text:
                out.append(Word(text, float(w.start), float(w.end), float(w.probability),
                                **stats))
    return refine_word_bounds(out, samples) if getattr(transcriber, "refine", True) else out

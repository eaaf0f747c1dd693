"""Captions re-timed to the cut video: SRT and WebVTT from transcript words.

Words come in clip seconds (as the transcriber reported them); the cut video plays the keep
segments back to back, so each word is moved to where its segment lands in the output.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # build.py imports this module: only the type is needed here
    from .build import KeepSegment

MAX_CHARS = 42
MAX_SECONDS = 7.0
MAX_GAP = 0.7
MISSING_TRANSCRIPT = "captions need a transcript: run analysis with transcription first"


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # output seconds
    end: float


@dataclass(frozen=True)
class Cue:
    start: float  # output seconds
    end: float
    text: str


def retime_words(
    segments: Sequence[KeepSegment], words: Mapping[str, Iterable[Mapping[str, Any]]]
) -> list[Word]:
    """Move words from clip seconds to output seconds.

    ``segments`` are the kept ranges in output order (already frame-snapped, non-overlapping).
    A word whose midpoint falls inside a cut is dropped (it is mostly gone from the video); a
    word straddling a segment edge is clamped to the segment so it never outlives its picture.
    """
    # Words per clip sorted by midpoint, so each segment picks its words by bisection.
    by_clip: dict[str, tuple[list[float], list[tuple[str, float, float]]]] = {}
    for clip_id, clip_words in words.items():
        items = []
        for w in clip_words or ():
            text = str(w.get("word", "")).strip()
            if text:
                start, end = float(w["start"]), float(w["end"])
                items.append(((start + end) / 2, (text, start, end)))
        items.sort(key=lambda item: item[0])
        by_clip[clip_id] = ([m for m, _ in items], [w for _, w in items])

    out: list[Word] = []
    position = 0.0  # output seconds where the current segment starts
    for seg in segments:
        mids, items = by_clip.get(seg.clip_id, ([], []))
        lo, hi = bisect_left(mids, seg.start), bisect_left(mids, seg.end)
        for text, start, end in items[lo:hi]:
            new_start = position + max(start, seg.start) - seg.start
            new_end = position + min(end, seg.end) - seg.start
            out.append(Word(text, new_start, max(new_end, new_start)))
        position += seg.end - seg.start
    out.sort(key=lambda w: (w.start, w.end))
    return out


def group_cues(
    words: Sequence[Word],
    max_chars: int = MAX_CHARS,
    max_seconds: float = MAX_SECONDS,
    max_gap: float = MAX_GAP,
) -> list[Cue]:
    """Group words into cues of at most ``max_chars`` characters and ``max_seconds`` seconds,
    starting a new cue wherever speech pauses for more than ``max_gap`` seconds."""
    cues: list[Cue] = []
    current: list[Word] = []

    def flush() -> None:
        if current:
            text = " ".join(w.text for w in current)
            cues.append(Cue(current[0].start, current[-1].end, text))
            current.clear()

    for word in words:
        if current:
            text_len = sum(len(w.text) + 1 for w in current) + len(word.text)
            if (
                word.start - current[-1].end > max_gap
                or text_len > max_chars
                or word.end - current[0].start > max_seconds
            ):
                flush()
        current.append(word)
    flush()
    return cues


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{c.text}\n"
        for i, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    blocks = [f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{c.text}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def captions(
    segments: Sequence[KeepSegment],
    words: Mapping[str, Iterable[Mapping[str, Any]]] | None,
    fmt: str,
) -> str:
    """SRT (``fmt="srt"``) or WebVTT (``fmt="vtt"``) text for the cut video."""
    if not words or not any(words.values()):
        raise ValueError(MISSING_TRANSCRIPT)
    cues = group_cues(retime_words(segments, words))
    if fmt == "srt":
        return to_srt(cues)
    if fmt == "vtt":
        return to_vtt(cues)
    raise ValueError(f"unknown caption format {fmt!r}: use 'srt' or 'vtt'")

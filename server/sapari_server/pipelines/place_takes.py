"""Turn take findings (word ranges) into cuts whose edges sit where the audio says.

Whisper's word times are rough (a word after a pause starts late, up to 0.6 s on real
voices), so a finding's edges are moved into the pauses next to it, then out of every voiced
stretch the audio shows (``media.edges.snap_cut``): the cut stops where the kept speech
really starts, with padding kept where the pause has room. Without a speech track (no levels),
the neighbouring words' times bound the cut as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..media.edges import SpeechTrack, snap_cut
from ..speech.takes import TakeFinding
from ..speech.types import Word
from .cuts import Range

# How far a finding's edge may be from a pause to be joined with it.
REACH = 0.35


def place_takes(findings: Sequence[TakeFinding], words: Sequence[Word],
                pauses: Sequence[Range], padding: float,
                track: SpeechTrack | None = None) -> list[Range]:
    out: list[Range] = []
    for f in findings:
        prev = words[f.first_word - 1] if f.first_word > 0 else None
        nxt = words[f.last_word + 1] if f.last_word + 1 < len(words) else None
        if f.audio:
            # Times heard in the audio: a neighbour word whose times Whisper smeared over
            # them (a folded retake) says nothing about where kept speech is.
            if prev is not None and (prev.start + prev.end) / 2 >= f.start:
                prev = None
            if nxt is not None and (nxt.start + nxt.end) / 2 < f.end:
                nxt = None
        start, end = f.start, f.end
        for p in pauses:
            if p.start < start and start - REACH <= p.end <= start + 0.05:
                start = p.start
            if p.end > end and end - 0.05 <= p.start <= end + REACH:
                end = p.end
        if track is not None:
            placed = snap_cut(track, start, end, padding=padding,
                              kept_before=None if prev is None else (prev.start, prev.end),
                              kept_after=None if nxt is None else (nxt.start, nxt.end))
            if placed is None:
                continue
            start, end = placed
        elif prev is not None:
            room = max(0.0, f.start - prev.end)
            start = max(start, prev.end + min(padding, room / 2))
        if track is None and nxt is not None:
            room = max(0.0, nxt.start - f.end)
            end = min(end, nxt.start - min(padding, room / 2))
        if end - start < 0.05:
            continue
        label = f.kind.replace("_", " ")
        said = " ".join(w.word for w in words[f.first_word:f.last_word + 1]).strip()
        reason = f"{label}: {f.reason}" + (f' ("{said}")' if said else "")
        out.append(Range(start, end, f.kind, reason,
                         {"first_word": f.first_word, "last_word": f.last_word,
                          "confidence": f.confidence, "flag": f.flag}))
    return out

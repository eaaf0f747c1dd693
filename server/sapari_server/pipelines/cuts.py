"""Cut arithmetic shared by analysis (validate, merge) and render (keep-segments)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Range:
    start: float
    end: float
    kind: str = "silence"
    reason: str = ""
    meta: dict[str, object] = field(default_factory=dict)


def clean_cuts(cuts: list[Range], duration: float, min_length: float = 0.02) -> list[Range]:
    """Clamp to the clip, sort, merge overlaps (reasons joined), drop slivers."""
    out: list[Range] = []
    for c in sorted(cuts, key=lambda c: (c.start, c.end)):
        start, end = max(0.0, c.start), min(duration, c.end)
        if end - start < min_length:
            continue
        if out and start <= out[-1].end:
            last = out[-1]
            last.end = max(last.end, end)
            if last.kind == "silence" and c.kind != "silence":
                # A take cut that swallows a pause is still a take cut, and says so first.
                last.kind = c.kind
                if c.reason and c.reason not in last.reason:
                    last.reason = f"{c.reason}; {last.reason}" if last.reason else c.reason
            elif c.reason and c.reason not in last.reason:
                last.reason = f"{last.reason}; {c.reason}" if last.reason else c.reason
            continue
        out.append(Range(start, end, c.kind, c.reason, dict(c.meta)))
    return out


# A kept stretch shorter than this is neither seen nor heard, and after snapping to frames
# it can be empty or lie past the last frame (a render then fails): it is cut as well.
MIN_KEEP = 0.02


def keep_segments(duration: float, cuts: list[Range]) -> list[tuple[float, float]]:
    """The complement of the cuts inside [0, duration], without slivers."""
    keeps: list[tuple[float, float]] = []
    pos = 0.0
    for c in clean_cuts(cuts, duration, min_length=0.0):
        if c.start - pos >= MIN_KEEP:
            keeps.append((pos, c.start))
        pos = max(pos, c.end)
    if duration - pos >= MIN_KEEP:
        keeps.append((pos, duration))
    return keeps


class ClipLike(Protocol):
    id: str
    duration: float | None
    media_info: dict[str, Any] | None


class EditLike(Protocol):
    clip_id: str
    start: float
    end: float
    kind: str
    reason: str


def usable_duration(clip: ClipLike) -> float:
    # The decoded audio can run a few ms past the container's stated length (codec
    # padding); cut within what every reader of the file agrees exists.
    known = [d for d in (clip.duration, (clip.media_info or {}).get("duration")) if d]
    return min(known) if known else 0.0


def plan_keeps(clips: Sequence[ClipLike], edits: Sequence[EditLike],
               ) -> tuple[list[dict[str, Any]], list[tuple[ClipLike, list[tuple[float, float]]]]]:
    """The applied cuts (for the record) and each clip's keep-segments, clips in order."""
    applied: list[dict[str, Any]] = []
    plan: list[tuple[ClipLike, list[tuple[float, float]]]] = []
    for clip in clips:
        duration = usable_duration(clip)
        cuts = clean_cuts([Range(e.start, e.end, e.kind, e.reason)
                           for e in edits if e.clip_id == clip.id], duration)
        applied += [{"clip_id": clip.id, "start": round(c.start, 4), "end": round(c.end, 4),
                     "kind": c.kind, "reason": c.reason} for c in cuts]
        plan.append((clip, keep_segments(duration, cuts)))
    return applied, plan

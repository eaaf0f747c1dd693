"""Cut arithmetic shared by analysis (validate, merge) and render (keep-segments)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
            if c.reason and c.reason not in last.reason:
                last.reason = f"{last.reason}; {c.reason}" if last.reason else c.reason
            continue
        out.append(Range(start, end, c.kind, c.reason, dict(c.meta)))
    return out


def keep_segments(duration: float, cuts: list[Range]) -> list[tuple[float, float]]:
    """The complement of the cuts inside [0, duration]."""
    keeps: list[tuple[float, float]] = []
    pos = 0.0
    for c in clean_cuts(cuts, duration, min_length=0.0):
        if c.start > pos:
            keeps.append((pos, c.start))
        pos = max(pos, c.end)
    if pos < duration:
        keeps.append((pos, duration))
    return keeps

"""Silence cuts from a level track: a pure function of the per-hop RMS levels.

A cut removes the middle of a pause and keeps ``padding`` of quiet next to the speech on
each side, so word endings and breaths into the next phrase are not clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import AudioAnalysis


@dataclass
class SilenceSettings:
    threshold_db: float = -40.0
    min_silence: float = 0.5  # shortest pause (before padding) worth cutting, seconds
    padding: float = 0.1  # quiet kept next to speech on each side of a cut, seconds


@dataclass
class Cut:
    start: float
    end: float
    kind: str = "silence"
    reason: str = ""
    level_db: float = 0.0  # mean level of the removed stretch (power mean, dBFS)

    @property
    def length(self) -> float:
        return self.end - self.start


def _power_mean_db(levels: np.ndarray) -> float:
    if levels.size == 0:
        return -120.0
    power = np.mean(np.power(10.0, levels.astype(np.float64) / 10))
    return float(10 * np.log10(power)) if power > 0 else -120.0


def detect_silences(
    levels_db: np.ndarray,
    hop: float,
    duration: float,
    settings: SilenceSettings | None = None,
) -> list[Cut]:
    """Cuts for every run of windows quieter than the threshold lasting >= min_silence.

    Window ``i`` covers ``[i * hop, (i + 1) * hop)``. Returns cuts sorted, non-overlapping,
    inside ``[0, duration]``; a cut touching the start or end of the file is padded only on
    its speech side.
    """
    s = settings or SilenceSettings()
    if hop <= 0:
        raise ValueError("hop must be positive")
    levels = np.asarray(levels_db, dtype=np.float32)
    if levels.size == 0 or duration <= 0:
        return []
    quiet = levels < s.threshold_db
    # Run boundaries: +1 where a quiet run starts, -1 where it ends.
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive window index
    n = levels.size
    min_cut = 2 * hop  # anything shorter after padding is not worth a splice
    cuts: list[Cut] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        t0 = a * hop
        t1 = min(b * hop, duration)
        if t1 - t0 < s.min_silence - 1e-9:
            continue
        at_start = a == 0
        at_end = b == n or t1 >= duration
        c0 = 0.0 if at_start else t0 + s.padding
        c1 = duration if at_end else t1 - s.padding
        c0, c1 = max(0.0, c0), min(duration, c1)
        if c1 - c0 < min_cut:
            continue
        mean_db = _power_mean_db(levels[a:b])
        cuts.append(
            Cut(
                # Rounded for tidy JSON, clamped so rounding never leaves the file.
                start=max(0.0, round(c0, 6)),
                end=min(duration, round(c1, 6)),
                kind="silence",
                reason=(
                    f"silence {t1 - t0:.2f} s below {s.threshold_db:g} dBFS "
                    f"(mean {mean_db:.0f} dBFS)"
                ),
                level_db=round(mean_db, 1),
            )
        )
    return _merge(cuts)


def _merge(cuts: list[Cut]) -> list[Cut]:
    """Sort and fuse overlapping or touching cuts (defensive: runs never overlap)."""
    out: list[Cut] = []
    for c in sorted(cuts, key=lambda c: c.start):
        if out and c.start <= out[-1].end:
            prev = out[-1]
            prev.end = max(prev.end, c.end)
            prev.reason = f"{prev.reason}; {c.reason}"
            prev.level_db = max(prev.level_db, c.level_db)
        else:
            out.append(c)
    return out


def detect_silences_in(
    analysis: AudioAnalysis, settings: SilenceSettings | None = None
) -> list[Cut]:
    """``detect_silences`` on an ``AudioAnalysis``."""
    return detect_silences(analysis.levels_db, analysis.hop, analysis.duration, settings)

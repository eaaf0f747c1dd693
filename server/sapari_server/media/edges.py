"""Cut edges from the audio: where speech stops and starts, never where word times say.

Whisper starts a word late after a pause (0.2-0.6 s on real voices), so a cut that ends at
a word's start clips that word ("Print-" lost from "Printing"). Here the voiced stretches
come from the audio alone: Silero's speech probabilities (hysteresis, as for pauses), with
each stretch's edges pushed out over the level track (10 ms hop) while the level stays
clearly above the pause's own floor, since the model flags an onset a window or more late.

``snap_cut`` then moves a cut's start and end out of voiced stretches and keeps a margin of
quiet next to the speech that stays. Pure: arrays in, times out.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from . import spectrum
from .silence import auto_threshold
from .vad import WINDOW_S, speech_mask

# How far a stretch's edge may move over the levels beyond what the VAD flagged, and how far
# above the neighbouring pause's floor a level must be to count as that speech.
LOOKBACK = 0.3
RISE_DB = 6.0
ABOVE_NOISE_DB = 1.5  # ... and how far above the loudest tenth of its noise
# A stretch's edge never moves to a level this far below the stretch's loud part.
SPEECH_RANGE_DB = 50.0
# Stretches closer than this are one: no cut fits between them, and a word's first syllable
# the model let go of must stay with the rest of it.
MIN_PAUSE = 0.1
_MAX_DIP = 6  # hops: a stop's closure inside the onset ("I t-ell") is about this long
# Quiet kept next to speech that stays, at the least: a few ms so a splice never lands on
# the attack of a consonant.
MARGIN = 0.02
# A cut whose edge lies inside continuous speech (a filler or stutter with no pause around
# it) moves to the quietest hop this close to where the words put it.
VALLEY_REACH = 0.3
# Without a VAD, loudness decides: dips shorter than this inside speech do not split it.
_BRIDGE = 0.15


@dataclass
class SpeechTrack:
    """Voiced stretches of one recording, in seconds, sorted and disjoint."""

    runs: list[tuple[float, float]]
    levels_db: np.ndarray
    hop: float
    duration: float

    @functools.cached_property
    def starts(self) -> list[float]:
        return [s for s, _ in self.runs]

    @functools.cached_property
    def ends(self) -> list[float]:
        return [e for _, e in self.runs]

    def run_at(self, t: float) -> int | None:
        """Index of the stretch with start < t < end (strictly inside), else None."""
        i = bisect_right(self.starts, t) - 1
        if i >= 0 and self.runs[i][0] < t < self.runs[i][1]:
            return i
        return None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))


def speech_track(levels_db: np.ndarray, hop: float, duration: float,
                 probs: np.ndarray | None = None, *, window_s: float = WINDOW_S,
                 onset: float = 0.5, offset: float = 0.35) -> SpeechTrack:
    """Voiced stretches from VAD probabilities (or loudness when ``probs`` is None).

    Every stretch is widened over the levels: backwards from its onset and forwards from its
    offset while the level stays ``RISE_DB`` above the floor of the pause next to it (at most
    ``LOOKBACK``). Stretches are only ever widened, never shrunk: a word kept whole matters
    more than a few ms of pause.
    """
    if hop <= 0:
        raise ValueError("hop must be positive")
    levels = np.asarray(levels_db, dtype=np.float32)
    n = levels.size
    if n == 0:
        return SpeechTrack([], levels, hop, duration)
    if probs is not None and np.asarray(probs).size:
        wmask = speech_mask(np.asarray(probs, dtype=np.float32), onset, offset)
        centre = ((np.arange(n) + 0.5) * hop / window_s).astype(np.int64)
        voiced = wmask[np.minimum(centre, wmask.size - 1)]
    else:
        voiced = levels >= auto_threshold(levels).threshold_db
        bridge = int(round(_BRIDGE / hop))
        for a, b in _runs(~voiced):
            if 0 < a and b < n and b - a <= bridge:
                voiced[a:b] = True
    runs = _runs(voiced)
    reach = int(round(LOOKBACK / hop))
    min_gap = int(round(MIN_PAUSE / hop))
    grown: list[list[int]] = []
    for k, (a, b) in enumerate(runs):
        gap0 = runs[k - 1][1] if k else 0
        gap1 = runs[k + 1][0] if k + 1 < len(runs) else n
        # Speech's own level bounds the rise from below: a breath or a click 50 dB under
        # the words is not their onset, even over digital silence.
        loud = float(np.percentile(levels[a:b], 95)) - SPEECH_RANGE_DB
        if a - gap0 >= 4:
            a = _grow(levels, a, max(gap0, a - reach), -1,
                      max(_ceiling(levels[gap0:a], reach), loud))
        if gap1 - b >= 4:
            b = _grow(levels, b - 1, min(gap1 - 1, b - 1 + reach), 1,
                      max(_ceiling(levels[b:gap1], reach), loud)) + 1
        if grown and a - grown[-1][1] < min_gap:
            grown[-1][1] = max(grown[-1][1], b)
        else:
            grown.append([a, b])
    runs_s = [(a * hop, min(duration, b * hop)) for a, b in grown]
    return SpeechTrack([(s, e) for s, e in runs_s if e > s], levels, hop, duration)


def _ceiling(gap: np.ndarray, reach: int) -> float:
    """The level a pause's own noise hardly ever reaches: speech starts above it.

    Measured away from the pause's ends where there is room: those may hold the very
    speech the model missed, which would lift the estimate above it.
    """
    if gap.size - 2 * reach >= 10:
        gap = gap[reach:-reach]
    return max(float(np.median(gap)) + RISE_DB / 2, float(np.percentile(gap, 90)) + ABOVE_NOISE_DB)


def _grow(levels: np.ndarray, edge: int, limit: int, step: int, threshold: float) -> int:
    """The farthest hop from ``edge`` towards ``limit`` above ``threshold``, crossing dips.

    Noise makes a weak onset flicker around the threshold from one 10 ms hop to the next;
    dips of up to ``_MAX_DIP`` hops do not end the walk.
    """
    best = k = edge
    while k != limit:
        k += step
        # Across a dip, two loud hops in a row: one alone is a noise peak, not speech.
        if levels[k] > threshold and (k - step == best or levels[k - step] > threshold):
            best = k
        elif abs(k - best) > _MAX_DIP:
            break
    return best


# Spectral edge refinement: 10 ms hops of 25 ms frames; a frame is speech when its bands
# stand this many dB (mean over bands) over the loud tenth of the pause's own noise per band.
_SPEC_HOP, _SPEC_WIN = 160, 400
SPEC_EXCESS_DB = 0.15
SPEC_REACH = 0.4  # seconds an edge may move out over the spectrum
_SPEC_NOISE = 0.5  # seconds of pause read for its noise profile, at most
_SPEC_DIP = 6  # hops of quiet crossed inside a soft onset or release


def refine_on_spectrum(track: SpeechTrack,
                       read: Callable[[float, float], np.ndarray]) -> SpeechTrack:
    """The track with each stretch widened to where its sound rises out of the pause's noise.

    Broadband levels miss a soft onset under room noise ("I tell you", 30 dB under its
    vowels): pink noise fills the low bands where the level is measured. Per band, against
    the pause's own noise profile, the first formants show it. ``read(t0, t1)`` gives the
    16 kHz mono samples of [t0, t1). Stretches are only widened, never past the middle of
    the pause next to them.
    """
    runs = list(track.runs)
    hop_s = _SPEC_HOP / spectrum.RATE
    out: list[tuple[float, float]] = []
    for k, (s, e) in enumerate(runs):
        prev_end = out[-1][1] if out else 0.0
        next_start = runs[k + 1][0] if k + 1 < len(runs) else track.duration
        if s - prev_end >= 0.2:
            lo = max(prev_end + (s - prev_end) / 2, s - SPEC_REACH)
            s = _spectral_edge(read, max(prev_end + 0.03, lo - _SPEC_NOISE), lo, s, -1, hop_s)
        if next_start - e >= 0.2:
            hi = min(e + (next_start - e) / 2, e + SPEC_REACH)
            e = _spectral_edge(read, hi, min(next_start - 0.03, hi + _SPEC_NOISE), e, 1, hop_s)
        out.append((round(s, 3), round(e, 3)))
    return replace(track, runs=out)


def _spectral_edge(read: Callable[[float, float], np.ndarray], n0: float, n1: float,
                   edge: float, step: int, hop_s: float) -> float:
    """Walk from ``edge`` (towards ``step``) while frames stand over the noise of [n0, n1)."""
    win_s = _SPEC_WIN / spectrum.RATE
    if n1 - n0 < 0.05 + win_s:
        return edge
    noise = spectrum.logmel(read(n0, n1), _SPEC_HOP, _SPEC_WIN)
    if noise.shape[0] < 4:
        return edge
    profile = np.percentile(noise, 90, axis=0) + 3.0
    # The stretch between the noise and the edge, as frames centred on their hop.
    t0, t1 = (n1, edge) if step < 0 else (edge, n0)
    t0 -= win_s / 2
    frames = spectrum.logmel(read(max(0.0, t0), t1 + win_s / 2), _SPEC_HOP, _SPEC_WIN)
    if frames.shape[0] == 0:
        return edge
    loud = np.clip(frames - profile, 0, None).mean(axis=1) >= SPEC_EXCESS_DB
    times = max(0.0, t0) + (np.arange(frames.shape[0]) * _SPEC_HOP + _SPEC_WIN / 2) / spectrum.RATE
    # Two loud frames in a row: one alone is a noise peak, not speech.
    pair = loud.copy()
    pair[1:-1] &= loud[:-2] | loud[2:]
    if loud.size > 1:
        pair[0] &= loud[1]
        pair[-1] &= loud[-2]
    order = range(loud.size - 1, -1, -1) if step < 0 else range(loud.size)
    best, gap = edge, 0
    for i in order:
        if pair[i]:
            best = float(times[i] - hop_s / 2) if step < 0 else float(times[i] + hop_s / 2)
            gap = 0
        else:
            gap += 1
            if gap > _SPEC_DIP:
                break
    return min(edge, best) if step < 0 else max(edge, best)


def _mid(word: tuple[float, float] | None) -> float | None:
    return None if word is None else (word[0] + word[1]) / 2


def _valley(track: SpeechTrack, lo: float, hi: float, at: float) -> float:
    """Time of the quietest hop in [lo, hi] (the one nearest ``at`` on ties)."""
    i0 = max(0, int(np.floor(lo / track.hop)))
    i1 = min(track.levels_db.size, int(np.ceil(hi / track.hop)) + 1)
    if i1 - i0 < 1:
        return at
    seg = track.levels_db[i0:i1]
    idx = np.flatnonzero(seg <= seg.min() + 0.5)
    best = idx[np.argmin(np.abs((i0 + idx + 0.5) * track.hop - at))]
    return float((i0 + best + 0.5) * track.hop)


def snap_cut(track: SpeechTrack, start: float, end: float, *, margin: float = MARGIN,
             padding: float = 0.0, kept_before: tuple[float, float] | None = None,
             kept_after: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """Move a cut's edges out of voiced stretches; None when nothing is left to cut.

    ``kept_before`` / ``kept_after`` are the (start, end) word times of the kept words on
    either side, when known: a stretch holding such a word's middle is kept speech, so the
    cut stops at its audio edge, whatever the word's own start or end says. Without them, an
    edge inside a stretch goes to the stretch's nearer edge. Quiet of ``padding`` (at least
    ``margin``) is kept next to kept speech where the pause has room for it; an edge inside
    a stretch that also holds the other edge (no pause around a filler) moves to the
    quietest point near it instead.
    """
    runs = track.runs
    a, b = max(0.0, start), min(track.duration, end)
    after_mid, before_mid = _mid(kept_after), _mid(kept_before)
    # The end.
    r = track.run_at(b)
    if r is not None:
        s, e = runs[r]
        if s > a:
            kept = (b - s <= e - b) if after_mid is None else (s <= after_mid < e + margin)
            # Mostly past the edge: speech that stays, wherever the word times put it.
            kept = kept or (e - b) > 2 * (b - s)
            b = s if kept else e + margin
        else:
            b = _valley(track, max(a, b - VALLEY_REACH), b + margin, b)
    # The start.
    r = track.run_at(a)
    if r is not None:
        s, e = runs[r]
        if e < b:
            kept = (a - s >= e - a) if before_mid is None else (s - margin < before_mid <= e)
            kept = kept or (a - s) > 2 * (e - a)
            a = e if kept else s - margin
        else:
            a = _valley(track, a - margin, min(b, a + VALLEY_REACH), a)
    # Quiet kept next to the speech on each side, and never into a kept stretch.
    nxt = bisect_right(track.starts, b - 1e-9)
    if nxt < len(runs):
        s = runs[nxt][0]
        gap0 = max(a, runs[nxt - 1][1] if nxt else 0.0)
        if s - b < margin + 1e-9 or padding > 0:
            b = min(b, s - max(margin, min(padding, (s - gap0) / 2)))
    prev = bisect_right(track.ends, a + 1e-9) - 1
    if prev >= 0:
        e = runs[prev][1]
        gap1 = min(b, runs[prev + 1][0] if prev + 1 < len(runs) else track.duration)
        if a - e < margin + 1e-9 or padding > 0:
            a = max(a, e + max(margin, min(padding, (gap1 - e) / 2)))
    for word, side in ((kept_after, "after"), (kept_before, "before")):
        k = None if word is None else track.run_at(_mid(word) or 0.0)
        if k is None:
            continue
        s, e = runs[k]
        if side == "after" and s > a:
            b = min(b, s - margin)
        if side == "before" and e < b:
            a = max(a, e + margin)
    a, b = max(0.0, a), min(track.duration, b)
    return (a, b) if b - a >= 0.02 else None


# A manual cut is snapped from the audio around each of its edges only (an hour-long clip
# is not run through the VAD for one edit): this much either side of an edge.
SNAP_WINDOW = 2.0


def snap_edges(read: Callable[[float, float], np.ndarray], levels_db: np.ndarray, hop: float,
               duration: float, start: float, end: float, *,
               margin: float = MARGIN) -> tuple[float, float] | None:
    """A manual cut [start, end) with both edges moved out of voiced stretches.

    ``read(t0, t1)`` gives the clip's 16 kHz samples, ``levels_db`` its level track (one
    value per ``hop`` s). Each edge is placed on a speech track built from the audio within
    ``SNAP_WINDOW`` s of it (Silero VAD, levels, spectrum), as analysis places its cuts.
    None when nothing is left to cut.
    """
    from .vad import speech_probabilities

    def local(t: float) -> tuple[SpeechTrack, float]:
        w0, w1 = max(0.0, t - SNAP_WINDOW), min(duration, t + SNAP_WINDOW)
        i0, i1 = int(w0 / hop), min(levels_db.size, int(np.ceil(w1 / hop)))
        w0 = i0 * hop
        samples = read(w0, w1)
        probs = speech_probabilities(samples) if samples.size else None
        track = speech_track(np.asarray(levels_db[i0:i1], np.float32), hop, w1 - w0, probs)
        return refine_on_spectrum(track, lambda a, b: read(a + w0, b + w0)), w0

    a, b = max(0.0, start), min(duration, end)
    if b - a <= 0:
        return None
    track_a, off_a = local(a)
    placed = snap_cut(track_a, a - off_a, min(b, off_a + track_a.duration) - off_a,
                      margin=margin)
    if placed is None:
        return None
    new_a = placed[0] + off_a
    track_b, off_b = local(b)
    placed = snap_cut(track_b, max(new_a, off_b) - off_b, b - off_b, margin=margin)
    if placed is None:
        return None
    new_b = placed[1] + off_b
    return (round(new_a, 4), round(new_b, 4)) if new_b - new_a >= 0.02 else None

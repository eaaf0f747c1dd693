"""Pause cuts: from a level track (loudness) or from Silero speech probabilities (VAD).

A cut removes the middle of a pause and keeps ``padding`` of quiet next to the speech on
each side, so word endings and breaths into the next phrase are not clipped.

Loudness with a fixed threshold fails in real rooms (noise or hum above the threshold: no
cuts). ``threshold_db=None`` picks the threshold per recording from its own level histogram:
the noise floor (a low percentile) and the speech level (a high percentile), with the
threshold between them. VAD, the default method, asks "is anybody talking" instead.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .audio import AudioAnalysis

log = logging.getLogger(__name__)

# Auto threshold: floor and speech level as percentiles of the per-hop levels. Pauses are
# usually 15-40 % of a talk, so the 10th percentile sits in them and the 90th in speech.
_FLOOR_PERCENTILE = 10.0
_SPEECH_PERCENTILE = 90.0
_MIN_MARGIN_DB = 6.0  # the threshold stays at least this far above the floor
_MARGIN_FRACTION = 0.35  # ... and this fraction of the floor-to-speech distance
# Digital silence has no floor to speak of; nothing below this is audible in a recording,
# so a floor estimate is clamped here and the threshold stays near real quiet.
_LOWEST_FLOOR_DB = -70.0
# Loud blips this short inside a quiet run do not break it: noise peaks and clicks, never a
# syllable (those last 100 ms and more). Matters in noise, where the floor flickers by
# several dB from one 10 ms hop to the next.
_MAX_BLIP = 0.03


@dataclass
class SilenceSettings:
    # Loudness threshold in dBFS; None: estimated per recording (see auto_threshold).
    threshold_db: float | None = -40.0
    min_silence: float = 0.5  # shortest pause (before padding) worth cutting, seconds
    padding: float = 0.1  # quiet kept next to speech on each side of a cut, seconds
    method: Literal["vad", "loudness"] = "vad"  # used by detect_pauses
    # VAD cuts only where the adaptive loudness floor agrees it is quiet (see
    # guard_with_loudness); False trusts the VAD alone.
    vad_guard: bool = True
    vad_onset: float = 0.5  # speech starts where the VAD probability reaches this ...
    vad_offset: float = 0.35  # ... and lasts until it drops below this (hysteresis)


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


@dataclass
class Threshold:
    """An automatic loudness threshold and the levels it was placed between."""

    threshold_db: float
    floor_db: float
    speech_db: float


def auto_threshold(levels_db: np.ndarray) -> Threshold:
    """Threshold between the recording's noise floor and its speech level.

    ``floor + max(6 dB, 0.35 * (speech - floor))``: close enough to the floor to catch
    pauses, far enough that the floor's own flicker (noise, hum residue) stays below it.
    """
    levels = np.asarray(levels_db, dtype=np.float32)
    if levels.size == 0:
        return Threshold(_LOWEST_FLOOR_DB + _MIN_MARGIN_DB, _LOWEST_FLOOR_DB, _LOWEST_FLOOR_DB)
    floor = max(float(np.percentile(levels, _FLOOR_PERCENTILE)), _LOWEST_FLOOR_DB)
    speech = max(float(np.percentile(levels, _SPEECH_PERCENTILE)), floor)
    margin = max(_MIN_MARGIN_DB, _MARGIN_FRACTION * (speech - floor))
    return Threshold(round(floor + margin, 1), round(floor, 1), round(speech, 1))


def detect_silences(
    levels_db: np.ndarray,
    hop: float,
    duration: float,
    settings: SilenceSettings | None = None,
) -> list[Cut]:
    """Cuts for every run of windows quieter than the threshold lasting >= min_silence.

    Window ``i`` covers ``[i * hop, (i + 1) * hop)``. Returns cuts sorted, non-overlapping,
    inside ``[0, duration]``; a cut touching the start or end of the file is padded only on
    its speech side. ``settings.threshold_db=None`` estimates the threshold from the levels.
    This is the loudness method whatever ``settings.method`` says.
    """
    s = settings or SilenceSettings()
    if hop <= 0:
        raise ValueError("hop must be positive")
    levels = np.asarray(levels_db, dtype=np.float32)
    if levels.size == 0 or duration <= 0:
        return []
    if s.threshold_db is None:
        auto = auto_threshold(levels)
        threshold = auto.threshold_db
        how = f"auto: floor {auto.floor_db:.0f}, speech {auto.speech_db:.0f} dBFS"
    else:
        threshold = s.threshold_db
        how = ""
    quiet = levels < threshold
    blip = max(0, int(round(_MAX_BLIP / hop)))
    if blip:
        quiet = _bridge_blips(quiet, blip)
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
                    f"silence {t1 - t0:.2f} s below {threshold:g} dBFS "
                    f"(mean {mean_db:.0f} dBFS{'; ' + how if how else ''})"
                ),
                level_db=round(mean_db, 1),
            )
        )
    return _merge(cuts)


def _bridge_blips(quiet: np.ndarray, max_len: int) -> np.ndarray:
    """Mark loud runs of at most ``max_len`` windows quiet when quiet on both sides."""
    edges = np.diff(np.concatenate(([1], quiet.astype(np.int8), [1])))
    loud_starts = np.flatnonzero(edges == -1)
    loud_ends = np.flatnonzero(edges == 1)
    out = quiet.copy()
    for a, b in zip(loud_starts.tolist(), loud_ends.tolist(), strict=True):
        if b - a <= max_len and a > 0 and b < quiet.size:
            out[a:b] = True
    return out


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


def _levels_of(analysis: AudioAnalysis) -> np.ndarray:
    # Hum-rejected levels when the analysis has them: same loudness, minus mains hum.
    return analysis.levels_db if analysis.levels_dehum_db is None else analysis.levels_dehum_db


def detect_silences_in(
    analysis: AudioAnalysis, settings: SilenceSettings | None = None
) -> list[Cut]:
    """``detect_silences`` on an ``AudioAnalysis`` (on its hum-rejected levels if present)."""
    return detect_silences(_levels_of(analysis), analysis.hop, analysis.duration, settings)


def detect_pauses(
    levels: AudioAnalysis | np.ndarray,
    wav16k_path: str | Path | None,
    duration: float | None = None,
    settings: SilenceSettings | None = None,
    *,
    hop: float | None = None,
    probs: np.ndarray | None = None,
) -> list[Cut]:
    """Pause cuts by ``settings.method``: the one entry point for the analysis pipeline.

    ``levels`` is an AudioAnalysis (its hum-rejected levels are used when present) or a
    per-hop dBFS array with ``hop``; ``duration`` defaults to the analysis's. VAD reads the
    16 kHz mono WAV at ``wav16k_path`` (or uses ``probs`` already computed by
    ``vad.speech_probabilities``) and uses the levels to sharpen cut edges. If VAD cannot
    run (no model, no onnxruntime, no WAV), it logs a warning and falls back to loudness
    with an automatic threshold, since a VAD user never picked a dB level.
    """
    from . import vad

    s = settings or SilenceSettings()
    if isinstance(levels, AudioAnalysis):
        level_arr, hop = _levels_of(levels), levels.hop
        if duration is None:
            duration = levels.duration
    else:
        level_arr = np.asarray(levels, dtype=np.float32)
    if hop is None or hop <= 0:
        raise ValueError("a levels array needs a positive hop")
    if duration is None:
        duration = level_arr.size * hop
    if s.method == "loudness":
        return detect_silences(level_arr, hop, duration, s)
    if s.method != "vad":
        raise ValueError(f"unknown silence method {s.method!r}: use 'vad' or 'loudness'")
    why = ""
    if probs is None:
        if wav16k_path is None:
            why = "no 16 kHz audio was given"
        else:
            try:
                probs = vad.speech_probabilities(wav16k_path)
            except vad.VadUnavailable as exc:
                why = str(exc)
    if probs is None:
        log.warning("VAD unavailable (%s): detecting pauses by loudness instead", why)
        fallback = dataclasses.replace(s, method="loudness", threshold_db=None)
        return detect_silences(level_arr, hop, duration, fallback)
    heard = vad.detect_silences_vad(
        probs, vad.WINDOW_S, duration, s, levels_db=level_arr, hop=hop
    )
    if not s.vad_guard:
        return heard
    quiet = detect_silences(level_arr, hop, duration, dataclasses.replace(s, threshold_db=None))
    return guard_with_loudness(heard, quiet, min_length=max(2 * hop, 0.1))


def guard_with_loudness(heard: list[Cut], quiet: list[Cut], min_length: float) -> list[Cut]:
    """Keep only the parts of VAD's cuts where the loudness floor agrees it is quiet.

    Silero hears only speech: music, laughter or an unusual voice read as "no speech", and
    cutting them would destroy the recording. Sustained sound well above the room's noise
    floor is never cut, whatever the VAD says.
    """
    out: list[Cut] = []
    j = 0
    for c in heard:
        while j < len(quiet) and quiet[j].end <= c.start:
            j += 1
        k = j
        while k < len(quiet) and quiet[k].start < c.end:
            start, end = max(c.start, quiet[k].start), min(c.end, quiet[k].end)
            if end - start >= min_length:
                q = quiet[k]
                reason = f"no speech for {end - start:.2f} s (VAD) and quiet: {q.reason}"
                out.append(dataclasses.replace(c, start=start, end=end, reason=reason,
                                               level_db=q.level_db))
            k += 1
    return out

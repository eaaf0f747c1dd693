"""Multi-resolution waveform peaks, so the timeline draws an hour as smoothly as a minute.

Level 0 is the analysis peaks (min/max int16 pairs at ``base_per_second``); each next level
halves the rate, its pair k being the exact min and max of pairs 2k and 2k+1 below (a last,
odd pair stands alone). Levels stop once a pair covers at least ``_COARSEST`` seconds.

File layout (all little-endian), made for HTTP Range requests from the browser::

    bytes 0..7    magic b"SPKPYR1\\0"
    bytes 8..11   uint32 n: length of the JSON header that follows
    bytes 12..    n bytes of UTF-8 JSON: {"version", "base_per_second", "layout",
                  "levels": [{"level", "factor", "per_second", "count", "offset", "bytes"}]}
    then          each level's int16 pairs (min, max, min, max, ...) at its absolute
                  "offset", 8-byte aligned so a typed array can view a whole-file buffer

A client reads the first 4 kB (the header of a dozen levels is ~1 kB), then fetches just
the level its zoom needs: ``Range: bytes=offset-(offset+bytes-1)``.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"SPKPYR1\0"
_COARSEST = 10.0  # seconds per pair at the last level: an hour is then ~350 pairs
_ALIGN = 8


@dataclass(frozen=True)
class PeakLevel:
    level: int
    factor: int  # base pairs folded into each pair of this level (2**level)
    per_second: float  # pairs per second
    data: np.ndarray  # (m, 2) int16: min, max

    def header(self) -> dict[str, Any]:
        return {"level": self.level, "factor": self.factor, "per_second": self.per_second,
                "count": int(self.data.shape[0])}


def _halve(data: np.ndarray) -> np.ndarray:
    n = data.shape[0]
    even = n - n % 2
    pairs = data[:even].reshape(-1, 2, 2)  # (m, two neighbours, min/max)
    out = np.empty(((n + 1) // 2, 2), np.int16)
    out[: even // 2, 0] = pairs[:, :, 0].min(axis=1)
    out[: even // 2, 1] = pairs[:, :, 1].max(axis=1)
    if n % 2:
        out[-1] = data[-1]
    return out


def build_peak_pyramid(peaks: np.ndarray, base_per_second: int) -> list[PeakLevel]:
    """Levels 0..L of ``peaks`` ((n, 2) int16 min/max at ``base_per_second``)."""
    base = np.ascontiguousarray(peaks, dtype=np.int16)
    if base.ndim != 2 or base.shape[1] != 2:
        raise ValueError("peaks must have shape (n, 2)")
    if base_per_second <= 0:
        raise ValueError("base_per_second must be positive")
    levels = [PeakLevel(0, 1, float(base_per_second), base)]
    while levels[-1].data.shape[0] > 1 and levels[-1].factor / base_per_second < _COARSEST:
        prev = levels[-1]
        factor = prev.factor * 2
        levels.append(PeakLevel(prev.level + 1, factor, base_per_second / factor,
                                _halve(prev.data)))
    return levels


def _pad(n: int) -> int:
    return -n % _ALIGN


def write_pyramid(levels: list[PeakLevel], path: Path) -> dict[str, Any]:
    """Write ``levels`` to ``path``; return the JSON header (also useful as artifact meta)."""
    if not levels:
        raise ValueError("no levels to write")
    entries = [lv.header() for lv in levels]
    header: dict[str, Any] = {
        "version": 1,
        "base_per_second": levels[0].per_second,
        "layout": "int16le min,max pairs",
        "levels": entries,
    }
    # Offsets depend on the header's own length: grow the estimate until it is stable.
    body = b""
    for _ in range(5):
        start = len(MAGIC) + 4 + len(body)
        pos = start + _pad(start)
        for e, lv in zip(entries, levels, strict=True):
            e["offset"] = pos
            e["bytes"] = int(lv.data.shape[0]) * 4
            pos += e["bytes"] + _pad(e["bytes"])
        new = json.dumps(header, separators=(",", ":")).encode()
        if len(new) == len(body):
            break
        body = new
    head = MAGIC + struct.pack("<I", len(body)) + body
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as f:
        f.write(head + b"\0" * _pad(len(head)))
        for e, lv in zip(entries, levels, strict=True):
            assert f.tell() == e["offset"]
            f.write(np.ascontiguousarray(lv.data, "<i2").tobytes())
            f.write(b"\0" * _pad(e["bytes"]))
    tmp.replace(path)
    return header


def read_header(path: Path) -> dict[str, Any]:
    with Path(path).open("rb") as f:
        head = f.read(len(MAGIC) + 4)
        if head[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{Path(path).name} is not a peak pyramid")
        (n,) = struct.unpack("<I", head[len(MAGIC) :])
        return json.loads(f.read(n))


def read_level(path: Path, level: int) -> np.ndarray:
    """One level's (m, 2) int16 pairs, reading only its bytes."""
    header = read_header(path)
    entry = header["levels"][level]
    with Path(path).open("rb") as f:
        f.seek(entry["offset"])
        raw = f.read(entry["bytes"])
    return np.frombuffer(raw, "<i2").astype(np.int16).reshape(-1, 2)


def window(
    levels: list[PeakLevel], start_s: float, end_s: float, max_points: int
) -> tuple[int, np.ndarray]:
    """Pairs covering [start_s, end_s) from the coarsest level that still has >= max_points.

    ``max_points`` is what the view can show (its width in pixels): the returned level has
    between ``max_points`` and about twice as many pairs in the window, so nothing is drawn
    at less than one pair per pixel and never more than twice the pixels. When even level 0
    is sparser, level 0 is returned. Pair i of level k starts at ``i / per_second``.
    """
    if not levels:
        raise ValueError("no levels")
    start_s, end_s = max(0.0, start_s), max(start_s, end_s)
    pick = 0
    for lv in levels:
        first = math.floor(start_s * lv.per_second + 1e-9)
        last = min(lv.data.shape[0], math.ceil(end_s * lv.per_second - 1e-9))
        if last - first >= max_points:
            pick = lv.level
        else:
            break
    lv = levels[pick]
    first = min(lv.data.shape[0], math.floor(start_s * lv.per_second + 1e-9))
    last = min(lv.data.shape[0], math.ceil(end_s * lv.per_second - 1e-9))
    return pick, lv.data[first:max(first, last)]

"""Peak pyramid: exact min/max reduction, a range-fetchable file, and level choice."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from sapari_server.media.peaks import (
    MAGIC,
    build_peak_pyramid,
    read_header,
    read_level,
    window,
    write_pyramid,
)


def random_peaks(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(-32768, 32768, size=(n, 2)).astype(np.int16)
    return np.sort(a, axis=1)  # min <= max in each pair


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 3601])
def test_levels_are_exact_reductions(n: int) -> None:
    base = random_peaks(n)
    levels = build_peak_pyramid(base, 100)
    assert np.array_equal(levels[0].data, base)
    for below, lv in zip(levels, levels[1:], strict=False):
        assert lv.factor == 2 * below.factor and lv.per_second == below.per_second / 2
        d = below.data
        assert lv.data.shape == ((d.shape[0] + 1) // 2, 2) and lv.data.dtype == np.int16
        for k in range(lv.data.shape[0]):
            chunk = d[2 * k : 2 * k + 2]
            assert lv.data[k, 0] == chunk[:, 0].min() and lv.data[k, 1] == chunk[:, 1].max()
        # And straight from the base: pair k covers base pairs [k*f, (k+1)*f).
        f = lv.factor
        k = lv.data.shape[0] - 1
        assert lv.data[k, 0] == base[k * f : (k + 1) * f, 0].min()


def test_hour_stops_near_ten_seconds_per_pair() -> None:
    levels = build_peak_pyramid(random_peaks(360_000), 100)
    assert len(levels) == 11
    assert 1 / levels[-1].per_second == pytest.approx(10.24)
    assert levels[-1].data.shape[0] == 352


def test_file_round_trip_and_range_layout(tmp_path: Path) -> None:
    base = random_peaks(12_345, seed=3)
    levels = build_peak_pyramid(base, 100)
    f = tmp_path / "peaks.pyr"
    header = write_pyramid(levels, f)
    assert read_header(f) == header
    raw = f.read_bytes()
    assert raw[:8] == MAGIC
    (n,) = struct.unpack("<I", raw[8:12])
    assert json.loads(raw[12 : 12 + n]) == header
    for i, lv in enumerate(levels):
        e = header["levels"][i]
        assert e["offset"] % 8 == 0 and e["bytes"] == lv.data.size * 2
        # What a browser's Range request would get: exactly this level's int16 pairs.
        chunk = raw[e["offset"] : e["offset"] + e["bytes"]]
        assert np.array_equal(np.frombuffer(chunk, "<i2").reshape(-1, 2), lv.data)
        assert np.array_equal(read_level(f, i), lv.data)
    assert len(raw) <= header["levels"][-1]["offset"] + header["levels"][-1]["bytes"] + 8


def test_window_picks_coarsest_level_with_enough_points() -> None:
    levels = build_peak_pyramid(random_peaks(360_000), 100)  # an hour at 100/s
    # Whole hour on 1000 px: 1000 <= 3600 * r needs r >= 0.278/s -> 0.39/s (level 8).
    idx, arr = window(levels, 0, 3600, 1000)
    assert idx == 8 and 1000 <= arr.shape[0] < 2000
    # Ten seconds on 800 px: even 100/s gives only 1000 -> 100/s; 50/s would give 500.
    idx, arr = window(levels, 100.0, 110.0, 800)
    assert idx == 0 and arr.shape[0] == 1000
    assert np.array_equal(arr, levels[0].data[10_000:11_000])
    # Sparser than pixels even at level 0: level 0, everything in view.
    idx, arr = window(levels, 5.0, 6.0, 500)
    assert idx == 0 and arr.shape[0] == 100
    # A minute on 1200 px -> 25/s (1500 pairs), sliced at the right place.
    idx, arr = window(levels, 60.0, 120.0, 1200)
    assert idx == 2 and np.array_equal(arr, levels[2].data[1500:3000])
    # Past the end: clipped, never an error.
    idx, arr = window(levels, 3590.0, 3700.0, 100)
    assert arr.shape[0] >= 1 and idx >= 0


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        build_peak_pyramid(np.zeros(10, np.int16), 100)

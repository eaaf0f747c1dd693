"""Render: exact cuts, audio/video sync at every join, streaming multi-source joins, errors."""

from __future__ import annotations

import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sapari_server.media.errors import MediaError
from sapari_server.media.render import (
    Piece,
    RenderResult,
    RenderSettings,
    snap_pieces,
)
from sapari_server.media.render import render as _render


def render(pieces: list[Piece], out: Path, settings: RenderSettings | None = None,
           progress=None) -> RenderResult:  # noqa: ANN001
    """These tests pin the exact (decode, cut, re-encode) path; smart has its own tests."""
    settings = settings or RenderSettings()
    settings.mode = "exact"
    return _render(pieces, out, settings, progress)

try:  # the helper sits beside this file; works whether or not tests/ is a package
    from ._render_media import (
        SAMPLE_RATE,
        TONES,
        decode_output,
        make_clip,
        source_audio,
        tone_index,
    )
except ImportError:
    from _render_media import (
        SAMPLE_RATE,
        TONES,
        decode_output,
        make_clip,
        source_audio,
        tone_index,
    )


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render_media")


@pytest.fixture(scope="module")
def clip6(media: Path) -> Path:
    return make_clip(media / "clip6.mp4", 6.0)


@pytest.fixture(scope="module")
def clip12(media: Path) -> Path:
    return make_clip(media / "clip12.mp4", 12.0)


def expected_indices(
    pieces: list[Piece], fps: Fraction = Fraction(30), offset: int = 0
) -> list[int]:
    out: list[int] = []
    for p in pieces:
        a, b = round(p.start * fps), round(p.end * fps)
        out.extend(range(offset + a, offset + b))
    return out


def sync_errors(expected: list[int], audio: np.ndarray, rate: int, fps: Fraction) -> list[int]:
    """Output frames whose audio does not carry the tone of the source frame shown.

    Two short windows per frame, near its start and near its end, so audio shifted by more
    than ~1/4 frame (8 ms at 30 fps) against the picture fails at some frame.
    """
    per = rate / fps
    bad: list[int] = []
    for j, src in enumerate(expected):
        base = int(round(j * per))
        for lo, hi in ((0.08, 0.33), (0.67, 0.92)):
            seg = audio[base + int(lo * per) : base + int(hi * per)]
            if len(seg) < 100 or tone_index(seg, rate) != src % TONES:
                bad.append(j)
                break
    return bad


def join_lags(
    pieces: list[Piece], audio: np.ndarray, source: np.ndarray, joins: list[int]
) -> list[int]:
    """Lag (in samples) of the output audio against the exact expected cut audio, measured
    by cross-correlation in a window around each asked join. 0 means sample-exact sync."""
    rate = SAMPLE_RATE
    expected = []
    bounds = [0]
    t = Fraction(0)
    for p in pieces:
        s0 = round(t * rate)
        t += Fraction(p.end) - Fraction(p.start)
        s1 = round(t * rate)
        a = round(Fraction(p.start) * rate)
        expected.append(source[a : a + s1 - s0])
        bounds.append(s1)
    ref = np.concatenate(expected)
    lags = []
    span, reach = 1024, 60
    for k in joins:
        c = bounds[k]
        win = ref[c - span : c + span]
        scores = [
            float(np.dot(win, audio[c - span + lag : c + span + lag]))
            for lag in range(-reach, reach + 1)
        ]
        lags.append(int(np.argmax(scores)) - reach)
    return lags


def check_render(
    out: Path, result: RenderResult, expected: list[int], fps: Fraction = Fraction(30)
) -> None:
    indices, audio, rate, out_fps = decode_output(out)
    assert out_fps == fps
    assert result.video_frames == len(expected)
    assert indices == expected  # frame exact: every output frame is the asked source frame
    snapped_total = sum(p.end - p.start for p in result.pieces)
    assert abs(len(indices) / fps - snapped_total) <= 1 / fps
    assert abs(result.duration - snapped_total) < 1e-9
    assert audio is not None and rate == SAMPLE_RATE
    video_s = len(indices) / fps
    # AAC decodes in whole 1024-sample frames, so allow that much padding (< one video frame).
    assert abs(len(audio) - video_s * rate) <= rate / fps
    assert abs(result.audio_samples - video_s * rate) <= 1
    assert sync_errors(expected, audio, rate, fps) == []


def test_snap_pieces_rounds_to_nearest_frame_and_drops_empty() -> None:
    p = Path("x.mp4")
    got = snap_pieces([Piece(p, 0.01, 0.52), Piece(p, 1.0, 1.01), Piece(p, 2.049, 2.051)], 30)
    assert got == [
        Piece(p, 0.0, 0.5333333333333333),
        Piece(p, 2.033333333333333, 2.066666666666667),
    ]
    assert snap_pieces(got, 30) == got  # idempotent
    ntsc = snap_pieces([Piece(p, 1.0, 2.0)], Fraction(30000, 1001))
    assert ntsc == [Piece(p, float(Fraction(30 * 1001, 30000)), float(Fraction(60 * 1001, 30000)))]


def test_five_pieces_exact_frames_and_sync(clip6: Path, tmp_path: Path) -> None:
    pieces = [
        Piece(clip6, 0.51, 1.2),  # off-grid start snaps to frame 15
        Piece(clip6, 1.5, 2.0),  # small gap: decoded through
        Piece(clip6, 4.6, 5.5),  # gap > 2 s: seek
        Piece(clip6, 0.1, 0.4),  # backward: seek back
        Piece(clip6, 5.7, 6.0),  # to the very end
    ]
    calls: list[float] = []
    out = tmp_path / "five.mp4"
    began = time.monotonic()
    result = render(pieces, out, progress=calls.append)
    elapsed = time.monotonic() - began
    snapped = snap_pieces(pieces, 30)
    assert result.pieces == snapped
    check_render(out, result, expected_indices(snapped))
    assert calls and calls[-1] == 1.0 and calls == sorted(calls)
    assert len(calls) <= 10 * elapsed + 2  # throttled to ~10 calls a second
    assert not list(tmp_path.glob(".*partial"))


def test_hundred_cuts_stay_in_sync(clip12: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    pieces = []
    t = 0.02
    for _ in range(100):
        length = float(rng.uniform(0.04, 0.09))  # 1-3 frames, off the frame grid
        pieces.append(Piece(clip12, t, t + length))
        t += length + float(rng.uniform(0.005, 0.03))
    assert t < 12.0
    out = tmp_path / "hundred.mp4"
    result = render(pieces, out)
    snapped = snap_pieces(pieces, 30)
    assert len(snapped) >= 95
    indices, audio, rate, _ = decode_output(out)
    assert audio is not None
    assert abs(len(audio) - len(indices) * rate / 30) <= 1024
    check_render(out, result, expected_indices(snapped))
    # Sample-level sync at joins across the whole timeline, end included.
    source = source_audio(12 * SAMPLE_RATE, 30)
    joins = [1, 10, 25, 50, 75, 90, len(snapped) - 1]
    assert join_lags(snapped, audio, source, joins) == [0] * len(joins)


def test_memory_stays_flat(clip12: Path, tmp_path: Path) -> None:
    """12 s of stereo float audio alone is 4.6 MB: a streaming render never holds it."""
    tracemalloc.start()
    try:
        render([Piece(clip12, 0.0, 12.0)], tmp_path / "whole.mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_500_000


def test_ntsc_rate_kept_exact(media: Path, tmp_path: Path) -> None:
    fps = Fraction(30000, 1001)
    src = make_clip(media / "ntsc.mp4", 4.0, fps=fps)
    pieces = [Piece(src, 0.3, 1.1), Piece(src, 2.5, 3.9)]
    out = tmp_path / "ntsc.mp4"
    result = render(pieces, out)
    check_render(out, result, expected_indices(snap_pieces(pieces, fps), fps), fps)


def test_two_sources_of_different_sizes(clip6: Path, media: Path, tmp_path: Path) -> None:
    big = make_clip(media / "big.mp4", 3.0, size=(480, 360), index_offset=500)
    pieces = [
        Piece(clip6, 0.5, 1.0),
        Piece(big, 1.0, 2.0),
        Piece(big, 2.2, 2.6),
        Piece(clip6, 2.0, 2.5),
    ]
    out = tmp_path / "two.mp4"
    result = render(pieces, out)
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (320, 240)
    snapped = snap_pieces(pieces, 30)
    expected = (
        expected_indices(snapped[:1])
        + expected_indices(snapped[1:3], offset=500)
        + expected_indices(snapped[3:])
    )
    check_render(out, result, expected)

    # An explicit size scales every source to it.
    out2 = tmp_path / "two_small.mp4"
    render(pieces[:2], out2, RenderSettings(width=161, height=121))
    with av.open(str(out2)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (160, 120)


def test_other_sample_rate_source_is_resampled_in_sync(
    clip6: Path, media: Path, tmp_path: Path
) -> None:
    cd = make_clip(media / "cd.mp4", 3.0, index_offset=300, sample_rate=44_100, layout="mono")
    pieces = [
        Piece(clip6, 0.5, 1.5),
        Piece(cd, 0.4, 1.4),
        Piece(cd, 2.0, 2.8),
        Piece(clip6, 3.0, 3.5),
    ]
    out = tmp_path / "resampled.mp4"
    result = render(pieces, out)
    snapped = snap_pieces(pieces, 30)
    expected = (
        expected_indices(snapped[:1])
        + expected_indices(snapped[1:3], offset=300)
        + expected_indices(snapped[3:])
    )
    check_render(out, result, expected)


def test_other_frame_rate_source_is_retimed(clip6: Path, media: Path, tmp_path: Path) -> None:
    pal = make_clip(media / "pal.mp4", 2.0, fps=25, index_offset=700)
    pieces = [Piece(clip6, 0.0, 1.0), Piece(pal, 0.4, 1.4), Piece(clip6, 3.0, 3.5)]
    out = tmp_path / "mixed_fps.mp4"
    result = render(pieces, out)
    indices, audio, rate, fps = decode_output(out)
    assert fps == 30 and len(indices) == result.video_frames == 75  # 2.5 s at 30 fps
    assert indices[:30] == list(range(30)) and indices[-15:] == list(range(90, 105))
    middle = indices[30:60]  # 1 s of the 25 fps clip: each source frame once or twice
    assert middle[0] == 710 and middle[-1] == 734 and sorted(middle) == middle
    assert set(middle) == set(range(710, 735))
    assert audio is not None and abs(len(audio) - 2.5 * rate) <= rate / 30


def test_audio_only_and_video_only(media: Path, tmp_path: Path) -> None:
    sound = make_clip(media / "sound.mp4", 3.0, video=False)
    out = tmp_path / "sound_out.mp4"
    result = render([Piece(sound, 0.25, 1.0), Piece(sound, 2.0, 2.5)], out)
    with av.open(str(out)) as c:
        assert not c.streams.video and c.streams.audio[0].codec_context.name == "aac"
    assert result.video_frames == 0 and result.audio_samples == int(1.25 * SAMPLE_RATE)
    assert abs(result.duration - 1.25) < 1e-9

    silent = make_clip(media / "silent.mp4", 3.0, audio=False)
    out = tmp_path / "silent_out.mp4"
    result = render([Piece(silent, 0.5, 1.0), Piece(silent, 2.0, 2.5)], out)
    with av.open(str(out)) as c:
        assert not c.streams.audio
    indices, audio, _, _ = decode_output(out)
    assert audio is None and indices == list(range(15, 30)) + list(range(60, 75))
    assert result.audio_samples == 0


def test_errors_are_readable(clip6: Path, media: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.mp4"
    sound = make_clip(media / "sound_only.mp4", 1.0, video=False)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    cases = {
        "ends before it starts": [Piece(clip6, 2.0, 2.0)],
        "before the file begins": [Piece(clip6, -1.0, 1.0)],
        "only 6.000 s long": [Piece(clip6, 5.0, 9.0)],
        "was not found": [Piece(tmp_path / "missing.mp4", 0.0, 1.0)],
        "same kinds of tracks": [Piece(clip6, 0.0, 1.0), Piece(sound, 0.0, 0.5)],
        "could not be read": [Piece(junk, 0.0, 1.0)],
        "Nothing to render": [],
        "shorter than one frame": [Piece(clip6, 1.0, 1.01)],
    }
    for needle, pieces in cases.items():
        with pytest.raises(MediaError, match=needle):
            render(pieces, out)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))

"""Smart render: stream-copied GOPs + re-encoded cut edges, frame-exact and in sync."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sapari_server.media.errors import MediaError
from sapari_server.media.render import Piece, RenderResult, RenderSettings, render, snap_pieces
from sapari_server.media.smart_render import smart_blocker

try:  # the helper sits beside this file; works whether or not tests/ is a package
    from ._render_media import (
        SAMPLE_RATE,
        TONES,
        decode_output,
        index_picture,
        make_clip,
        source_audio,
        tone_index,
    )
except ImportError:
    from _render_media import (
        SAMPLE_RATE,
        TONES,
        decode_output,
        index_picture,
        make_clip,
        source_audio,
        tone_index,
    )

FPS = Fraction(30)


def make_gop_clip(
    path: Path, seconds: float, *, gop: int = 30, bframes: int = 0, preset: str = "veryfast"
) -> Path:
    """Like make_clip, but with keyframes exactly every `gop` frames (no scene cuts: the
    index stripes would otherwise trigger one on almost every digit change)."""
    n_frames = int(round(seconds * FPS))
    n_samples = int(round(seconds * SAMPLE_RATE))
    sound = source_audio(n_samples, FPS)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height = 320, 240
        vs.pix_fmt = "yuv420p"
        vs.options = {
            "preset": preset,
            "crf": "18",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}",
        }
        aus = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        v_next = a_next = 0
        while v_next < n_frames or a_next < n_samples:
            if v_next < n_frames and (
                a_next >= n_samples or v_next / FPS <= Fraction(a_next, SAMPLE_RATE)
            ):
                frame = av.VideoFrame.from_ndarray(index_picture(v_next, 320, 240), "yuv420p")
                frame.pts, frame.time_base = v_next, 1 / FPS
                for pkt in vs.encode(frame):
                    out.mux(pkt)
                v_next += 1
            else:
                chunk = sound[a_next : a_next + 1024]
                af = av.AudioFrame.from_ndarray(np.stack([chunk] * 2), "fltp", "stereo")
                af.sample_rate, af.pts, af.time_base = SAMPLE_RATE, a_next, Fraction(1, SAMPLE_RATE)
                for pkt in aus.encode(af):
                    out.mux(pkt)
                a_next += len(chunk)
        for s in (vs, aus):
            for pkt in s.encode(None):
                out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smart_media")


@pytest.fixture(scope="module")
def gop_clip(media: Path) -> Path:
    return make_gop_clip(media / "gop30.mp4", 12.0)


@pytest.fixture(scope="module")
def bframe_clip(media: Path) -> Path:
    return make_gop_clip(media / "gop30_b3.mp4", 12.0, bframes=3, preset="medium")


def expected_indices(pieces: list[Piece]) -> list[int]:
    out: list[int] = []
    for p in pieces:
        out.extend(range(round(p.start * FPS), round(p.end * FPS)))
    return out


def sync_errors(expected: list[int], audio: np.ndarray) -> list[int]:
    """Output frames whose audio (two windows per frame) lacks the shown frame's tone."""
    per = SAMPLE_RATE / FPS
    bad = []
    for j, src in enumerate(expected):
        base = int(round(j * per))
        for lo, hi in ((0.08, 0.33), (0.67, 0.92)):
            seg = audio[base + int(lo * per) : base + int(hi * per)]
            if len(seg) < 100 or tone_index(seg, SAMPLE_RATE) != src % TONES:
                bad.append(j)
                break
    return bad


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def decoded_planes(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]


def check_smart(out: Path, result: RenderResult, pieces: list[Piece]) -> list[int]:
    """Frame-exact, duration and sync checks shared by the smart tests; returns indices."""
    expected = expected_indices(result.pieces)
    indices, audio, rate, fps = decode_output(out)
    assert fps == FPS and rate == SAMPLE_RATE and audio is not None
    assert result.mode == "smart", result.mode_reason
    assert result.pieces == snap_pieces(pieces, FPS)
    assert indices == expected
    assert result.video_frames == len(expected) == result.copied_frames + result.encoded_frames
    snapped_total = sum(p.end - p.start for p in result.pieces)
    assert abs(len(indices) / FPS - snapped_total) <= 1 / FPS
    # Audio ends within one AAC frame of the video, and carries the shown frame's tone.
    assert abs(len(audio) - len(indices) * SAMPLE_RATE / FPS) <= 1024
    assert abs(result.audio_samples - len(indices) * SAMPLE_RATE / FPS) <= 1
    assert sync_errors(expected, audio) == []
    return indices


@pytest.mark.parametrize("which", ["gop_clip", "bframe_clip"])
def test_smart_matches_exact_frame_for_frame(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    clip: Path = request.getfixturevalue(which)
    pieces = [
        Piece(clip, 0.51, 2.9),  # starts mid-GOP, spans one whole GOP
        Piece(clip, 3.0, 6.0),  # GOP-aligned both ends: pure copy
        Piece(clip, 6.2, 6.5),  # inside one GOP: pure re-encode
        Piece(clip, 1.1, 2.2),  # backward: seek
        Piece(clip, 7.9, 12.0),  # to the very end of the file
    ]
    smart, exact = tmp_path / "smart.mp4", tmp_path / "exact.mp4"
    result = render(pieces, smart)  # auto picks smart
    check_smart(smart, result, pieces)
    ref = render(pieces, exact, RenderSettings(mode="exact"))
    assert ref.mode == "exact" and ref.video_frames == result.video_frames
    assert decode_output(exact)[0] == decode_output(smart)[0]
    assert result.copied_frames >= 0.6 * result.video_frames

    # Every output frame against the decoded source frame it shows: copied ones bit-exact,
    # re-encoded ones close (PSNR).
    source = decoded_planes(clip)
    got = decoded_planes(smart)
    scores = [psnr(g, source[i]) for g, i in zip(got, expected_indices(result.pieces), strict=True)]
    assert len(scores) == result.video_frames
    assert min(scores) >= 38.0
    assert sum(s == 99.0 for s in scores) >= result.copied_frames


def test_hundred_cuts_smart_in_sync(media: Path, tmp_path: Path) -> None:
    clip = make_gop_clip(media / "gop15.mp4", 30.0, gop=15)
    rng = np.random.default_rng(3)
    pieces = []
    for _ in range(100):  # random order: forward gaps, backward jumps, off-grid edges
        start = float(rng.uniform(0.0, 27.0))
        pieces.append(Piece(clip, start, start + float(rng.uniform(0.3, 2.5))))
    out = tmp_path / "hundred.mp4"
    result = render(pieces, out)
    assert len(result.pieces) == 100
    check_smart(out, result, pieces)
    assert result.copied_frames >= 0.4 * result.video_frames


def test_two_matching_sources_stay_smart(gop_clip: Path, media: Path, tmp_path: Path) -> None:
    other = make_gop_clip(media / "other.mp4", 4.0)  # same encoder settings, same avcC
    pieces = [Piece(gop_clip, 0.0, 2.0), Piece(other, 1.5, 4.0), Piece(gop_clip, 9.4, 10.0)]
    out = tmp_path / "two.mp4"
    result = render(pieces, out)
    check_smart(out, result, pieces)
    assert result.copied_frames >= 30


def test_falls_back_to_exact(gop_clip: Path, media: Path, tmp_path: Path) -> None:
    pieces = [Piece(gop_clip, 0.5, 2.5)]
    # Output size differs from the source's: re-encode everything.
    small = render(pieces, tmp_path / "small.mp4", RenderSettings(width=160))
    assert small.mode == "exact" and "size" in small.mode_reason
    assert small.copied_frames == 0 and small.encoded_frames == 60
    # Another codec asked for, or a source in another codec.
    assert smart_blocker(pieces, RenderSettings(video_codec="mpeg4"))
    mpeg4 = media / "mpeg4.mp4"
    with av.open(str(mpeg4), "w") as out:
        vs = out.add_stream("mpeg4", rate=30)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(index_picture(i, 320, 240), "yuv420p")
            frame.pts = i
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
    mixed = render([Piece(mpeg4, 0.0, 1.0)], tmp_path / "mixed.mp4")
    assert mixed.mode == "exact" and "H.264" in mixed.mode_reason
    assert decode_output(tmp_path / "mixed.mp4")[0] == list(range(30))
    # Sources with different parameters (here: size) cannot share one avcC.
    big = make_clip(media / "big.mp4", 2.0, size=(640, 480), audio=True)
    two = render([*pieces, Piece(big, 0.0, 1.0)], tmp_path / "two.mp4")
    assert two.mode == "exact"
    # Forcing smart where it cannot run is an error that says why.
    with pytest.raises(MediaError, match="Smart render is not possible"):
        render(pieces, tmp_path / "forced.mp4", RenderSettings(width=160, mode="smart"))
    assert not list(tmp_path.glob(".*partial"))

"""make_proxy(): a small seekable MP4 whose frames sit at the source's times."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sapari_server.media.errors import MediaError
from sapari_server.media.probe import probe
from sapari_server.media.proxy import make_proxy
from sapari_testkit.generate import generate_talk


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [round(float(f.pts * s.time_base), 4) for f in c.decode(s)]


def keyframe_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(p.pts * s.time_base) for p in c.demux(s) if p.is_keyframe and p.pts is not None]


def write_video(path: Path, width: int, height: int, fps: int, seconds: float,
                rotation: int = 0, pix_fmt: str = "yuv420p") -> None:
    """A plain H.264 clip; the left half is white so orientation can be checked."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.options = {"preset": "ultrafast"}
        if rotation:
            s.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
        img = np.zeros((height, width, 3), np.uint8)
        img[:, : width // 2] = 255
        for i in range(round(seconds * fps)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            out.mux(s.encode(f))
        out.mux(s.encode(None))


@pytest.fixture(scope="module")
def talk720(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("proxy") / "talk720.mp4"
    generate_talk(f, pauses=[0.5], speech_lengths=[1.5, 1.0], width=1280, height=720)
    return f


def test_proxy_size_times_audio_and_faststart(talk720: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.mp4"
    calls: list[float] = []
    info = make_proxy(talk720, out, progress=calls.append)
    assert (info.width, info.height) == (640, 360)
    assert info.audio and info.frames_dropped == 0 and calls[-1] == 1.0
    src, px = probe(talk720), probe(out)
    assert px.video is not None and (px.video.width, px.video.height) == (640, 360)
    assert px.audio is not None and px.audio.channels == 1 and px.audio.codec == "aac"
    assert px.duration == pytest.approx(src.duration, abs=1 / 30)
    # Every proxy frame is the source frame at the same time.
    assert frame_times(out) == frame_times(talk720)
    # A keyframe every second, from time 0.
    keys = keyframe_times(out)
    assert keys[0] == 0.0 and max(np.diff(keys)) <= 1.0 + 1e-6
    # faststart: the index comes before the media data.
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert data[4:8] == b"ftyp" and data.index(b"moov") < 64
    # Audio decodes and is not silent where the talk speaks.
    with av.open(str(out)) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert pcm.size / 48000 == pytest.approx(src.duration, abs=0.05)
    assert np.abs(pcm[: 48000]).max() > 0.05


def test_odd_source_gives_even_size(tmp_path: Path) -> None:
    src = tmp_path / "odd.mkv"
    write_video(src, 321, 241, 25, 1.0, pix_fmt="yuv444p")
    info = make_proxy(src, tmp_path / "p.mp4")
    assert info.width is not None and info.height is not None
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert (info.width, info.height) == (320, 240)  # never upscaled; aspect kept
    assert not info.audio and len(frame_times(tmp_path / "p.mp4")) == 25


def test_rotated_source_is_upright(tmp_path: Path) -> None:
    src = tmp_path / "rot.mp4"
    write_video(src, 320, 240, 30, 0.5, rotation=90)
    assert probe(src).video.rotation == 90  # type: ignore[union-attr]
    out = tmp_path / "p.mp4"
    info = make_proxy(src, out)
    assert (info.width, info.height) == (240, 320)
    assert probe(out).video.rotation == 0  # type: ignore[union-attr]
    with av.open(str(out)) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    # Turned 90 degrees clockwise, the source's white left half is now the top half.
    assert img[:140].mean() > 200 and img[-140:].mean() < 50


def test_fast_source_is_thinned_but_kept_frames_keep_their_times(tmp_path: Path) -> None:
    src = tmp_path / "fast.mp4"
    write_video(src, 320, 240, 60, 1.0)
    out = tmp_path / "p.mp4"
    info = make_proxy(src, out, fps_max=30)
    kept = frame_times(out)
    assert info.frames == len(kept) == 30 and info.frames_dropped == 30
    assert set(kept) <= set(frame_times(src))


def test_audio_only_source_gives_audio_only_proxy(tmp_path: Path) -> None:
    src = tmp_path / "talk.wav"
    generate_talk(src, pauses=[0.3], speech_lengths=[0.5, 0.5], video=False)
    out = tmp_path / "p.mp4"
    info = make_proxy(src, out)
    assert info.width is None and info.frames == 0 and info.audio
    px = probe(out)
    assert px.video is None and px.audio is not None
    assert px.duration == pytest.approx(1.3, abs=0.05)


def test_unreadable_input(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n" * 50)
    with pytest.raises(MediaError):
        make_proxy(bad, tmp_path / "p.mp4")
    assert not (tmp_path / "p.mp4").exists()


def test_memory_is_flat(tmp_path: Path) -> None:
    """Python/numpy allocations stay small and do not grow with the input's length."""
    peaks = []
    for seconds in (6.0, 60.0):
        src = tmp_path / f"talk{seconds:.0f}.mp4"
        n = int(seconds // 3)
        generate_talk(src, pauses=[1.0] * (n - 1), speech_lengths=[2.0] * n,
                      width=160, height=120, fps=15)
        tracemalloc.start()
        make_proxy(src, tmp_path / f"p{seconds:.0f}.mp4")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 2_000_000
    assert peaks[1] < peaks[0] * 1.5 + 200_000

"""make_thumbnail_sprite(): a JPEG grid of evenly spaced, upright thumbnails."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sapari_server.media.errors import MediaError
from sapari_server.media.thumbnails import make_thumbnail_sprite
from sapari_testkit.generate import generate_talk


def read_jpeg(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("thumbs") / "talk.mp4"
    generate_talk(f, pauses=[0.5, 0.5], speech_lengths=[2.0, 2.0, 1.5], width=640, height=360)
    return f


def test_sprite_grid_and_times(talk: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.jpg"
    calls: list[float] = []
    info = make_thumbnail_sprite(talk, out, count=23, tile_width=160, columns=10,
                                 progress=calls.append)
    assert (info.tile_width, info.tile_height) == (160, 90)
    assert (info.columns, info.rows) == (10, 3)
    assert (info.width, info.height) == (1600, 270)
    assert read_jpeg(out).shape == (270, 1600, 3)
    assert len(info.times) == len(info.frame_times) == 23
    assert info.interval == pytest.approx(6.5 / 23)
    assert info.times[0] == pytest.approx(info.interval / 2, abs=1e-6)
    # Each tile shows a frame within its own span of the recording.
    for t, shown in zip(info.times, info.frame_times, strict=True):
        assert abs(shown - t) <= info.interval / 2 + 1e-6
    assert calls[-1] == 1.0
    assert json.loads(json.dumps(info.to_dict()))["rows"] == 3


def test_every_overrides_count(talk: Path, tmp_path: Path) -> None:
    info = make_thumbnail_sprite(talk, tmp_path / "s.jpg", every=1.0, count=5, columns=4)
    assert len(info.times) == 7 and (info.columns, info.rows) == (4, 2)
    assert info.times == pytest.approx([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5])


def test_tiles_follow_the_picture(tmp_path: Path) -> None:
    """A clip whose brightness steps each second: tile k must show second k's brightness."""
    src = tmp_path / "steps.mp4"
    with av.open(str(src), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"preset": "ultrafast"}
        for i in range(50):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 + 40 * (i // 10), np.uint8),
                                           format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    info = make_thumbnail_sprite(src, tmp_path / "s.jpg", count=5, tile_width=32, columns=5)
    img = read_jpeg(tmp_path / "s.jpg").astype(float)
    means = [img[:, k * 32 + 4 : (k + 1) * 32 - 4].mean() for k in range(5)]
    assert means == pytest.approx([40, 80, 120, 160, 200], abs=6)
    assert info.tile_height == 24


def test_rotated_tiles_are_upright(tmp_path: Path) -> None:
    src = tmp_path / "rot.mp4"
    with av.open(str(src), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(-90)  # displays turned 90 degrees clockwise
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :32] = 255
        for i in range(10):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 10)
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    info = make_thumbnail_sprite(src, tmp_path / "s.jpg", count=2, tile_width=48, columns=2)
    assert (info.tile_width, info.tile_height) == (48, 64)
    sheet = read_jpeg(tmp_path / "s.jpg").astype(float)
    assert sheet[:28].mean() > 200 and sheet[-28:].mean() < 50  # white half on top


def test_audio_only_has_no_sprite(tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    generate_talk(src, pauses=[0.3], speech_lengths=[0.5, 0.5], video=False)
    with pytest.raises(MediaError, match="no video"):
        make_thumbnail_sprite(src, tmp_path / "s.jpg")

"""Unusual recordings are processed, analyzed and rendered correctly, or refused clearly."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sapari_nb import Client
from sapari_testkit.generate import generate_talk

from .test_flow import decoded_durations


def _speechy(n0: int, n: int, rate: int) -> np.ndarray:
    t = np.arange(n0, n0 + n) / rate
    # Loud tone in 1 s bursts with a 0.8 s gap in the middle of every 2.6 s.
    on = (t % 2.6) < 1.8
    return (0.3 * np.sin(2 * np.pi * 180 * t) * on).astype(np.float32)


def write_custom(path: Path, *, width: int, height: int, codec: str = "libx264",
                 pix_fmt: str = "yuv420p", vfr: bool = False, rotate: int | None = None,
                 seconds: float = 6.0, rate: int = 48000, layout: str = "mono") -> None:
    """Media the generator does not make: odd sizes, variable frame rate, rotation tags."""
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=30)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        v.time_base = v.codec_context.time_base = Fraction(1, 90000)
        if codec == "libx264":
            v.options = {"preset": "ultrafast"}
        if rotate is not None:
            v.metadata["rotate"] = str(rotate)
        a = out.add_stream("aac", rate=rate)
        a.layout = layout
        t, i = 0.0, 0
        while t < seconds:
            img = np.zeros((height, width, 3), np.uint8)
            img[:, : (i * 3) % width] = 200
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = round(t * 90000), v.time_base
            out.mux(v.encode(f))
            t += 1 / 15 if vfr and (i // 20) % 2 else 1 / 30
            i += 1
        out.mux(v.encode())
        channels = 2 if layout == "stereo" else 1
        n = 0
        while n < rate * seconds:
            x = np.repeat(_speechy(n, 1024, rate)[None], channels, axis=0)
            fr = av.AudioFrame.from_ndarray(x, format="fltp", layout=layout)
            fr.sample_rate, fr.pts = rate, n
            out.mux(a.encode(fr))
            n += 1024
        out.mux(a.encode())


CASES: dict[str, Callable[[Path], None]] = {
    "vfr.mp4": lambda p: write_custom(p, width=320, height=240, vfr=True),
    "odd_size.mp4": lambda p: write_custom(p, width=321, height=241, pix_fmt="yuv444p"),
    "rotated.mp4": lambda p: write_custom(p, width=320, height=240, rotate=90),
    "44k_stereo.mp4": lambda p: write_custom(p, width=320, height=240, rate=44100,
                                             layout="stereo"),
    "48k_stereo.mp4": lambda p: generate_talk(p, pauses=[0.9, 1.0], channels=2),
    "44k_mono.mp4": lambda p: generate_talk(p, pauses=[0.9, 1.0], sample_rate=44100),
    "audio_only.mp4": lambda p: generate_talk(p, pauses=[0.9, 1.0], video=False),
    "audio_only.wav": lambda p: generate_talk(p, pauses=[0.9, 1.0], video=False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_unusual_input_is_edited(client: Client, tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    CASES[name](src)
    project = client.create_project(name)
    after = client.cursor()
    clip = client.wait_clip(client.upload(project.id, src), after=after, timeout=120)
    assert clip.status == "ready" and clip.duration and clip.duration > 4
    run = client.wait_analysis(client.analyze(project.id), after=after, timeout=120)
    assert run.summary["edits"] >= 1, run.summary
    client.accept_all(project.id)
    exp = client.wait_export(client.export(project.id), after=after, timeout=300)
    out = client.download(exp.id, tmp_path / "out.mp4")
    keeps = sum(k["end"] - k["start"] for k in exp.result["keep_segments"])
    with av.open(str(out)) as c:
        has_video = bool(c.streams.video)
    if clip.media_info and clip.media_info.get("video"):
        assert has_video
        video_s, audio_s, fps = decoded_durations(out)
        frame = 1 / float(fps)
        assert abs(video_s - keeps) <= frame + 1e-6
        assert abs(audio_s - video_s) <= frame
    else:
        assert not has_video
        with av.open(str(out)) as c:
            samples = sum(f.samples for f in c.decode(audio=0))
            rate = c.streams.audio[0].rate
        assert abs(samples / rate - keeps) <= 0.03

"""Tiny PyAV media maker for the render tests.

Every video frame carries its own index, drawn as five full-height stripes whose luma levels
are base-4 digits (levels far apart, so H.264 at any sane quality keeps them readable, and
stripes scale with the picture, so a resized output still decodes). Every audio span of one
frame period carries a sine whose frequency identifies that frame (index mod 16), so a test
can tell which source frame a stretch of output audio came from, and so check sync.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LEVELS = (32, 96, 160, 224)  # base-4 digit -> luma
DIGITS = 5  # 4**5 = 1024 distinct indices
TONES = 16
SAMPLE_RATE = 48_000


def tone_hz(index: int) -> float:
    """Frequency of the sine that marks source frame `index`."""
    return 400.0 + 150.0 * (index % TONES)


def index_picture(index: int, width: int, height: int) -> np.ndarray:
    """A yuv420p plane stack (h*3/2, w) with `index` drawn as luma stripes."""
    img = np.full((height * 3 // 2, width), 128, np.uint8)
    for d in range(DIGITS):
        digit = (index // 4 ** (DIGITS - 1 - d)) % 4
        x0, x1 = d * width // DIGITS, (d + 1) * width // DIGITS
        img[:height, x0:x1] = LEVELS[digit]
    return img


def read_index(frame: av.VideoFrame) -> int:
    """Decode the index drawn by `index_picture` from any-size decoded frame."""
    y = frame.to_ndarray(format="gray")
    h, w = y.shape
    value = 0
    for d in range(DIGITS):
        x0, x1 = d * w // DIGITS, (d + 1) * w // DIGITS
        pad = (x1 - x0) // 4  # read the stripe's middle, away from blurred edges
        level = float(y[h // 4 : 3 * h // 4, x0 + pad : x1 - pad].mean())
        digit = int(np.argmin([abs(level - v) for v in LEVELS]))
        value = value * 4 + digit
    return value


def source_audio(
    n_samples: int, fps: Fraction | int, index_offset: int = 0, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The mono signal make_clip writes: per frame period, the sine of that frame's tone
    (phase-continuous, so AAC codes it cleanly)."""
    t = np.arange(n_samples) / rate
    idx = np.floor(t * float(fps) + 1e-9).astype(np.int64) + index_offset
    freq = 400.0 + 150.0 * (idx % TONES)
    return (0.5 * np.sin(np.cumsum(2 * np.pi * freq / rate))).astype(np.float32)


def make_clip(
    path: Path,
    seconds: float,
    *,
    fps: Fraction | int = 30,
    size: tuple[int, int] = (320, 240),
    index_offset: int = 0,
    video: bool = True,
    audio: bool = True,
    gop: int = 30,
    sample_rate: int = SAMPLE_RATE,
    layout: str = "stereo",
) -> Path:
    """Write an MP4 whose frames and audio encode the frame index (see module doc)."""
    fps = Fraction(fps)
    n_frames = int(round(seconds * fps))
    n_samples = int(round(seconds * sample_rate))
    with av.open(str(path), "w") as out:
        vs = None
        if video:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height = size
            vs.pix_fmt = "yuv420p"
            vs.gop_size = gop
            vs.options = {"preset": "veryfast", "crf": "18"}  # veryfast keeps B-frames
        aus = None
        if audio:
            aus = out.add_stream("aac", rate=sample_rate, layout=layout)
            aus.bit_rate = 128_000
        # Interleave by time so the demuxer sees a normal file.
        sound = source_audio(n_samples, fps, index_offset, sample_rate) if aus is not None else None
        channels = 2 if layout == "stereo" else 1
        v_next = 0
        a_next = 0
        while (vs is not None and v_next < n_frames) or (aus is not None and a_next < n_samples):
            v_time = v_next / fps if vs is not None and v_next < n_frames else None
            a_time = (
                Fraction(a_next, sample_rate) if aus is not None and a_next < n_samples else None
            )
            if v_time is not None and (a_time is None or v_time <= a_time):
                frame = av.VideoFrame.from_ndarray(
                    index_picture(index_offset + v_next, *size), format="yuv420p"
                )
                frame.pts = v_next
                frame.time_base = 1 / fps
                for pkt in vs.encode(frame):
                    out.mux(pkt)
                v_next += 1
            else:
                assert sound is not None
                samples = sound[a_next : a_next + 1024]
                frame = av.AudioFrame.from_ndarray(
                    np.stack([samples] * channels), format="fltp", layout=layout
                )
                frame.sample_rate = sample_rate
                frame.pts = a_next
                frame.time_base = Fraction(1, sample_rate)
                for pkt in aus.encode(frame):
                    out.mux(pkt)
                a_next += len(samples)
        for s in (vs, aus):
            if s is not None:
                for pkt in s.encode(None):
                    out.mux(pkt)
    return path


def decode_output(path: Path) -> tuple[list[int], np.ndarray | None, int, Fraction | None]:
    """(frame indices, mono audio, sample rate, fps) of a rendered file."""
    indices: list[int] = []
    chunks: list[np.ndarray] = []
    rate = 0
    fps: Fraction | None = None
    with av.open(str(path)) as c:
        streams = [*c.streams.video[:1], *c.streams.audio[:1]]
        if c.streams.video:
            fps = c.streams.video[0].average_rate
        if c.streams.audio:
            rate = c.streams.audio[0].rate
        for frame in c.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                indices.append(read_index(frame))
            else:
                chunks.append(
                    frame.to_ndarray().astype(np.float32).reshape(len(frame.layout.channels), -1)[0]
                )
    audio = np.concatenate(chunks) if chunks else None
    return indices, audio, rate, fps


def dominant_tone(samples: np.ndarray, rate: int) -> float:
    """Frequency of the strongest sine in a short window."""
    win = samples * np.hanning(len(samples))
    n = 1 << 15  # zero-pad for a fine frequency grid
    spec = np.abs(np.fft.rfft(win, n))
    return float(np.argmax(spec) * rate / n)


def tone_index(samples: np.ndarray, rate: int) -> int:
    """Which of the TONES frequencies (index mod 16) a window carries."""
    f = dominant_tone(samples, rate)
    return int(round((f - 400.0) / 150.0)) % TONES

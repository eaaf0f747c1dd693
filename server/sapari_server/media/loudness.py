"""Integrated loudness (ITU-R BS.1770-4 / EBU R128) measured while streaming, and a gain pass.

``LoudnessMeter`` takes audio block by block: the K-weighting filter keeps its state between
blocks and only one sum of squares per channel and 100 ms is kept (36 000 numbers an hour),
so an hour-long file is measured in flat memory. (pyloudnorm implements the same standard but
wants the whole signal as one array; the tests use it as an independent check.)

``apply_gain`` copies the video packets untouched and re-encodes only the audio, scaled.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from .errors import MediaError

ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the absolutely gated loudness
SUB_BLOCK = 0.1  # seconds: gating blocks are 4 of these (400 ms, 75 % overlap)
# Gain is held back so the sample peak stays at or under this (AAC adds a little overshoot).
PEAK_CEILING_DB = -1.0
# Channel weights by FFmpeg channel name: surrounds +1.5 dB, LFE not counted (BS.1770 table 3).
_WEIGHTS = {"LFE": 0.0, "LFE2": 0.0, "SL": 1.41, "SR": 1.41, "BL": 1.41, "BR": 1.41}
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}
CONTAINERS = {".mp4": "mp4", ".m4a": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


def k_weighting(rate: float) -> np.ndarray:
    """The two K-weighting biquads (high shelf, then high pass) at ``rate``, as SOS rows.

    The analogue prototypes of BS.1770 mapped by the bilinear transform (as libebur128
    does), so any sample rate gets the filter the standard defines at 48 kHz.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, high_pass], dtype=np.float64)


def channel_weights(names: list[str]) -> np.ndarray:
    return np.array([_WEIGHTS.get(n, 1.0) for n in names], dtype=np.float64)


class LoudnessMeter:
    """Feed ``add`` blocks shaped (channels, samples); read ``integrated()`` and ``peak``."""

    def __init__(self, rate: int, weights: np.ndarray) -> None:
        self.rate = rate
        self.weights = weights
        channels = len(weights)
        # scipy.signal is imported here, not at module load: it costs ~65 MB of resident
        # memory, and every worker imports this module with the job table while only
        # loudness edits filter.
        from scipy.signal import sosfilt

        self._sosfilt = sosfilt
        self.sos = k_weighting(rate)
        self.zi = np.zeros((self.sos.shape[0], channels, 2))
        self.pos = 0  # samples seen
        self.k = 0  # index of the 100 ms sub-block being filled
        self.acc = np.zeros(channels)
        self.subs: list[np.ndarray] = []  # per sub-block: sum of squares per channel
        self.peak = 0.0  # largest absolute sample (linear)

    def _bound(self, k: int) -> int:
        # Sub-block k starts at round(k * rate / 10): exact for any rate, no drift.
        return round(k * self.rate * SUB_BLOCK)

    def add(self, block: np.ndarray) -> None:
        x = np.asarray(block, dtype=np.float64)
        n = x.shape[1]
        if n == 0:
            return
        self.peak = max(self.peak, float(np.max(np.abs(x))))
        y, self.zi = self._sosfilt(self.sos, x, axis=1, zi=self.zi)
        cs = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(y * y, axis=1)], axis=1)
        end = self.pos + n
        prev = 0
        while (b := self._bound(self.k + 1)) <= end:
            cut = b - self.pos
            self.acc += cs[:, cut] - cs[:, prev]
            self.subs.append(self.acc)
            self.acc = np.zeros_like(self.acc)
            prev = cut
            self.k += 1
        self.acc += cs[:, n] - cs[:, prev]
        self.pos = end

    def block_loudness(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean square per 400 ms block and channel, loudness per block in LUFS)."""
        subs = np.array(self.subs).reshape(-1, len(self.weights))
        count = len(subs) - 3
        if count <= 0:
            return np.zeros((0, len(self.weights))), np.zeros(0)
        sums = subs[:-3] + subs[1:-2] + subs[2:-1] + subs[3:]
        lengths = np.array([self._bound(j + 4) - self._bound(j) for j in range(count)],
                           dtype=np.float64)
        z = sums / lengths[:, None]
        with np.errstate(divide="ignore"):
            loud = -0.691 + 10 * np.log10(z @ self.weights)
        return z, loud

    def integrated(self) -> float | None:
        """Gated integrated loudness in LUFS; None when too short (< 0.4 s); -inf if silent."""
        z, loud = self.block_loudness()
        if len(loud) == 0:
            return None
        gated = loud >= ABSOLUTE_GATE
        if not gated.any():
            return -math.inf
        relative = -0.691 + 10 * math.log10(float(z[gated].mean(axis=0) @ self.weights)) \
            + RELATIVE_GATE
        gated &= loud > relative
        if not gated.any():
            return -math.inf
        return -0.691 + 10 * math.log10(float(z[gated].mean(axis=0) @ self.weights))


@dataclass(frozen=True)
class Loudness:
    lufs: float | None  # None: too short to measure
    peak_db: float  # sample peak, dBFS
    duration: float  # seconds of audio measured
    sample_rate: int
    channels: int


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise MediaError(f"{path.name} cannot be read as media ({e})", path=str(path)) from e


def _planar_blocks(container: av.container.InputContainer, stream: av.AudioStream,
                   ) -> Iterator[tuple[av.AudioFrame, np.ndarray]]:
    """Decoded audio as float planar arrays (channels, samples), with the frame they came from."""
    resampler = av.AudioResampler(format="fltp", layout=_layout(stream.layout),
                                  rate=stream.rate)
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            yield out, out.to_ndarray()
    for out in resampler.resample(None):
        yield out, out.to_ndarray()


def measure(path: Path, progress: Callable[[float], None] | None = None) -> Loudness:
    """Integrated loudness and sample peak of the first audio track of ``path``."""
    with _open(path) as c:
        if not c.streams.audio:
            raise MediaError(f"{path.name} has no audio track to measure", path=str(path))
        a = c.streams.audio[0]
        total = float(c.duration or 0) / av.time_base
        meter = LoudnessMeter(a.rate, channel_weights([ch.name for ch in a.layout.channels]))
        # Decoded frames are ~1024 samples: filter a second at a time (fewer, larger calls).
        pending: list[np.ndarray] = []
        held = 0
        try:
            for _, block in _planar_blocks(c, a):
                pending.append(block)
                held += block.shape[1]
                if held >= a.rate:
                    meter.add(np.concatenate(pending, axis=1))
                    pending, held = [], 0
                    if progress is not None and total > 0:
                        progress(min(meter.pos / a.rate / total, 1.0))
            if pending:
                meter.add(np.concatenate(pending, axis=1))
        except av.error.FFmpegError as e:
            raise MediaError(f"the audio of {path.name} cannot be decoded ({e})",
                             path=str(path)) from e
        lufs = meter.integrated()
        peak_db = 20 * math.log10(meter.peak) if meter.peak > 0 else -math.inf
        return Loudness(lufs, peak_db, meter.pos / a.rate, a.rate, len(meter.weights))


def gain_for(measured: Loudness, target_lufs: float) -> tuple[float, bool]:
    """(gain in dB to reach ``target_lufs``, whether the peak ceiling held it back)."""
    if measured.lufs is None or not math.isfinite(measured.lufs):
        raise MediaError("the audio is silent or shorter than 0.4 s: there is no loudness to "
                         "normalise")
    gain = target_lufs - measured.lufs
    room = PEAK_CEILING_DB - measured.peak_db
    if gain > room:
        return room, True
    return gain, False


def _layout(layout: av.AudioLayout) -> str:
    """A layout encoders accept: files without one (WAV's "2 channels") get the default."""
    if "channels" not in layout.name:
        return layout.name
    n = len(layout.channels)
    return _DEFAULT_LAYOUTS.get(n, layout.name)


def _audio_encoder(fmt: str) -> str:
    return "libopus" if fmt == "webm" else "aac"


def apply_gain(src: Path, dst: Path, gain_db: float,
               progress: Callable[[float], None] | None = None) -> None:
    """Write ``dst``: ``src``'s first video stream copied as is, its audio scaled by ``gain_db``.

    The container follows ``dst``'s suffix (.mp4/.m4a/.mov/.mkv/.webm). Written beside
    ``dst`` and moved into place when complete.
    """
    fmt = CONTAINERS.get(dst.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported output container {dst.suffix!r}")
    scale = 10 ** (gain_db / 20)
    tmp = dst.with_name(f".{dst.name}.partial")
    try:
        with _open(src) as c:
            if not c.streams.audio:
                raise MediaError(f"{src.name} has no audio track", path=str(src))
            a_in = c.streams.audio[0]
            v_in = c.streams.video[0] if c.streams.video else None
            total = float(c.duration or 0) / av.time_base
            options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
            with av.open(str(tmp), "w", format=fmt, options=options) as out:
                v_out = out.add_stream_from_template(v_in) if v_in is not None else None
                codec = _audio_encoder(fmt)
                rate = 48000 if codec == "libopus" else a_in.rate
                layout = _layout(a_in.layout)
                a_out = out.add_stream(codec, rate=rate, layout=layout)
                a_out.bit_rate = min(96_000 * len(a_in.layout.channels), 256_000)
                if codec == "aac":
                    # FFmpeg's default AAC coder (twoloop) is ~4x slower; at 96 kbit/s per
                    # channel the fast one is transparent for speech (the renders use it too).
                    a_out.options = {"aac_coder": "fast"}
                out.start_encoding()
                size = a_out.codec_context.frame_size or 1024
                # Decoded audio to float (scaling never wraps an integer sample), then to
                # what the encoder takes, in its frame size.
                to_float = av.AudioResampler(format="fltp", layout=layout, rate=a_in.rate)
                to_encoder = av.AudioResampler(format=a_out.format.name, layout=layout,
                                               rate=rate, frame_size=size)

                def encode(frames: list[av.AudioFrame]) -> None:
                    for scaled in _scaled(frames, scale):
                        for f in to_encoder.resample(scaled):
                            out.mux(a_out.encode(f))

                streams = [s for s in (v_in, a_in) if s is not None]
                for packet in c.demux(*streams):
                    if packet.stream is v_in:
                        if packet.dts is None:  # the demuxer's flush marker
                            continue
                        packet.stream = v_out
                        out.mux(packet)
                        continue
                    for frame in packet.decode():
                        encode(to_float.resample(frame))
                    if progress is not None and total > 0 and packet.pts is not None \
                            and packet.time_base is not None:
                        progress(min(max(float(packet.pts * packet.time_base) / total, 0), 1))
                encode(to_float.resample(None))
                for f in to_encoder.resample(None):
                    out.mux(a_out.encode(f))
                out.mux(a_out.encode(None))
        os.replace(tmp, dst)
    except av.error.FFmpegError as e:
        raise MediaError(f"could not write the edited audio of {src.name} ({e})",
                         path=str(src)) from e
    finally:
        tmp.unlink(missing_ok=True)


def _scaled(frames: list[av.AudioFrame], scale: float) -> Iterator[av.AudioFrame]:
    """Float planar frames multiplied by ``scale``, timing kept."""
    for frame in frames:
        scaled = av.AudioFrame.from_ndarray((frame.to_ndarray() * scale).astype(np.float32),
                                            format="fltp", layout=frame.layout.name)
        scaled.sample_rate = frame.sample_rate
        scaled.pts = frame.pts
        scaled.time_base = frame.time_base
        yield scaled

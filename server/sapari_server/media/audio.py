"""One streaming pass over a file's audio: loudness per hop, waveform peaks, a 16 kHz WAV.

Besides the plain RMS level, each hop gets a hum-rejecting level: mains hum is periodic at
exactly 20 ms (50 Hz) or 16.7 ms (60 Hz) with all its harmonics, so subtracting the signal
one mains period earlier (a comb filter) cancels it, while speech, whose period wanders,
keeps its power. The minimum of the plain and the two comb levels is reported, so a comb's
20 ms echo never lengthens a word ending and a steady tone can only look quieter.

Memory stays flat however long the input is: decoded frames are gathered into ~1 s blocks,
reduced to levels/peaks with numpy, and dropped. Only the (small) level and peak arrays grow.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np
from av.stream import Discard

from .errors import MediaError
from .probe import ACCEPTED, open_input

WAV_RATE = 16_000  # what speech-to-text models want
_SILENCE_DB = -120.0  # level reported for digital silence (log of zero)
_GAP_TOLERANCE = 0.005  # timestamp jumps shorter than this are jitter, not gaps
_MAX_BAD_PACKETS = 25  # a few damaged packets become silence; more means a corrupt file
_MAINS_HZ = (50.0, 60.0)  # hum fundamentals cancelled by the comb levels
_DTYPES = {
    "fltp": np.dtype(np.float32),
    "s16p": np.dtype(np.int16),
    "s32p": np.dtype(np.int32),
    "dblp": np.dtype(np.float64),
    "u8p": np.dtype(np.uint8),
}


@dataclass
class AudioAnalysis:
    hop: float
    levels_db: np.ndarray  # float32, RMS dBFS of the mono mix per hop window
    peaks: np.ndarray  # int16, shape (n, 2): min and max of the mono mix per bucket
    peaks_per_second: int
    duration: float
    sample_rate: int
    # float32 dBFS per hop like levels_db, with 50/60 Hz mains hum cancelled; None when the
    # producer did not compute it (e.g. levels loaded from an older artifact).
    levels_dehum_db: np.ndarray | None = None

    def times(self) -> np.ndarray:
        """Start time in seconds of each level window."""
        return np.arange(len(self.levels_db)) * self.hop


class _Windows:
    """Splits a stream of sample blocks into exact windows ``round(k * length * sr)``.

    Window boundaries are computed from the absolute sample index, so windows stay exact
    over hours even when ``length * sr`` is not an integer; the samples after the last
    complete window are carried into the next block.
    """

    def __init__(self, samples_per_window: float) -> None:
        self.spw = samples_per_window
        self.k = 0  # index of the next window to emit
        self.pos = 0  # absolute sample index of pending[0]
        self.pending = np.zeros(0, dtype=np.float32)

    def _bound(self, k: np.ndarray | int) -> np.ndarray:
        return np.rint(np.asarray(k) * self.spw).astype(np.int64)

    def feed(self, block: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Return (data, starts): windows to reduce with ``ufunc.reduceat(data, starts)``."""
        data = np.concatenate((self.pending, block)) if self.pending.size else block
        end = self.pos + data.size
        # Number of windows whose end boundary lies within the data.
        last = int(np.floor(end / self.spw + 1e-9))
        while last > self.k and self._bound(last) > end:
            last -= 1
        bounds = self._bound(np.arange(self.k, last + 1)) - self.pos
        if final and (bounds.size == 0 or bounds[-1] < data.size):
            # The last partial window still counts: it holds real audio.
            bounds = np.append(bounds if bounds.size else [0], data.size)
            last += 1
        if bounds.size < 2:
            self.pending = data
            return data[:0], bounds[:0]
        used = int(bounds[-1])
        self.pending = data[used:].copy() if not final else data[:0]
        self.pos += used
        self.k = last
        return data[:used], bounds[:-1]


def _to_float(frames: list[np.ndarray], fmt: av.AudioFormat, channels: int) -> np.ndarray:
    """Mono float32 mix of decoded frames' arrays."""
    if fmt.is_planar:
        arr = np.concatenate(frames, axis=1) if len(frames) > 1 else frames[0]
    else:
        flat = np.concatenate(frames, axis=1) if len(frames) > 1 else frames[0]
        arr = flat.reshape(-1, channels).T
    name = fmt.name.rstrip("p")
    if name == "s16":
        scale = 1 / 32768
    elif name == "s32":
        scale = 1 / 2147483648
    elif name == "u8":
        arr = arr.astype(np.float32) - 128
        scale = 1 / 128
    else:
        scale = 1.0
    mono = arr.mean(axis=0, dtype=np.float32) if arr.shape[0] > 1 else arr[0]
    mono = mono.astype(np.float32, copy=False)
    return mono * np.float32(scale) if scale != 1.0 else mono


class _WavSink:
    """Resamples mono blocks to 16 kHz s16 and streams them into a WAV file."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        self.rate = sample_rate
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=WAV_RATE)
        self.wav = wave.open(str(path), "wb")
        self.wav.setnchannels(1)
        self.wav.setsampwidth(2)
        self.wav.setframerate(WAV_RATE)

    def write(self, mono: np.ndarray | None) -> None:
        if mono is None:
            frames = self.resampler.resample(None)
        else:
            frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
            frame.sample_rate = self.rate
            frames = self.resampler.resample(frame)
        for f in frames:
            self.wav.writeframes(f.to_ndarray().tobytes())

    def close(self) -> None:
        self.wav.close()


class _Reducer:
    """Turns mono blocks into levels and peaks."""

    def __init__(self, sample_rate: int, hop: float, peaks_per_second: int) -> None:
        self.levels = _Windows(hop * sample_rate)
        self.buckets = _Windows(sample_rate / peaks_per_second)
        self.level_parts: list[np.ndarray] = []
        self.dehum_parts: list[np.ndarray] = []
        self.peak_parts: list[np.ndarray] = []
        self.lags = [max(1, int(round(sample_rate / hz))) for hz in _MAINS_HZ]
        # The last max(lag) samples already reduced: the comb reaches back across blocks.
        self.history = np.zeros(max(self.lags), dtype=np.float32)

    def feed(self, mono: np.ndarray, final: bool = False) -> None:
        data, starts = self.levels.feed(mono, final)
        if starts.size:
            lengths = np.diff(np.append(starts, data.size))
            sums = [np.add.reduceat(np.square(data, dtype=np.float32), starts, dtype=np.float64)]
            ext = np.concatenate((self.history, data))
            keep = self.history.size
            self.history = ext[-keep:]
            for lag in self.lags:
                comb = data - ext[keep - lag : ext.size - lag]
                # Halved: the difference of two uncorrelated signals doubles the power.
                sums.append(np.add.reduceat(np.square(comb), starts, dtype=np.float64) * 0.5)
            mean_sq = np.stack(sums)
            with np.errstate(divide="ignore"):
                db = 10 * np.log10(mean_sq / lengths)
            db = np.maximum(db, _SILENCE_DB).astype(np.float32)
            self.level_parts.append(db[0])
            self.dehum_parts.append(db.min(axis=0))
        data, starts = self.buckets.feed(mono, final)
        if starts.size:
            lo = np.minimum.reduceat(data, starts)
            hi = np.maximum.reduceat(data, starts)
            pair = np.stack((lo, hi), axis=1)
            self.peak_parts.append(np.rint(np.clip(pair, -1.0, 1.0) * 32767).astype(np.int16))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        levels = np.concatenate(self.level_parts) if self.level_parts else np.zeros(0, np.float32)
        dehum = np.concatenate(self.dehum_parts) if self.dehum_parts else np.zeros(0, np.float32)
        peaks = np.concatenate(self.peak_parts) if self.peak_parts else np.zeros((0, 2), np.int16)
        return levels, dehum, peaks


def analyze_audio(
    path: str | Path,
    *,
    hop: float = 0.01,
    peaks_per_second: int = 100,
    wav_out: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> AudioAnalysis:
    """Decode the first audio track of ``path`` once; return levels and peaks.

    Time 0 of the result is the start of the container, so levels line up with the video:
    audio that starts late or has holes is padded with silence at the right place.
    Raises MediaError if there is no audio track or the audio cannot be decoded.
    """
    path = Path(path)
    container = open_input(path)
    wav: _WavSink | None = None
    try:
        if not container.streams.audio:
            raise MediaError(
                f"{path.name} has no audio track: sapari-nb cuts by speech, record with a "
                "microphone (or add the audio track in your editor) and upload again",
                path=str(path),
            )
        stream = container.streams.audio[0]
        for other in container.streams:
            if other is not stream:
                # Lets the demuxer skip other streams' bytes instead of reading them.
                other.discard = Discard.all
        ctx = stream.codec_context
        sr = ctx.sample_rate
        if sr <= 0:
            raise MediaError(
                f"{path.name}: its audio track has no sample rate; {ACCEPTED}", path=str(path)
            )
        if hop * sr < 1 or peaks_per_second > sr:
            raise ValueError("hop and peaks_per_second must span at least one sample")

        origin = container.start_time / av.time_base if container.start_time else 0.0
        expected = _expected_duration(container, stream, origin)
        reducer = _Reducer(sr, hop, peaks_per_second)
        if wav_out is not None:
            wav = _WavSink(Path(wav_out), sr)

        block_target = sr  # about one second per numpy pass
        pending: list[np.ndarray] = []
        pending_n = 0
        written = 0  # samples placed on the timeline so far (incl. gap fill)
        fmt: av.AudioFormat | None = None
        mono_planar = False
        mono_dtype: np.dtype | None = None
        channels = ctx.channels or 1
        bad = 0
        last_report = time.monotonic()
        tb = float(stream.time_base) if stream.time_base else 1.0 / sr

        def flush(final: bool = False) -> None:
            nonlocal pending, pending_n, written
            if pending_n:
                assert fmt is not None
                mono = _to_float(pending, fmt, channels)
                pending, pending_n = [], 0
                _emit(mono)
            if final:
                reducer.feed(np.zeros(0, np.float32), final=True)
                if wav is not None:
                    wav.write(None)

        def _emit(mono: np.ndarray) -> None:
            nonlocal written
            reducer.feed(mono)
            if wav is not None:
                wav.write(mono)
            written += mono.size

        def silence(n: int) -> None:
            flush()
            while n > 0:  # in blocks, so a huge hole never allocates a huge array
                step = min(n, block_target * 10)
                _emit(np.zeros(step, np.float32))
                n -= step

        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                raise _decode_error(path, (written + pending_n) / sr, exc) from exc
            try:
                frames = ctx.decode(packet)
            except av.error.FFmpegError as exc:
                bad += 1
                if bad > _MAX_BAD_PACKETS:
                    raise _decode_error(path, (written + pending_n) / sr, exc) from exc
                continue  # the gap this leaves is filled with silence by timestamp
            for frame in frames:
                if fmt is None or frame.format.name != fmt.name:
                    flush()  # first frame, or a mid-stream format change: mix what we have
                    fmt = frame.format
                    channels = len(frame.layout.channels)
                    mono_dtype = _DTYPES.get(fmt.name)
                    mono_planar = channels == 1 and fmt.is_planar and mono_dtype is not None
                if mono_planar:
                    # Straight view of the decoder's buffer: skips to_ndarray's vstack,
                    # which costs more than decoding for mono AAC.
                    arr = np.frombuffer(frame.planes[0], mono_dtype, frame.samples)[None, :]
                else:
                    arr = frame.to_ndarray()
                if frame.pts is not None:
                    at = int(round((frame.pts * tb - origin) * sr))
                    here = written + pending_n
                    if at - here > _GAP_TOLERANCE * sr:
                        silence(at - here)
                    elif at < 0 and here == 0:
                        # Audio that starts before the container's time 0 (priming).
                        drop = min(-at, frame.samples)
                        arr = arr[:, drop * (1 if fmt.is_planar else channels) :]
                pending.append(arr)
                pending_n += arr.shape[1] if fmt.is_planar else arr.shape[1] // channels
                if pending_n >= block_target:
                    flush()
                if progress is not None and expected > 0:
                    now = time.monotonic()
                    if now - last_report >= 0.05:
                        last_report = now
                        progress(min(1.0, (written + pending_n) / sr / expected))
        flush(final=True)

        duration = written / sr
        if expected > 1.0 and duration < expected * 0.98 - 0.5:
            raise MediaError(
                f"{path.name} is truncated or corrupt: its audio stops at {duration:.1f} s "
                f"but the file says it lasts {expected:.1f} s; the recording or upload was "
                f"interrupted; {ACCEPTED} that plays to the end",
                path=str(path),
            )
        levels, dehum, peaks = reducer.result()
        if progress is not None:
            progress(1.0)
        return AudioAnalysis(
            hop=hop,
            levels_db=levels,
            peaks=peaks,
            peaks_per_second=peaks_per_second,
            duration=duration,
            sample_rate=sr,
            levels_dehum_db=dehum,
        )
    finally:
        if wav is not None:
            wav.close()
        container.close()


def _expected_duration(
    container: av.container.InputContainer, stream: av.AudioStream, origin: float
) -> float:
    if stream.duration and stream.time_base:
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        return float(stream.duration * stream.time_base) + max(0.0, start - origin)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _decode_error(path: Path, at: float, exc: av.error.FFmpegError) -> MediaError:
    return MediaError(
        f"{path.name} is corrupt or truncated: decoding its audio failed at {at:.1f} s "
        f"({exc.strerror or exc}); re-export or re-record the file and upload it again",
        path=str(path),
    )

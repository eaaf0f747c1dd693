"""Speech probabilities from Silero VAD v6, and pause cuts from them.

The model is the ONNX file faster-whisper ships (``faster_whisper/assets``), run with
onnxruntime directly: no torch, no ``silero-vad`` package. That export takes a whole
sequence of windows in one call, shape ``(n, 64 + 512)``: each 512-sample window (32 ms at
16 kHz) preceded by the last 64 samples of the window before it, with the LSTM state carried
through the sequence inside the graph and returned (``hn``, ``cn``). So a long file is a few
calls of ~30 s each, state passed from one call to the next, giving exactly the same
probabilities as one call over the whole file while memory stays flat.

Loudness says "quiet", VAD says "nobody is talking": a room with fans, hiss or mains hum is
never quiet, but it has no speech in it.
"""

from __future__ import annotations

import functools
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from .. import threads
from .errors import MediaError

if TYPE_CHECKING:
    from .silence import Cut, SilenceSettings

VAD_RATE = 16_000
WINDOW = 512  # samples per probability: what the v6 model was trained on at 16 kHz
CONTEXT = 64  # samples of the previous window the model sees before each window
WINDOW_S = WINDOW / VAD_RATE  # 0.032 s
_BLOCK_WINDOWS = 1024  # windows per model call (~33 s): big calls amortise the overhead
_STATE_SHAPE = (1, 1, 128)
# The model reacts to an onset within about one window; speech is assumed to start this much
# before the first window it flags, so padding is not spent absorbing that latency.
_ONSET_GUARD = WINDOW_S
# Edge refinement with the level track: how far before a VAD onset speech energy may start,
# and how far above the pause's own floor a level must rise to count as that speech.
_ONSET_LOOKBACK = 0.3
_ONSET_RISE_DB = 6.0


class VadUnavailable(RuntimeError):
    """The Silero model or onnxruntime cannot be loaded on this machine."""


def model_path() -> Path:
    """Path of the Silero VAD v6 ONNX file inside the installed faster-whisper."""
    try:
        import faster_whisper
    except ImportError as exc:  # the model ships inside faster-whisper
        raise VadUnavailable(f"faster-whisper is not installed ({exc})") from exc
    path = Path(faster_whisper.__file__).resolve().parent / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise VadUnavailable(f"Silero VAD model not found at {path}")
    return path


@functools.lru_cache(maxsize=1)
def _session() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise VadUnavailable(f"onnxruntime is not installed ({exc})") from exc
    opts = ort.SessionOptions()
    # One thread each: the graph is small and sequential (an LSTM over windows), so more
    # threads only add synchronisation; the other core stays free for decoding.
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads.vad_threads()
    opts.log_severity_level = 4
    try:
        return ort.InferenceSession(
            str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except VadUnavailable:
        raise
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
        raise VadUnavailable(f"cannot load the Silero VAD model: {exc}") from exc


def load_model() -> None:
    """Load the model now (cached); raises VadUnavailable if it cannot be loaded."""
    _session()


class _Runner:
    """Feeds consecutive 16 kHz float32 blocks to the model, carrying context and state."""

    def __init__(self) -> None:
        self.session = _session()
        self.h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self.c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self.context = np.zeros(CONTEXT, dtype=np.float32)
        self.pending = np.zeros(0, dtype=np.float32)
        self.parts: list[np.ndarray] = []

    def feed(self, samples: np.ndarray, final: bool = False) -> None:
        data = np.concatenate((self.pending, samples)) if self.pending.size else samples
        n = data.size // WINDOW
        if final and data.size % WINDOW:
            # The last partial window is real audio: zero-pad it like faster-whisper does.
            data = np.concatenate((data, np.zeros(WINDOW - data.size % WINDOW, np.float32)))
            n += 1
        for i in range(0, n, _BLOCK_WINDOWS):
            m = min(_BLOCK_WINDOWS, n - i)
            windows = data[i * WINDOW : (i + m) * WINDOW].reshape(m, WINDOW)
            batch = np.empty((m, CONTEXT + WINDOW), dtype=np.float32)
            batch[:, CONTEXT:] = windows
            batch[0, :CONTEXT] = self.context
            batch[1:, :CONTEXT] = windows[:-1, -CONTEXT:]
            self.context = windows[-1, -CONTEXT:].copy()
            probs, self.h, self.c = self.session.run(
                None, {"input": batch, "h": self.h, "c": self.c}
            )
            self.parts.append(np.asarray(probs, dtype=np.float32).reshape(-1))
        self.pending = data[n * WINDOW :].copy()

    def result(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)


def _wav_blocks(path: Path, block: int) -> Any:
    """Float32 blocks of a 16 kHz mono 16-bit WAV, or None if the file is not one."""
    try:
        w = wave.open(str(path), "rb")
    except (wave.Error, EOFError):
        return None
    if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (VAD_RATE, 1, 2):
        w.close()
        return None

    def gen() -> Any:
        with w:
            while True:
                raw = w.readframes(block)
                if not raw:
                    return
                yield np.frombuffer(raw, dtype="<i2").astype(np.float32) * np.float32(1 / 32768)

    return gen()


def _decoded_blocks(path: Path) -> Any:
    """Float32 16 kHz mono blocks of any media file's first audio track, via PyAV."""
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path.name} cannot be read for speech detection ({exc})") from exc
    if not container.streams.audio:
        container.close()
        raise MediaError(f"{path.name} has no audio track to detect speech in", path=str(path))

    def gen() -> Any:
        with container:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=VAD_RATE)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1)
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1)

    return gen()


def speech_probabilities(
    source: str | Path | np.ndarray,
    *,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Silero speech probability per 32 ms window (512 samples at 16 kHz), float32.

    ``source`` is a 16 kHz mono 16-bit WAV (read straight, in ~1 s blocks: the
    ``audio16k.wav`` process_clip writes), any other media file (decoded and resampled with
    PyAV), or a 1-D float array of 16 kHz samples. Window ``i`` covers
    ``[i * WINDOW_S, (i + 1) * WINDOW_S)``. Raises VadUnavailable if the model cannot load.
    """
    runner = _Runner()
    if isinstance(source, np.ndarray):
        if source.ndim != 1:
            raise ValueError("samples must be a 1-D array of 16 kHz mono audio")
        runner.feed(source.astype(np.float32, copy=False), final=True)
        return runner.result()
    path = Path(source)
    blocks = _wav_blocks(path, WINDOW * 32)
    total = 0
    if blocks is not None:
        with wave.open(str(path), "rb") as w:
            total = w.getnframes()
    else:
        blocks = _decoded_blocks(path)
    done = 0
    for block in blocks:
        runner.feed(block)
        done += block.size
        if progress is not None and total:
            progress(min(1.0, done / total))
    runner.feed(np.zeros(0, np.float32), final=True)
    if progress is not None:
        progress(1.0)
    return runner.result()


def speech_mask(probs: np.ndarray, onset: float, offset: float) -> np.ndarray:
    """Hysteresis: speech starts at p >= onset and lasts until p drops below offset."""
    p = np.asarray(probs, dtype=np.float32)
    # State changes only at windows that are decisively above onset or below offset; every
    # window in between inherits the last decisive one (forward fill of the state).
    decisive = np.where(p >= onset, 1, np.where(p < offset, 0, -1)).astype(np.int8)
    idx = np.where(decisive >= 0, np.arange(p.size), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, decisive[np.maximum(idx, 0)], 0).astype(bool)


def detect_silences_vad(
    probs: np.ndarray,
    window_s: float,
    duration: float,
    settings: SilenceSettings | None = None,
    *,
    levels_db: np.ndarray | None = None,
    hop: float | None = None,
) -> list[Cut]:
    """Cuts for every stretch without speech lasting >= ``settings.min_silence``.

    Speech is decided with hysteresis (``vad_onset`` / ``vad_offset``), so a breath or a
    short hesitation inside a sentence never splits it: a pause shorter than min_silence is
    never cut, and ``padding`` of the pause is kept next to speech on each side. With a level
    track (``levels_db`` per ``hop`` s, ideally hum-rejected), the end of each cut is pulled
    back to where the speech energy starts rising, in case the model reacted late.
    """
    from .silence import Cut, SilenceSettings, _merge, _power_mean_db

    s = settings or SilenceSettings()
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    p = np.asarray(probs, dtype=np.float32)
    if p.size == 0 or duration <= 0:
        return []
    quiet = ~speech_mask(p, s.vad_onset, s.vad_offset)
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    levels = None if levels_db is None else np.asarray(levels_db, dtype=np.float32)
    if levels is not None and (hop is None or hop <= 0):
        raise ValueError("levels_db needs a positive hop")
    min_cut = 2 * min(window_s, hop or window_s)
    cuts: list[Cut] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        at_start = a == 0
        at_end = b == p.size or b * window_s >= duration
        t0 = a * window_s
        t1 = min(b * window_s, duration)
        if not at_end:
            t1 = max(t0, t1 - _ONSET_GUARD)
            if levels is not None and hop:
                t1 = _refine_onset(levels, hop, t0, t1)
        if t1 - t0 < s.min_silence - 1e-9:
            continue
        c0 = 0.0 if at_start else t0 + s.padding
        c1 = duration if at_end else t1 - s.padding
        c0, c1 = max(0.0, c0), min(duration, c1)
        if c1 - c0 < min_cut:
            continue
        mean_db = 0.0
        level_note = ""
        if levels is not None and hop:
            i0, i1 = int(round(t0 / hop)), int(round(t1 / hop))
            mean_db = round(_power_mean_db(levels[i0:i1]), 1)
            level_note = f", mean {mean_db:.0f} dBFS"
        cuts.append(
            Cut(
                start=max(0.0, round(c0, 6)),
                end=min(duration, round(c1, 6)),
                kind="silence",
                reason=f"no speech for {t1 - t0:.2f} s (VAD p<{s.vad_offset:g}{level_note})",
                level_db=mean_db,
            )
        )
    return _merge(cuts)


def _refine_onset(levels: np.ndarray, hop: float, t0: float, t1: float) -> float:
    """Move a pause's end back to where the level starts rising out of the pause's floor."""
    i0 = int(np.ceil(t0 / hop))
    i1 = min(int(t1 / hop), levels.size)
    if i1 - i0 < 4:
        return t1
    floor = float(np.percentile(levels[i0:i1], 30))
    lo = max(i0, i1 - int(round(_ONSET_LOOKBACK / hop)))
    j = i1
    # Walk back over the windows already louder than the floor: the speech's attack.
    while j > lo and levels[j - 1] > floor + _ONSET_RISE_DB:
        j -= 1
    return min(t1, j * hop)

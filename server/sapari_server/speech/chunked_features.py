"""Whisper's log-Mel features 15 s at a time, and for a WAV on disk only when asked for.

faster-whisper's FeatureExtractor builds the whole recording's STFT in one go: for a
10-minute talk its frame matrix, complex spectrum, the spectrum's complex64 copy and the
magnitudes peak at ~350 MB. This wrapper computes the same features chunk by chunk (every
STFT frame is independent) and applies faster-whisper's whole-recording normalisation (clamp
to the global max - 8, then scale) at the end.

Given ``wav_audio(path)`` instead of samples (what ``LocalTranscriber`` passes), nothing of
the recording is held: a first pass over the file finds the global maximum, and the
features come back as ``LazyFeatures``, whose slices (faster-whisper takes one 30 s window
at a time) are computed from the file on demand, on the same chunk grid, so they
are bit-identical to the eager result. Memory no longer grows with the recording's length
(the samples were 40 MB and the features 20 MB for every 10 minutes).
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np

# STFT frames per chunk: 15 s of audio. A chunk's STFT temporaries (frames, complex spectrum
# and magnitudes) are the features' peak; 60 s chunks cost ~5 MB more at the job's peak.
CHUNK_FRAMES = 1500


class ChunkedFeatureExtractor:
    """Drop-in for faster_whisper.feature_extractor.FeatureExtractor (same call, same output)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:  # n_samples, hop_length, time_per_frame, ...
        return getattr(self._inner, name)

    def __call__(
        self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None
    ) -> np.ndarray:
        fe = self._inner
        if chunk_length is not None:
            fe.n_samples = chunk_length * fe.sampling_rate
            fe.nb_max_frames = fe.n_samples // fe.hop_length
        n_fft = fe.n_fft
        if isinstance(waveform, WavAudio) and waveform.shape[-1] + padding > n_fft:
            return LazyFeatures(fe, _Padded(waveform.source, padding, n_fft // 2))
        if isinstance(waveform, WavAudio):
            waveform = waveform.source[0 : waveform.source.size]
        if waveform.ndim != 1 or waveform.shape[-1] + padding <= n_fft:
            return fe(waveform, padding=padding)  # tiny or batched input: the original path
        # The samples are read where they lie: the original's float32 copy, its zero padding
        # at the end and its centring (reflect padding of n_fft/2 each side) were three more
        # copies of the whole recording (40 MB each for 10 minutes) alive at once.
        x = waveform if waveform.dtype == np.float32 else waveform.astype(np.float32)
        padded = _Padded(x, padding, n_fft // 2)
        mel = np.empty((fe.mel_filters.shape[0], _n_frames(fe, padded)), np.float32)
        for k, part in enumerate(_chunks(fe, padded)):
            mel[:, k * CHUNK_FRAMES : k * CHUNK_FRAMES + part.shape[1]] = part
        return _normalise(mel[:, :-1])  # the original drops the last STFT frame


def _window(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype("float32")


def _n_frames(fe: Any, padded: _Padded) -> int:
    return 1 + (padded.size - fe.n_fft) // fe.hop_length


def _chunk(fe: Any, padded: _Padded, k: int) -> np.ndarray:
    """Log-mel of STFT frames [k * CHUNK_FRAMES, ...) before normalisation."""
    n_fft, hop = fe.n_fft, fe.hop_length
    f0 = k * CHUNK_FRAMES
    f1 = min(_n_frames(fe, padded), f0 + CHUNK_FRAMES)
    seg = padded[f0 * hop : (f1 - 1) * hop + n_fft]
    stft = fe.stft(seg, n_fft, hop, window=_window(n_fft), center=False, return_complex=True)
    magnitudes = np.abs(stft.astype("complex64")) ** 2
    return np.log10(np.clip(fe.mel_filters @ magnitudes, 1e-10, None)).astype(np.float32)


def _chunks(fe: Any, padded: _Padded) -> Any:
    for k in range(-(-_n_frames(fe, padded) // CHUNK_FRAMES)):
        yield _chunk(fe, padded, k)


def _normalise(log_spec: np.ndarray, top: np.floating | None = None) -> np.ndarray:
    top = log_spec.max() if top is None else top
    log_spec = np.maximum(log_spec, top - 8.0)
    return (log_spec + 4.0) / 4.0


class LazyFeatures:
    """The features of a WAV on disk, computed a chunk at a time when sliced.

    Quacks like the 2-D array faster-whisper's ``generate_segments`` reads: ``shape`` and
    ``features[:, a:b]``. Other indexing materialises the columns it names."""

    def __init__(self, fe: Any, padded: _Padded) -> None:
        self.fe, self.padded = fe, padded
        n = _n_frames(fe, padded)
        self.shape = (fe.mel_filters.shape[0], n - 1)  # the original drops the last frame
        self.ndim = 2
        self.dtype = np.dtype(np.float32)
        top = None
        for k, part in enumerate(_chunks(fe, padded)):  # the global maximum; nothing kept
            if (k + 1) * CHUNK_FRAMES >= n:
                part = part[:, :-1]
            if part.size:
                top = part.max() if top is None else max(top, part.max())
        self.top = top
        self._cache: dict[int, np.ndarray] = {}

    def _columns(self, a: int, b: int) -> np.ndarray:
        out = []
        for k in range(a // CHUNK_FRAMES, -(-b // CHUNK_FRAMES)):
            if k not in self._cache:
                # Windows move forward: keep the chunks one 30 s window spans.
                if len(self._cache) >= 3:
                    del self._cache[min(self._cache)]
                self._cache[k] = _normalise(_chunk(self.fe, self.padded, k), self.top)
            c0 = k * CHUNK_FRAMES
            out.append(self._cache[k][:, max(a, c0) - c0 : min(b, c0 + CHUNK_FRAMES) - c0])
        if not out:
            return np.zeros((self.shape[0], 0), np.float32)
        return out[0] if len(out) == 1 else np.concatenate(out, axis=1)

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if rows is Ellipsis:
            rows = slice(None)
        if not isinstance(cols, slice):
            raise TypeError("LazyFeatures are sliced by columns")
        a, b, step = cols.indices(self.shape[1])
        return self._columns(a, max(a, b))[rows, ::step]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._columns(0, self.shape[1])
        return out if dtype is None else out.astype(dtype)


class _Padded:
    """``np.pad(np.pad(x, (0, zeros)), half, mode="reflect")`` without copying ``x``.

    Slicing gives a view of ``x`` where the slice lies inside it; only slices that reach
    into the padding are gathered (the first and last chunk)."""

    def __init__(self, x: np.ndarray, zeros: int, half: int) -> None:
        self.x, self.zeros, self.half = x, zeros, half
        self.n = x.size + zeros  # the zero-padded signal the reflection mirrors
        self.size = self.n + 2 * half

    def __getitem__(self, s: slice) -> np.ndarray:
        a, b = s.start, s.stop
        lo, hi = a - self.half, b - self.half  # in the zero-padded signal's indices
        if lo >= 0 and hi <= self.x.size:
            return self.x[lo:hi]
        idx = np.arange(lo, hi)
        idx = np.abs(idx)  # left reflection: -i mirrors to i (the edge sample not repeated)
        idx = np.where(idx >= self.n, 2 * (self.n - 1) - idx, idx)  # right reflection
        out = np.zeros(idx.size, np.float32)
        inside = idx < self.x.size
        sel = idx[inside]
        if sel.size:
            first = int(sel.min())
            out[inside] = self.x[first : int(sel.max()) + 1][sel - first]
        return out


class _WavSamples:
    """A 16 kHz mono 16-bit WAV's samples as float32, read from the file when sliced
    (the same values ``speech.types.read_wav16k`` gives)."""

    dtype = np.dtype(np.float32)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with wave.open(str(self.path), "rb") as w:
            self.size = w.getnframes()
            self.rate = w.getframerate()

    def __getitem__(self, s: slice) -> np.ndarray:
        a, b, _ = s.indices(self.size)
        with wave.open(str(self.path), "rb") as w:
            w.setpos(a)
            raw = w.readframes(max(0, b - a))
        out = np.frombuffer(raw, dtype="<i2").astype(np.float32)
        out *= np.float32(1 / 32768)
        return out


class WavAudio(np.ndarray):
    """What faster-whisper is given in place of the samples: the recording's length and no
    data (a zero-strided array); ``ChunkedFeatureExtractor`` reads ``source`` instead."""

    source: _WavSamples

    def __array_finalize__(self, obj: Any) -> None:
        self.source = getattr(obj, "source", None)  # type: ignore[assignment]


def wav_audio(path: Path) -> WavAudio:
    """A stand-in for the samples of a 16 kHz mono 16-bit WAV (see ``WavAudio``)."""
    src = _WavSamples(path)
    a = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(src.size,),
                                        strides=(0,), writeable=False).view(WavAudio)
    a.source = src
    return a

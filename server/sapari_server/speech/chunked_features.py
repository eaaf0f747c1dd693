"""Whisper's log-Mel features computed a few minutes at a time, not all at once.

faster-whisper's FeatureExtractor builds the whole recording's STFT in one go: for a
10-minute talk its frame matrix, complex spectrum, the spectrum's complex64 copy and the
magnitudes peak at ~350 MB, the largest allocation of the whole job. The features themselves
are small (80 floats per 10 ms: 20 MB for 10 minutes). This wrapper computes the same
features chunk by chunk (every STFT frame is independent) and applies faster-whisper's
whole-recording normalisation (clamp to the global max - 8, then scale) at the end, so the
output is identical and the transient stays under ~20 MB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHUNK_FRAMES = 6000  # STFT frames per chunk: 60 s of audio


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
        n_fft, hop = fe.n_fft, fe.hop_length
        if waveform.ndim != 1 or waveform.shape[-1] + padding <= n_fft:
            return fe(waveform, padding=padding)  # tiny or batched input: the original path
        # The samples are read where they lie: the original's float32 copy, its zero padding
        # at the end and its centring (reflect padding of n_fft/2 each side) were three more
        # copies of the whole recording (40 MB each for 10 minutes) alive at once.
        x = waveform if waveform.dtype == np.float32 else waveform.astype(np.float32)
        padded = _Padded(x, padding, n_fft // 2)
        window = np.hanning(n_fft + 1)[:-1].astype("float32")
        n_frames = 1 + (padded.size - n_fft) // hop
        mel = np.empty((fe.mel_filters.shape[0], n_frames), np.float32)
        for f0 in range(0, n_frames, CHUNK_FRAMES):
            f1 = min(n_frames, f0 + CHUNK_FRAMES)
            seg = padded[f0 * hop : (f1 - 1) * hop + n_fft]
            stft = fe.stft(seg, n_fft, hop, window=window, center=False, return_complex=True)
            magnitudes = np.abs(stft.astype("complex64")) ** 2
            mel[:, f0:f1] = np.log10(np.clip(fe.mel_filters @ magnitudes, 1e-10, None))
        log_spec = mel[:, :-1]  # the original drops the last STFT frame
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0


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
        out[inside] = self.x[idx[inside]]
        return out

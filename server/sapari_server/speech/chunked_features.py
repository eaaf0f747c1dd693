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
        if waveform.dtype is not np.float32:
            waveform = waveform.astype(np.float32)
        if padding:
            waveform = np.pad(waveform, (0, padding))
        n_fft, hop = fe.n_fft, fe.hop_length
        if waveform.shape[-1] <= n_fft or waveform.ndim != 1:
            return fe(waveform, padding=0)  # tiny or batched input: the original path
        window = np.hanning(n_fft + 1)[:-1].astype("float32")
        # The original centres its frames (reflect padding of n_fft/2 each side) once.
        waveform = np.pad(waveform, (n_fft // 2, n_fft // 2), mode="reflect")
        n_frames = 1 + (waveform.shape[-1] - n_fft) // hop
        mel = np.empty((fe.mel_filters.shape[0], n_frames), np.float32)
        for f0 in range(0, n_frames, CHUNK_FRAMES):
            f1 = min(n_frames, f0 + CHUNK_FRAMES)
            seg = waveform[f0 * hop : (f1 - 1) * hop + n_fft]
            stft = fe.stft(seg, n_fft, hop, window=window, center=False, return_complex=True)
            magnitudes = np.abs(stft.astype("complex64")) ** 2
            mel[:, f0:f1] = np.log10(np.clip(fe.mel_filters @ magnitudes, 1e-10, None))
        log_spec = mel[:, :-1]  # the original drops the last STFT frame
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0

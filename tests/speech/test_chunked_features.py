"""Whisper features a chunk at a time, reading the samples in place: the same as faster-whisper's."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from sapari_server.speech import chunked_features
from sapari_server.speech.chunked_features import (
    ChunkedFeatureExtractor,
    LazyFeatures,
    _Padded,
    wav_audio,
)
from sapari_server.speech.types import frame_energy_db, read_wav16k, wav_energy_db

fw = pytest.importorskip("faster_whisper.feature_extractor")


def _speechlike(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    return (x + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("zeros", [0, 160, 450])
def test_padded_slices_are_np_pad_exactly(zeros: int) -> None:
    x = _speechlike(2000, 1)
    half = 200
    want = np.pad(np.pad(x, (0, zeros)), (half, half), mode="reflect")
    p = _Padded(x, zeros, half)
    assert p.size == want.size
    for a, b in [(0, 400), (0, want.size), (150, 900), (200, 2200), (1700, want.size),
                 (want.size - 400, want.size), (900, 1300)]:
        np.testing.assert_array_equal(p[a:b], want[a:b])
    inner = p[300:700]
    assert np.shares_memory(inner, x)  # no copy where the slice lies inside the samples


@pytest.mark.parametrize("n", [401, 16000 * 7 + 37, 16000 * 25])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_features_match_faster_whisper(n: int, dtype: type, monkeypatch: pytest.MonkeyPatch,
                                       ) -> None:
    monkeypatch.setattr(chunked_features, "CHUNK_FRAMES", 700)  # many chunks, odd edges
    x = _speechlike(n, 2).astype(dtype)
    inner = fw.FeatureExtractor()
    want = fw.FeatureExtractor()(x.copy())
    got = ChunkedFeatureExtractor(inner)(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    assert x.dtype == dtype and np.array_equal(x, _speechlike(n, 2).astype(dtype))  # untouched


def test_chunk_length_is_passed_on() -> None:
    inner = fw.FeatureExtractor()
    ChunkedFeatureExtractor(inner)(_speechlike(16000, 3), chunk_length=10)
    assert inner.n_samples == 160000 and inner.nb_max_frames == 1000


def _wav(path: Path, x: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.rint(x * 32767).astype("<i2").tobytes())
    return path


@pytest.mark.parametrize("n", [16000 * 7 + 37, 16000 * 25, 16000 * 14 - 160 * 3])
def test_a_wav_on_disk_gives_lazy_features_equal_to_the_eager_ones(
        n: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunked_features, "CHUNK_FRAMES", 700)
    path = _wav(tmp_path / "a.wav", _speechlike(n, 4))
    samples = read_wav16k(path)
    eager = ChunkedFeatureExtractor(fw.FeatureExtractor())(samples)
    lazy = ChunkedFeatureExtractor(fw.FeatureExtractor())(wav_audio(path))
    assert isinstance(lazy, LazyFeatures)
    assert lazy.shape == eager.shape
    np.testing.assert_allclose(eager, fw.FeatureExtractor()(samples), rtol=0, atol=2e-6)
    # How faster-whisper reads them: 30 s windows moving forward, past the end too.
    for seek in [0, 1000, 1390, 2950, 3000, eager.shape[1] - 5, eager.shape[1]]:
        got = lazy[:, seek : seek + 3000]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, eager[:, seek : seek + 3000])
    np.testing.assert_array_equal(lazy[..., 1234:], eager[..., 1234:])
    np.testing.assert_array_equal(np.asarray(lazy), eager)
    np.testing.assert_array_equal(wav_energy_db(path), frame_energy_db(samples))
    assert read_wav16k(path, check_only=True).size == 0


def test_a_wav_too_short_for_one_frame_gives_the_original_features(tmp_path: Path) -> None:
    path = _wav(tmp_path / "short.wav", _speechlike(150, 5))
    got = ChunkedFeatureExtractor(fw.FeatureExtractor())(wav_audio(path))
    np.testing.assert_array_equal(got, fw.FeatureExtractor()(read_wav16k(path)))

"""The streaming BS.1770 meter and the gain pass, on signals with known loudness."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest

from sapari_server.media.loudness import (
    CONTAINERS,
    LoudnessMeter,
    apply_gain,
    channel_weights,
    gain_for,
    measure,
)
from sapari_server.media.trim import trim
from sapari_server.pipelines.asset_edit import output_suffix
from sapari_testkit.generate import generate_talk


def _meter(x: np.ndarray, rate: int, names: list[str], block: int | None = None) -> float:
    m = LoudnessMeter(rate, channel_weights(names))
    step = block or x.shape[1]
    for i in range(0, x.shape[1], step):
        m.add(x[:, i:i + step])
    value = m.integrated()
    assert value is not None
    return value


def test_a_997_hz_sine_reads_as_the_standard_says() -> None:
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS; at -20 dBFS, -23.01.
    rate = 48000
    t = np.arange(rate * 5) / rate
    x = (10 ** (-20 / 20) * np.sin(2 * np.pi * 997 * t))[None, :]
    assert _meter(x, rate, ["FC"]) == pytest.approx(-23.01, abs=0.05)


@pytest.mark.parametrize("rate", [32000, 44100, 48000, 96000])
def test_agrees_with_pyloudnorm_whatever_the_block_size(rate: int) -> None:
    rng = np.random.default_rng(rate)
    n = rate * 6
    # Stereo noise with a quiet stretch (the gates matter) and uneven channel levels.
    x = rng.normal(0, 0.1, (2, n)) * np.array([[1.0], [0.5]])
    x[:, n // 3: n // 2] *= 0.01
    ours = _meter(x, rate, ["FL", "FR"])
    theirs = pyloudnorm.Meter(rate).integrated_loudness(x.T)
    assert ours == pytest.approx(theirs, abs=0.1)
    # Streaming in odd-sized blocks gives the same number as one call.
    assert _meter(x, rate, ["FL", "FR"], block=997) == pytest.approx(ours, abs=1e-9)


def test_surround_weights_and_lfe() -> None:
    assert list(channel_weights(["FL", "FR", "FC", "LFE", "BL", "BR"])) == \
        [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]


def test_silence_and_too_short() -> None:
    m = LoudnessMeter(48000, channel_weights(["FC"]))
    m.add(np.zeros((1, 48000)))
    assert m.integrated() == float("-inf")
    short = LoudnessMeter(48000, channel_weights(["FC"]))
    short.add(np.ones((1, 1000)) * 0.1)
    assert short.integrated() is None


def _tone_webm(path: Path) -> None:
    """VP9 + Opus, mono, 3 s: a source whose codecs an MP4 would not take."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libvpx-vp9", rate=25)
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        a = out.add_stream("libopus", rate=48000, layout="mono")
        for i in range(75):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 3, np.uint8),
                                           format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        t = np.arange(48000 * 3) / 48000
        sig = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        for k in range(0, len(sig), 960):
            fr = av.AudioFrame.from_ndarray(sig[None, k:k + 960], format="flt", layout="mono")
            fr.sample_rate, fr.pts = 48000, k
            out.mux(a.encode(fr))
        out.mux(v.encode(None))
        out.mux(a.encode(None))


def test_gain_pass_on_sources_without_a_named_layout_and_in_webm(tmp_path: Path) -> None:
    # A WAV has no channel layout ("2 channels"): the encoder needs a named one.
    wav = tmp_path / "a.wav"
    generate_talk(wav, pauses=[0.8, 1.0], seed=1, video=False, channels=2)
    suffix = output_suffix(wav.name, has_video=False, trimmed=False)
    assert suffix == ".m4a"
    gain, limited = gain_for(measure(wav), -20.0)
    assert not limited
    apply_gain(wav, tmp_path / f"g{suffix}", gain)
    assert measure(tmp_path / f"g{suffix}").lufs == pytest.approx(-20.0, abs=0.3)
    trimmed = output_suffix(wav.name, has_video=False, trimmed=True)
    done = trim(wav, tmp_path / f"t{trimmed}", 0.5, 2.5, container=CONTAINERS[trimmed])
    assert done.duration == pytest.approx(2.0, abs=0.01)

    webm = tmp_path / "v.webm"
    _tone_webm(webm)
    suffix = output_suffix(webm.name, has_video=True, trimmed=False)
    assert suffix == ".webm"  # the VP9 video is copied into its own container
    gain, _ = gain_for(measure(webm), -25.0)
    out = tmp_path / f"g{suffix}"
    apply_gain(webm, out, gain)
    assert measure(out).lufs == pytest.approx(-25.0, abs=0.3)
    with av.open(str(out)) as o, av.open(str(webm)) as s:
        assert [x.codec_context.name for x in o.streams] == ["vp9", "opus"]
        assert [bytes(p) for p in o.demux(o.streams.video[0]) if p.size] == \
            [bytes(p) for p in s.demux(s.streams.video[0]) if p.size]

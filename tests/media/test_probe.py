"""probe(): stream facts of generated media, and readable errors for bad uploads."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from sapari_server.media.errors import MediaError
from sapari_server.media.probe import MediaInfo, probe
from sapari_testkit.generate import generate_talk, make_bad_inputs


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_probe_h264_aac_mp4(tmp_path: Path) -> None:
    f = tmp_path / "talk.mp4"
    truth = generate_talk(
        f, pauses=[0.6], speech_lengths=[1.0, 1.2], channels=2, width=160, height=120
    )
    info = probe(f)
    assert info.duration == pytest.approx(truth.duration, abs=0.05)
    assert "mp4" in info.format_name
    assert info.size_bytes == f.stat().st_size
    assert info.video is not None and info.audio is not None
    assert (info.video.width, info.video.height) == (160, 120)
    assert info.video.fps == Fraction(30)
    assert info.video.codec == "h264"
    assert info.video.rotation == 0
    assert info.video.frame_count == pytest.approx(truth.duration * 30, abs=1)
    assert (info.audio.sample_rate, info.audio.channels, info.audio.codec) == (48000, 2, "aac")


def test_probe_ntsc_rate_and_json_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "ntsc.mp4"
    generate_talk(
        f, pauses=[0.5], speech_lengths=[0.8, 0.8], fps=Fraction(30000, 1001), width=160, height=120
    )
    info = probe(f)
    assert info.video is not None and info.video.fps == Fraction(30000, 1001)
    d = json.loads(json.dumps(info.to_dict()))
    assert d["video"]["fps"] == "30000/1001"
    assert MediaInfo.from_dict(d) == info


def test_probe_wav_and_audio_only(tmp_path: Path) -> None:
    w = tmp_path / "a.wav"
    truth = generate_talk(
        w, pauses=[0.5], speech_lengths=[0.8, 0.8], video=False, sample_rate=44100
    )
    info = probe(w)
    assert info.video is None
    assert info.audio is not None and info.audio.sample_rate == 44100 and info.audio.channels == 1
    assert info.duration == pytest.approx(truth.duration, abs=0.01)


def test_no_audio_probes_fine(bad: dict[str, Path]) -> None:
    info = probe(bad["no_audio"])
    assert info.audio is None and info.video is not None


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("text", "not a media file"),
        ("empty", "empty (0 bytes)"),
        ("truncated", "cut short"),
        ("no_streams", "no audio or video streams"),
    ],
)
def test_bad_inputs_raise_readable_errors(bad: dict[str, Path], kind: str, words: str) -> None:
    with pytest.raises(MediaError) as err:
        probe(bad[kind])
    msg = str(err.value)
    assert words in msg
    assert bad[kind].name in msg
    assert "upload" in msg  # says what to do, not only what broke


def test_truncated_faststart_mp4_is_detected(tmp_path: Path) -> None:
    # Index up front, media data cut off: opens fine, but samples point past the end.
    f = tmp_path / "fast.mp4"
    generate_talk(f, pauses=[0.5], speech_lengths=[1.0, 1.0], faststart=True, width=160, height=120)
    cut = tmp_path / "fast_cut.mp4"
    data = f.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(MediaError, match="truncated"):
        probe(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        probe(tmp_path / "nope.mp4")

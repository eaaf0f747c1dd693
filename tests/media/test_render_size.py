"""Render output in its source's size class: sizes near `source size x kept fraction`,
re-encodes no richer than the source, and the smart render copying long-GOP heads."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from sapari_server.media.probe import coding
from sapari_server.media.render import Piece, RenderSettings, render
from sapari_testkit.generate import generate_talk

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sapari_nb" / "samples" / "talk.mp4"
TOLERANCE = 0.10


def keeps(path: Path, cuts: list[tuple[float, float]], duration: float) -> list[Piece]:
    """The complement of `cuts`, padded 0.1 s into each cut as the editor's default."""
    out, t = [], 0.0
    for a, b in sorted(cuts):
        if a + 0.1 > t:
            out.append(Piece(path, t, a + 0.1))
        t = max(t, b - 0.1)
    if t < duration:
        out.append(Piece(path, t, duration))
    return out


def size_ratio(src: Path, out: Path, kept_seconds: float) -> float:
    duration = float(coding(src).duration)
    return out.stat().st_size / (src.stat().st_size * kept_seconds / duration)


def sample_pieces() -> list[Piece]:
    truth = json.loads(SAMPLE.with_suffix(".json").read_text())
    cuts = [(p["start"], p["end"]) for p in truth["pauses"]]
    cuts += [(f["start"], f["end"]) for f in truth["false_starts"]]
    return keeps(SAMPLE, cuts, truth["duration"])


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Piece]]:
    """A camera-like talk: x264 veryfast CRF 23, keyframe every 2 s, B-frames, 96k AAC."""
    path = tmp_path_factory.mktemp("size") / "talk.mp4"
    truth = generate_talk(
        path,
        pauses=[0.8, 1.6, 0.7, 2.2, 1.1, 0.9],
        speech_lengths=[6.0, 4.5, 7.0, 3.5, 5.0, 6.5, 4.0],
        width=640,
        height=360,
        crf=23,
        preset="veryfast",
        gop=60,
    )
    return path, keeps(path, truth.pauses, truth.duration)


@pytest.mark.parametrize("mode", ["smart", "exact"])
def test_sample_output_in_source_size_class(mode: str, tmp_path: Path) -> None:
    """The sample is CRF 30; the export asks for CRF 20 (the CLI's default). The output must
    not outgrow the source: CRF 30 kept, bitrates measured from the source."""
    pieces = sample_pieces()
    out = tmp_path / f"{mode}.mp4"
    result = render(pieces, out, RenderSettings(mode=mode, crf=20))  # type: ignore[arg-type]
    assert result.mode == mode, result.mode_reason
    ratio = size_ratio(SAMPLE, out, result.duration)
    assert abs(ratio - 1) <= TOLERANCE, ratio
    if mode == "smart":
        # 2 s GOPs, and heads of GOPs copied up to the cut: most frames are copied.
        assert result.copied_frames >= 0.7 * result.video_frames
    src, got = coding(SAMPLE), coding(out)
    assert src.audio is not None and got.audio is not None
    assert src.audio.bit_rate is not None and got.audio.bit_rate is not None
    assert got.audio.bit_rate <= 1.1 * src.audio.bit_rate


@pytest.mark.parametrize("mode", ["smart", "exact"])
def test_camera_talk_output_in_source_size_class(
    mode: str, talk: tuple[Path, list[Piece]], tmp_path: Path
) -> None:
    path, pieces = talk
    out = tmp_path / f"{mode}.mp4"
    result = render(pieces, out, RenderSettings(mode=mode))  # type: ignore[arg-type]
    assert result.mode == mode, result.mode_reason
    ratio = size_ratio(path, out, result.duration)
    assert abs(ratio - 1) <= TOLERANCE, ratio
    if mode == "exact":
        # Keyframes as often as the source's, so the export can be smart-rendered again.
        assert coding(out).video.gop == coding(path).video.gop  # type: ignore[union-attr]


def test_unmatched_render_keeps_asked_quality(tmp_path: Path) -> None:
    """match_source=False is the old behaviour: CRF as asked, 128k audio; on a CRF 30
    source that output is much larger, which is what matching prevents."""
    pieces = sample_pieces()
    out = tmp_path / "unmatched.mp4"
    result = render(pieces, out, RenderSettings(mode="exact", crf=20, match_source=False))
    assert size_ratio(SAMPLE, out, result.duration) > 1 + TOLERANCE
    with av.open(str(out)) as c:
        assert c.streams.audio[0].bit_rate > 115_000


def test_smart_copies_head_of_a_long_gop(tmp_path: Path) -> None:
    """x264's default 250-frame GOP: no kept piece holds a whole GOP, yet the piece that
    starts at a keyframe is copied up to the reference boundary before its end."""
    src = tmp_path / "long_gop.mp4"
    generate_talk(src, pauses=[1.0], speech_lengths=[5.0, 4.0], crf=30, preset="slow")
    pieces = [Piece(src, 0.0, 4.5), Piece(src, 5.5, 9.0)]
    result = render(pieces, tmp_path / "out.mp4", RenderSettings(mode="smart"))
    assert result.mode == "smart", result.mode_reason
    first = round(4.5 * 30)
    assert result.copied_frames >= first - 4  # at most a B-pyramid's worth re-encoded

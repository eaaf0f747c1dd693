"""Asset edits over HTTP: trim and loudness make NEW clips, checked with PyAV and pyloudnorm."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest

from sapari_nb import Client
from sapari_nb.errors import SapariError
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth, generate_talk

from ..conftest import new_user_client, start_server, stored_bytes

WAIT = 180.0


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    s = start_server(tmp_path_factory.mktemp("assets"), transcriber="none",
                     preview_artifacts=False)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TalkTruth]:
    # Stereo, a voice-like signal over a quiet room, a keyframe every second (so a trim
    # that starts on one can copy whole GOPs).
    path = tmp_path_factory.mktemp("asset-media") / "speech.mp4"
    truth = generate_talk(path, pauses=[0.8, 1.5, 0.6], seed=11, channels=2, voice="formant",
                          noise_db=-55, lead_silence=0.3, gop=30)
    return path, truth


@pytest.fixture(scope="module")
def c(srv: EmbeddedServer) -> Iterator[Client]:
    with Client(srv.url, srv.token, progress=False) as client:
        yield client


@pytest.fixture(scope="module")
def ready(c: Client, source: tuple[Path, TalkTruth]) -> dict[str, str]:
    project = c.create_project("asset edits")
    after = c.cursor()
    clip = c.wait_clip(c.upload(project.id, source[0]), after=after, timeout=WAIT)
    return {"project": project.id, "clip": clip.id}


def _stored(srv: EmbeddedServer, clip_id: str, dest: Path) -> Path:
    """A copy of the clip's stored source bytes (in-process: the test owns the server)."""
    dest.write_bytes(stored_bytes(srv, clip_id))
    return dest


def _decoded(path: Path) -> tuple[float, float]:
    """(video seconds by counting frames, audio seconds by counting samples)."""
    with av.open(str(path)) as f:
        v = f.streams.video[0]
        fps = float(v.average_rate or v.guessed_rate)
        frames = sum(1 for _ in f.decode(video=0))
    with av.open(str(path)) as f:
        a = f.streams.audio[0]
        samples = sum(fr.samples for fr in f.decode(audio=0))
        rate = a.rate
    return frames / fps, samples / rate


def _lufs(path: Path) -> float:
    """pyloudnorm's BS.1770 integrated loudness: an implementation independent of ours."""
    with av.open(str(path)) as f:
        a = f.streams.audio[0]
        r = av.AudioResampler(format="fltp", layout=a.layout.name, rate=a.rate)
        data = np.concatenate([x.to_ndarray() for fr in f.decode(a) for x in r.resample(fr)],
                              axis=1)
        rate = a.rate
    return float(pyloudnorm.Meter(rate).integrated_loudness(data.T.astype(np.float64)))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit(c: Client, clip_id: str, project_id: str, **kw: object):  # type: ignore[no-untyped-def]
    after = c.cursor()
    out = c.edit_asset(clip_id, **kw)  # type: ignore[arg-type]
    assert out.clip.status == "editing" and out.clip.source_clip_id == clip_id
    assert out.clip.project_id == project_id
    return c.wait_clip(out.clip, after=after, timeout=WAIT)


@pytest.mark.parametrize("start", [1.0, 0.0])
def test_trim_makes_a_new_clip_of_the_asked_length(
        c: Client, srv: EmbeddedServer, ready: dict[str, str], tmp_path: Path,
        source: tuple[Path, TalkTruth], start: float) -> None:
    before = _sha(_stored(srv, ready["clip"], tmp_path / "before.mp4"))
    end = 4.5
    new = _edit(c, ready["clip"], ready["project"], trim=(start, end))
    assert new.status == "ready" and new.id != ready["clip"]
    out = _stored(srv, new.id, tmp_path / "trimmed.mp4")
    video_s, audio_s = _decoded(out)
    frame = 1 / 30
    assert abs(video_s - (end - start)) <= frame + 1e-6, video_s
    assert abs(audio_s - video_s) <= frame, (audio_s, video_s)
    assert abs((new.duration or 0) - (end - start)) <= frame + 0.03
    assert new.origin and new.origin["trim"] == {"start": start, "end": end}
    result = new.origin["result"]
    if start == 0.0:  # starts on a keyframe: whole GOPs inside the range are copied
        assert result["trim_mode"] == "smart" and result["copied_frames"] >= 60, result
    # The original is intact: same bytes, still ready, still listed.
    assert _sha(_stored(srv, ready["clip"], tmp_path / "after.mp4")) == before
    assert c.clip(ready["clip"]).status == "ready"
    assert {ready["clip"], new.id} <= {x.id for x in c.clips(ready["project"])}


@pytest.mark.parametrize("target", [-30.0, -18.0])
def test_loudness_reaches_the_target(c: Client, srv: EmbeddedServer, ready: dict[str, str],
                                     tmp_path: Path, source: tuple[Path, TalkTruth],
                                     target: float) -> None:
    src_lufs = _lufs(source[0])
    new = _edit(c, ready["clip"], ready["project"], loudness_lufs=target)
    out = _stored(srv, new.id, tmp_path / "loud.mp4")
    measured = _lufs(out)
    print(f"source {src_lufs:.2f} LUFS -> target {target} -> {measured:.2f} LUFS")
    assert abs(measured - target) <= 1.0, (measured, target, src_lufs)
    result = new.origin["result"]  # type: ignore[index]
    assert abs(result["measured_lufs"] - src_lufs) <= 0.2  # our meter agrees with pyloudnorm
    assert abs(result["output_lufs"] - measured) <= 0.2
    assert result["peak_limited"] is False
    # Gain only: the video is the source's, packet for packet; the length is unchanged.
    video_s, audio_s = _decoded(out)
    assert abs(video_s - source[1].duration) <= 1 / 30 + 1e-6
    assert abs(audio_s - video_s) <= 0.05
    with av.open(str(out)) as o, av.open(str(source[0])) as s:
        got = [bytes(p) for p in o.demux(o.streams.video[0]) if p.size]
        want = [bytes(p) for p in s.demux(s.streams.video[0]) if p.size]
    assert got == want
    if target == -30.0:
        # And back up: a quiet clip raised by 10 dB reaches its target too (peaks allow it).
        louder = _edit(c, new.id, ready["project"], loudness_lufs=-20.0)
        assert louder.source_clip_id == new.id
        assert louder.origin["result"]["gain_db"] > 9  # type: ignore[index]
        assert abs(_lufs(_stored(srv, louder.id, tmp_path / "up.mp4")) - (-20.0)) <= 1.0


def test_trim_and_loudness_together(c: Client, srv: EmbeddedServer, ready: dict[str, str],
                                    tmp_path: Path) -> None:
    new = _edit(c, ready["clip"], ready["project"], trim=(0.5, 3.5), loudness_lufs=-24.0,
                filename="short and quiet.mp4")
    assert new.filename == "short and quiet.mp4"
    out = _stored(srv, new.id, tmp_path / "both.mp4")
    video_s, _ = _decoded(out)
    assert abs(video_s - 3.0) <= 1 / 30 + 1e-6
    assert abs(_lufs(out) - (-24.0)) <= 1.0


def test_peak_ceiling_holds_back_gain(c: Client, srv: EmbeddedServer, ready: dict[str, str],
                                      tmp_path: Path) -> None:
    # -6 LUFS would need more gain than the peaks allow: the result stops at -1 dBFS peak
    # and says so, rather than clipping.
    new = _edit(c, ready["clip"], ready["project"], loudness_lufs=-6.0)
    result = new.origin["result"]  # type: ignore[index]
    assert result["peak_limited"] is True
    assert result["output_peak_db"] <= -0.5
    assert _lufs(_stored(srv, new.id, tmp_path / "loud.mp4")) < -6.0


def test_bad_edits_are_refused_with_reasons(c: Client, srv: EmbeddedServer,
                                            ready: dict[str, str]) -> None:
    clip = c.clip(ready["clip"])
    count = len(c.clips(ready["project"]))
    cases: list[tuple[dict[str, object], int, str]] = [
        ({}, 422, "nothing to do"),
        ({"trim": (3.0, 2.0)}, 422, "end must be after its start"),
        ({"trim": (clip.duration + 5, clip.duration + 9)}, 422, "long"),
        ({"trim": (1.0, 1.05)}, 422, "shorter than"),
        ({"loudness_lufs": -100.0}, 422, "loudness_lufs"),
        ({"trim": (1.0, 1.2), "loudness_lufs": -20.0}, 422, "0.4 s"),
    ]
    for kw, status, words in cases:
        with pytest.raises(SapariError) as e:
            c.edit_asset(ready["clip"], **kw)  # type: ignore[arg-type]
        assert e.value.status == status, (kw, e.value)
        assert words in e.value.detail, (kw, e.value.detail)
    # A clip still being made (or processed) cannot be edited yet.
    pending = c.edit_asset(ready["clip"], trim=(0.0, 2.0))
    with pytest.raises(SapariError) as e:
        c.edit_asset(pending.clip.id, loudness_lufs=-20.0)
    assert e.value.status == 409 and "wait for ClipReady" in e.value.detail
    count += 1
    other = new_user_client(srv, "asset-stranger")
    try:
        with pytest.raises(SapariError) as e:
            other.edit_asset(ready["clip"], loudness_lufs=-20.0)
        assert e.value.status == 404
    finally:
        other.close()
    assert len(c.clips(ready["project"])) == count

"""The whole flow over HTTP against a real uvicorn server: upload, process, analyze, render."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import httpx
import pytest

from sapari_nb import Client
from sapari_nb.flow import edit_file
from sapari_testkit.generate import TalkTruth


def decoded_durations(path: Path) -> tuple[float, float, Fraction]:
    """(video seconds by counting frames, audio seconds by counting samples, fps)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        fps = v.average_rate or v.guessed_rate
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(audio=0))
        rate = a.rate
    return frames / float(fps), samples / rate, fps


def test_whole_flow_downloads_cut_video_in_sync(client: Client, talk: tuple[Path, TalkTruth],
                                                tmp_path: Path) -> None:
    src, truth = talk
    out = tmp_path / "cut.mp4"
    result = edit_file(client, src, out, edits_json=tmp_path / "edits.json")
    assert out.stat().st_size > 10_000

    exp = client.export_status(result.export_id)
    assert [e.id for e in client.exports(result.project_id)] == [exp.id]
    keeps = exp.result["keep_segments"]
    expected = sum(k["end"] - k["start"] for k in keeps)
    video_s, audio_s, fps = decoded_durations(out)
    frame = 1 / float(fps)
    assert abs(video_s - expected) <= frame + 1e-6
    assert abs(audio_s - video_s) <= frame
    assert abs(result.output_duration - expected) <= frame + 1e-6

    # Every pause longer than the minimum (0.5 s) is cut, padding kept, nothing else cut.
    cuts = json.loads((tmp_path / "edits.json").read_text())
    assert all(set(c) == {"start", "end", "kind", "reason"} for c in cuts)
    long_pauses = [p for p in truth.pauses if p[1] - p[0] >= 0.5]
    assert len(cuts) == len(long_pauses)
    pad = 0.1
    for (ps, pe), c in zip(long_pauses, cuts, strict=True):
        exp_start = ps if ps == 0 else ps + pad
        exp_end = pe if pe >= truth.duration - 1e-6 else pe - pad
        assert abs(c["start"] - exp_start) <= 0.05, (c, ps, pe)
        assert abs(c["end"] - exp_end) <= 0.05, (c, ps, pe)
    for c in cuts:
        for s, e in truth.speech:
            assert c["end"] <= s + 1e-3 or c["start"] >= e - 1e-3, f"cut {c} reaches into speech"


def test_review_changes_what_is_rendered(client: Client, talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    project = client.create_project("review")
    after = client.cursor()
    clip = client.wait_clip(client.upload(project.id, src), after=after)
    assert clip.status == "ready" and clip.duration
    run = client.wait_analysis(client.analyze(project.id), after=after)
    edits = client.edits(project.id)
    assert run.summary["edits"] == len(edits) >= 3
    assert all(e.status == "proposed" and e.reason for e in edits)
    kinds = {a.kind: a for a in client.artifacts(clip.id)}
    assert set(kinds) == {"levels", "peaks", "audio", "peak_pyramid", "proxy", "thumbnails"}
    assert kinds["proxy"].meta["height"] == 240 and "path" not in kinds["proxy"].meta
    assert kinds["peak_pyramid"].meta["levels"]
    proxy = httpx.get(kinds["proxy"].url)
    assert proxy.status_code == 200 and proxy.content[4:8] == b"ftyp"
    client.accept(edits[0].id)
    client.reject(edits[1].id)
    manual = client.add_edit(project.id, clip.id, 1.0, 1.5, reason="cough")
    exp = client.wait_export(client.export(project.id), after=after)
    cut = {(round(c["start"], 3), round(c["end"], 3)) for c in exp.result["cuts"]}
    assert (round(edits[0].start, 3), round(edits[0].end, 3)) in cut
    assert (round(edits[1].start, 3), round(edits[1].end, 3)) not in cut
    assert (manual.start, manual.end) in cut
    assert len(cut) == 2
    expected = clip.duration - sum(e - s for s, e in cut)
    assert abs(exp.duration - expected) <= 1 / 30 + 1e-6


def test_cli_edit_writes_video_and_edits_json(tmp_path: Path, talk: tuple[Path, TalkTruth]) -> None:
    src, truth = talk
    out, edits = tmp_path / "o.mp4", tmp_path / "e.json"
    proc = subprocess.run(
        [sys.executable, "-m", "sapari_nb.cli", "edit", str(src), "-o", str(out), "--edits",
         str(edits), "--data-dir", str(tmp_path / "data"), "-q"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "cuts" in proc.stdout
    cuts = json.loads(edits.read_text())
    assert len(cuts) == sum(1 for p in truth.pauses if p[1] - p[0] >= 0.5)
    assert decoded_durations(out)[0] < truth.duration - 3


def test_cli_refuses_missing_input_clearly(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sapari_nb.cli", "edit", str(tmp_path / "nope.mp4"),
                           "-o", str(tmp_path / "o.mp4")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_sample_quickstart(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sapari_nb.cli", "edit", "--sample", "-o", str(tmp_path / "s.mp4"),
         "--edits", str(tmp_path / "s.json"), "--ephemeral", "-q"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads((tmp_path / "s.json").read_text())) >= 3


def test_noisy_room_pauses_found_through_the_api(client: Client, tmp_path: Path) -> None:
    """Pink noise at -32 dBFS plus 50 Hz hum: the default (VAD + adaptive floor) still cuts."""
    from sapari_testkit.generate import generate_talk

    src = tmp_path / "noisy.mp4"
    pauses = [0.8, 1.2, 0.75, 1.6, 0.9, 2.0, 1.0, 0.3]
    truth = generate_talk(src, pauses=pauses, seed=11, voice="formant", noise_db=-32,
                          noise_color="pink", hum_db=-30)
    project = client.create_project("noisy")
    after = client.cursor()
    client.wait_clip(client.upload(project.id, src), after=after)
    client.wait_analysis(client.analyze(project.id), after=after)
    edits = client.edits(project.id)
    long_pauses = [p for p in truth.pauses if p[1] - p[0] >= 0.75]
    found = [p for p in long_pauses
             if any(e.start < p[1] and e.end > p[0] for e in edits)]
    assert len(found) / len(long_pauses) >= 0.95
    for e in edits:
        for s, t in truth.speech:
            assert e.end <= s + 0.02 or e.start >= t - 0.02, f"{e} reaches into speech"


@pytest.mark.parametrize("container, codec, vname, aname", [
    ("webm", "vp9", "vp9", "opus"),
    ("mkv", "av1", "av1", "opus"),
    ("mov", "h264", "h264", "aac"),
])
def test_export_containers_and_codecs(client: Client, talk: tuple[Path, TalkTruth],
                                      tmp_path: Path, container: str, codec: str, vname: str,
                                      aname: str) -> None:
    project = client.create_project(f"fmt-{container}")
    after = client.cursor()
    client.wait_clip(client.upload(project.id, talk[0]), after=after)
    client.wait_analysis(client.analyze(project.id), after=after)
    exp = client.wait_export(client.export(project.id, container=container, video_codec=codec,
                                           apply="accepted_and_proposed", crf=35), after=after)
    out = client.download(exp.id, tmp_path / f"cut.{container}")
    with av.open(str(out)) as c:
        # The codec's id, not the decoder's name (AV1 decodes through libdav1d).
        assert c.streams.video[0].codec_context.codec.canonical_name == vname
        assert c.streams.audio[0].codec_context.codec.canonical_name == aname
    video_s, audio_s, fps = decoded_durations(out)
    expected = sum(k["end"] - k["start"] for k in exp.result["keep_segments"])
    assert abs(video_s - expected) <= 1 / float(fps) + 1e-6
    # Opus pads to 20 ms frames; the cut itself is exact (checked on the video).
    assert abs(audio_s - video_s) <= max(1 / float(fps), 0.025)


def test_webm_needs_a_webm_codec(client: Client) -> None:
    from sapari_nb import SapariError

    project = client.create_project("bad-fmt")
    with pytest.raises(SapariError) as e:
        client.export(project.id, container="webm", video_codec="h264")
    assert e.value.status == 422 and "webm carries vp9 or av1" in e.value.detail

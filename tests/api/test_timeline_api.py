"""`GET /projects/{id}/timeline` and `sapari-nb edit --timeline`: NLE files of the real cut."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import opentimelineio as otio
import pytest

from sapari_nb import Client, SapariError
from sapari_testkit.generate import TalkTruth


@pytest.fixture(scope="module")
def edited(server, talk: tuple[Path, TalkTruth]):  # noqa: ANN001, ANN201
    with Client(server.url, server.token, progress=False) as client:
        project = client.create_project("nle cut")
        after = client.cursor()
        clip = client.wait_clip(client.upload(project.id, talk[0]), after=after)
        client.wait_analysis(client.analyze(project.id), after=after)
        client.accept_all(project.id)
        exp = client.wait_export(client.export(project.id), after=after)
        return project.id, clip, exp


def test_otio_matches_rendered_keeps(client: Client, edited, talk) -> None:  # noqa: ANN001
    project_id, clip, exp = edited
    tl = otio.adapters.read_from_string(
        client.timeline(project_id, "otio", media_dir="/media/shoot").decode(),
        adapter_name="otio_json")
    video = tl.video_tracks()[0]
    got = [(c.source_range.start_time.to_seconds(),
            c.source_range.end_time_exclusive().to_seconds()) for c in video.find_clips()]
    want = [(k["start"], k["end"]) for k in exp.result["keep_segments"]]
    assert len(got) == len(want)
    for (a, b), (c, d) in zip(got, want, strict=True):
        assert abs(a - c) <= 1 / 30 + 1e-6 and abs(b - d) <= 1 / 30 + 1e-6
    ref = video.find_clips()[0].media_reference
    assert ref.target_url == f"file:///media/shoot/{clip.filename}"


def test_fcpxml_premiere_edl_point_at_media_dir(client: Client, edited) -> None:  # noqa: ANN001
    project_id, clip, exp = edited
    fcpxml = ET.fromstring(client.timeline(project_id, "fcpxml", media_dir="/media/shoot"))
    srcs = [a.get("src") for a in fcpxml.iter("asset")]
    assert srcs and all(s.startswith("file:///media/shoot/") for s in srcs)
    assert len(list(fcpxml.iter("asset-clip"))) == len(exp.result["keep_segments"])
    premiere = ET.fromstring(client.timeline(project_id, "premiere", media_dir="/media/shoot"))
    assert premiere.tag == "xmeml"
    assert any((p.text or "").startswith("file:///media/shoot/") for p in premiere.iter("pathurl"))
    edl = client.timeline(project_id, "edl").decode()
    assert edl.startswith("TITLE:") and edl.count("\n00") >= len(exp.result["keep_segments"])


def test_timeline_errors_are_clear(client: Client, edited) -> None:  # noqa: ANN001
    project_id, _, _ = edited
    with pytest.raises(SapariError) as e:
        client.timeline(project_id, "srt")
    assert e.value.status == 422 and "transcript" in e.value.detail
    with pytest.raises(SapariError) as e:
        client.timeline(project_id, "fcpxml", media_dir="relative/dir")
    assert e.value.status == 422 and "absolute" in e.value.detail
    with pytest.raises(SapariError) as e:
        client.timeline(project_id, "avid")
    assert e.value.status == 422
    for fmt in ("otio", "fcpxml", "premiere"):
        with pytest.raises(SapariError) as e:
            client.timeline(project_id, fmt)
        assert e.value.status == 422 and "media_dir" in e.value.detail


def test_timelines_never_carry_server_paths_or_raw_names(client: Client, server,  # noqa: ANN001
                                                          talk) -> None:  # noqa: ANN001
    """Without media_dir a timeline used to hold the server's object paths; with it, a file
    name like ../../etc/passwd.mp4 was joined in raw."""
    project = client.create_project("hostile names")
    after = client.cursor()
    ticket = client.presign(project.id, "../../etc/passwd.mp4", talk[0].stat().st_size)
    client.put_bytes(ticket, talk[0])
    client.wait_clip(client.confirm(ticket.clip.id), after=after)
    data_dir = str(server.settings.data_dir)
    for fmt, kw in (("otio", {"media_dir": "/media/shoot"}), ("edl", {}),
                    ("fcpxml", {"media_dir": "/media/shoot"}),
                    ("premiere", {"media_dir": "/media/shoot"})):
        text = client.timeline(project.id, fmt, **kw).decode()
        assert data_dir not in text and "/objects/" not in text
        assert "etc/passwd" not in text and "..%2F" not in text and "../" not in text
    otio_text = client.timeline(project.id, "otio", media_dir="/media/shoot").decode()
    tl = otio.adapters.read_from_string(otio_text, adapter_name="otio_json")
    urls = {c.media_reference.target_url for c in tl.find_clips()}
    assert urls == {"file:///media/shoot/passwd.mp4"}


def test_cli_timeline_flag(tmp_path: Path, talk: tuple[Path, TalkTruth]) -> None:
    out = tmp_path / "cut.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "sapari_nb.cli", "edit", str(talk[0]), "-o", str(out),
         "--timeline", "fcpxml", "--timeline", "edl", "--data-dir", str(tmp_path / "d"), "-q"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(out.with_suffix(".fcpxml")).getroot()
    assert root.tag == "fcpxml"
    assert str(talk[0].resolve().parent) in root.find(".//asset").get("src")
    assert out.with_suffix(".edl").read_text().startswith("TITLE:")

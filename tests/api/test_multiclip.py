"""Several clips on one timeline: order, edits per clip, one render across the joins."""

from __future__ import annotations

from pathlib import Path

from sapari_nb import Client
from sapari_testkit.generate import generate_talk

from .test_flow import decoded_durations


def test_two_clips_render_in_order_across_the_join(client: Client, tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    ta = generate_talk(a, pauses=[1.0], seed=3)
    tb = generate_talk(b, pauses=[0.9, 1.2], seed=4, tail_silence=0.8)
    project = client.create_project("two")
    after = client.cursor()
    cb = client.wait_clip(client.upload(project.id, b), after=after)
    ca = client.wait_clip(client.upload(project.id, a), after=after)
    assert [c.id for c in client.clips(project.id)] == [cb.id, ca.id]
    client.move_clip(ca.id, 0)
    assert [c.id for c in client.clips(project.id)] == [ca.id, cb.id]
    run = client.wait_analysis(client.analyze(project.id), after=after)
    edits = client.edits(project.id)
    assert {e.clip_id for e in edits} == {ca.id, cb.id}
    assert run.summary["edits"] == len(edits) == 4
    client.accept_all(project.id)
    exp = client.wait_export(client.export(project.id), after=after)
    keeps = exp.result["keep_segments"]
    # Clip a's pieces come first, then clip b's.
    order = [k["clip_id"] for k in keeps]
    assert order == sorted(order, key=[ca.id, cb.id].index)
    out = client.download(exp.id, tmp_path / "out.mp4")
    video_s, audio_s, fps = decoded_durations(out)
    cut = sum(e.end - e.start for e in edits)
    expected = sum(k["end"] - k["start"] for k in keeps)
    assert abs(video_s - expected) <= 1 / float(fps) + 1e-6
    assert abs(audio_s - video_s) <= 1 / float(fps)
    assert abs(expected - (ta.duration + tb.duration - cut)) <= 3 / float(fps)

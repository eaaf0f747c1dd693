"""Every widget's traits after load, against the real session server."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sapari_nb
from sapari_nb import Client
from sapari_nb.widgets.base import SapariWidget
from sapari_nb.widgets.state import ProjectState

from .conftest import Ready

CLASSES = [("Upload", "upload"), ("Timeline", "timeline"), ("EditReview", "review"),
           ("Export", "export"), ("ProjectView", "project")]
TRAITS = {"view", "project", "server", "clips", "peaks", "peaks_meta", "words", "edits",
          "analysis", "export_state", "export_settings", "uploads", "upload_route",
          "playhead", "_outbox", "_acked", "message"}


def test_import_sapari_nb_does_not_import_anywidget() -> None:
    code = ("import sys, sapari_nb; from sapari_nb.widgets.state import ProjectState; "
            "assert 'anywidget' not in sys.modules, 'anywidget imported'; "
            "sapari_nb.ProjectView; assert 'anywidget' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("name", "view"), CLASSES)
def test_widget_traits_after_load(wclient: Client, ready: Ready, name: str, view: str) -> None:
    cls = getattr(sapari_nb, name)
    w = cls(wclient, ready.project_id)
    try:
        assert isinstance(w, SapariWidget)
        assert TRAITS <= set(w.trait_names(sync=True))
        assert w.view == view
        assert w.project["id"] == ready.project_id
        assert w.server["url"] == wclient.url
        assert w.server["proxy_port"] == int(wclient.url.rsplit(":", 1)[1])
        assert w.server["status"] == "connected"
        [clip] = w.clips
        assert clip["id"] == ready.clip_id and clip["status"] == "ready"
        assert clip["offset"] == 0.0 and clip["duration"] == pytest.approx(ready.duration)
        assert clip["proxy_url"].startswith(wclient.url + "/storage/")
        assert (clip["width"], clip["height"]) == (320, 240)
        assert w.words[0] == [0.8, 1.1, "so", ready.clip_id]
        assert len(w.words) == 6
        assert w.edits and all(e["kind"] == "silence" and e["status"] in
                               ("proposed", "accepted", "rejected") for e in w.edits)
        e = w.edits[0]
        assert set(e) == {"id", "clip_id", "kind", "status", "t0", "t1", "start", "end",
                          "reason", "source", "confidence", "words"}
        assert e["t0"] == pytest.approx(e["start"]) and e["t1"] > e["t0"]
        assert w.analysis["status"] == "succeeded" and w.analysis["summary"]["edits"] >= 1
        assert w.export_state["status"] == "idle"
        assert w.export_settings["container"] == "mp4"
        assert w.uploads == [] and w.message == "" and w._acked == 0
    finally:
        w.close()
    assert w.state.closed and not w.state.stream.running


def test_client_show_gives_a_project_view(wclient: Client, ready: Ready) -> None:
    w = wclient.show(ready.project_id)
    try:
        assert isinstance(w, sapari_nb.ProjectView) and w.view == "project"
        assert w.project["id"] == ready.project_id
    finally:
        w.close()


def test_ready_clip_gives_peaks_of_the_right_length(wclient: Client, ready: Ready) -> None:
    st = ProjectState(wclient, ready.project_id, lambda changes: None)
    try:
        v = st.values()
        meta = v["peaks_meta"]
        assert meta["per_second"] == 100.0
        # One min/max int16 pair per 1/100 s of the clip, on the project axis.
        assert meta["count"] == round(ready.duration * 100)
        assert len(v["peaks"]) == meta["count"] * 4
        assert meta["clips"] == [{"id": ready.clip_id, "offset": 0.0, "index": 0,
                                  "count": meta["count"]}]
        # The bytes are the pyramid's level 0 as stored: compare with a full download.
        art = next(a for a in wclient.artifacts(ready.clip_id) if a.kind == "peak_pyramid")
        whole = wclient.signed_bytes(art.url)
        level0 = art.meta["levels"][0]
        assert v["peaks"] == whole[level0["offset"]:level0["offset"] + meta["count"] * 4]
        assert any(v["peaks"])  # a talk is not silence
    finally:
        st.close()


def test_edit_rows_carry_the_words_inside(wclient: Client, ready: Ready) -> None:
    """An edit row carries the transcript words whose middle lies inside it."""
    st = ProjectState(wclient, ready.project_id, lambda changes: None)
    try:
        cut = wclient.add_edit(ready.project_id, ready.clip_id, 1.25, 2.2)
        st.reload("edits")
        row = next(e for e in st.values()["edits"] if e["id"] == cut.id)
        assert row["words"] == "today we"
        assert row["kind"] == "manual" and row["status"] == "accepted"
    finally:
        wclient.set_edit(cut.id, status="rejected")
        st.close()

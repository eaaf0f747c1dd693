"""Actions from the browser change the server and the traits; code changes reach widgets."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from sapari_nb import Client, ProjectView
from sapari_nb.widgets.state import ProjectState

from .conftest import Ready, wait_until


class Recorder:
    """A sink that keeps every batch of changes the state pushed."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []

    def __call__(self, changes: dict[str, Any]) -> None:
        self.batches.append(changes)

    def pushed(self, name: str) -> list[Any]:
        return [b[name] for b in self.batches if name in b]


@pytest.fixture
def state(wclient: Client, ready: Ready) -> Any:
    wclient.set_edits_status(ready.project_id, "proposed", only_status=None)
    rec = Recorder()
    st = ProjectState(wclient, ready.project_id, rec)
    st.recorder = rec  # type: ignore[attr-defined]
    yield st
    st.close()


def server_status(client: Client, project_id: str) -> dict[str, str]:
    return {e.id: e.status for e in client.edits(project_id)}


def test_set_status_and_set_all(state: ProjectState, wclient: Client, ready: Ready) -> None:
    edits = state.values()["edits"]
    first = edits[0]["id"]
    state.handle({"seq": 1, "type": "set_status", "ids": [first], "status": "rejected"})
    assert server_status(wclient, ready.project_id)[first] == "rejected"
    assert next(e for e in state.values()["edits"] if e["id"] == first)["status"] == "rejected"
    assert state.recorder.pushed("edits")  # type: ignore[attr-defined]

    state.handle({"seq": 2, "type": "set_all", "status": "accepted", "kind": None})
    assert set(server_status(wclient, ready.project_id).values()) == {"accepted"}
    assert {e["status"] for e in state.values()["edits"]} == {"accepted"}

    state.handle({"seq": 3, "type": "set_all", "status": "rejected", "kind": "silence"})
    statuses = {e["kind"]: e["status"] for e in state.values()["edits"]}
    assert statuses["silence"] == "rejected"
    assert state.values()["message"] == ""


def test_set_bounds_maps_and_clamps(state: ProjectState, wclient: Client, ready: Ready) -> None:
    e = next(x for x in state.values()["edits"]
             if x["start"] > 0.5 and x["end"] < ready.duration - 1)
    state.handle({"seq": 1, "type": "set_bounds", "id": e["id"], "t0": e["t0"] - 0.1,
                  "t1": e["t1"] + 0.2})
    row = next(r for r in state.values()["edits"] if r["id"] == e["id"])
    assert row["start"] == pytest.approx(e["start"] - 0.1, abs=1e-3)
    assert row["end"] == pytest.approx(e["end"] + 0.2, abs=1e-3)
    server = next(x for x in wclient.edits(ready.project_id) if x.id == e["id"])
    assert server.end == pytest.approx(row["end"])
    # Past the clip's end the edge stops at the end of the clip.
    state.handle({"seq": 2, "type": "set_bounds", "id": e["id"], "t0": e["t0"],
                  "t1": ready.duration + 50})
    row = next(r for r in state.values()["edits"] if r["id"] == e["id"])
    assert row["end"] == pytest.approx(ready.duration, abs=1e-3)
    # A collapsed edit is refused with a sentence in `message`, no exception.
    state.handle({"seq": 3, "type": "set_bounds", "id": e["id"], "t0": 5.0, "t1": 5.0})
    assert "drag its edges apart" in state.values()["message"]


def test_add_cut_and_cut_words(state: ProjectState, wclient: Client, ready: Ready) -> None:
    before = {e["id"] for e in state.values()["edits"]}
    state.handle({"seq": 1, "type": "add_cut", "t0": 4.0, "t1": 4.5})
    [new] = [e for e in state.values()["edits"] if e["id"] not in before]
    assert (new["kind"], new["status"], new["source"]) == ("manual", "accepted", "manual")
    assert (new["t0"], new["t1"]) == (4.0, 4.5)
    assert new["id"] in server_status(wclient, ready.project_id)

    words = state.values()["words"]
    state.handle({"seq": 2, "type": "cut_words", "from": 1, "to": 3})
    [cut] = [e for e in state.values()["edits"] if e["id"] not in before | {new["id"]}]
    assert (cut["t0"], cut["t1"]) == (words[1][0], words[3][1])
    assert cut["words"] == "today we talk"
    assert 'cut words: "today we talk"' in cut["reason"]

    state.handle({"seq": 3, "type": "cut_words", "from": 2, "to": 99})
    assert "not in the transcript" in state.values()["message"]
    for e in (new, cut):
        wclient.set_edit(e["id"], status="rejected")


def test_outbox_runs_merged_actions_exactly_once(wclient: Client, ready: Ready) -> None:
    w = ProjectView(wclient, ready.project_id)
    try:
        t = w.edits[0]["t0"]
        before = len(wclient.edits(ready.project_id))
        first = {"seq": 1, "type": "add_cut", "t0": t + 0.01, "t1": t + 0.05}
        # Panel merged two quick browser changes: the whole list arrives, then again with
        # one more entry. Each action runs once; `_acked` follows.
        w._outbox = [first]
        assert w._acked == 1
        w._outbox = [first, {"seq": 2, "type": "seek", "t": 3.25}]
        assert w._acked == 2 and w.playhead == 3.25
        w._outbox = [first, {"seq": 2, "type": "seek", "t": 3.25}]
        assert len(wclient.edits(ready.project_id)) == before + 1
    finally:
        w.close()


def test_on_msg_route_with_buffers_and_unknown_action(wclient: Client, ready: Ready) -> None:
    w = ProjectView(wclient, ready.project_id)
    try:
        w._on_msg(w, {"seq": 1, "type": "seek", "t": 2.5}, [])
        assert w.playhead == 2.5
        w._on_msg(w, {"seq": 2, "type": "no_such_thing"}, [])
        assert "unknown widget action 'no_such_thing'" in w.message
    finally:
        w.close()


def test_seek_moves_every_open_view_of_the_project(wclient: Client, ready: Ready) -> None:
    review, timeline = ProjectView(wclient, ready.project_id), ProjectView(wclient,
                                                                          ready.project_id)
    try:
        review.handle({"seq": 1, "type": "seek", "t": 6.5})
        assert review.playhead == 6.5 and timeline.playhead == 6.5
        review.handle({"seq": 2, "type": "seek", "t": 1e9})  # clamped to the project's end
        assert timeline.playhead == pytest.approx(ready.duration, abs=1e-3)
    finally:
        review.close()
        timeline.close()


def test_reject_from_code_reaches_widget_within_a_second(wclient: Client, ready: Ready) -> None:
    """Event-driven: the widget's `edits` trait follows `client.reject` with no poll."""
    w = ProjectView(wclient, ready.project_id)
    try:
        seen: dict[str, float] = {}

        def watch(change: dict[str, Any]) -> None:
            for e in change["new"]:
                seen.setdefault(f"{e['id']}:{e['status']}", time.perf_counter())

        w.observe(watch, names=["edits"])
        latencies = []
        for i, status in enumerate(["rejected", "accepted"] * 5):
            edit_id = w.edits[i % len(w.edits)]["id"]
            if next(e for e in w.edits if e["id"] == edit_id)["status"] == status:
                wclient.set_edit(edit_id, status="proposed")
                wait_until(lambda eid=edit_id: any(
                    e["id"] == eid and e["status"] == "proposed" for e in w.edits), 2.0, 0.002)
            seen.clear()
            t0 = time.perf_counter()
            wclient.set_edit(edit_id, status=status)
            wait_until(lambda k=f"{edit_id}:{status}": k in seen, 2.0, 0.002)
            latencies.append(seen[f"{edit_id}:{status}"] - t0)
        print(f"code -> widget latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")
        assert max(latencies) < 1.0
    finally:
        w.close()


def test_analyze_action_reports_progress_from_events(wclient: Client, ready: Ready) -> None:
    rec = Recorder()
    st = ProjectState(wclient, ready.project_id, rec)
    try:
        st.handle({"seq": 1, "type": "analyze"})
        run_id = st.values()["analysis"]["analysis_id"]
        assert st.values()["analysis"]["status"] == "queued"
        wait_until(lambda: st.values()["analysis"]["status"] == "succeeded", 60)
        assert st.values()["analysis"]["analysis_id"] == run_id
        statuses = [a["status"] for a in rec.pushed("analysis")]
        assert statuses[0] == "queued" and statuses[-1] == "succeeded"
        assert "running" in statuses
    finally:
        st.close()


def test_export_action_gives_download_and_timeline_files(wclient: Client, ready: Ready) -> None:
    rec = Recorder()
    st = ProjectState(wclient, ready.project_id, rec)
    try:
        st.handle({"seq": 1, "type": "export",
                   "settings": {"preset": "ultrafast", "timelines": ["edl", "srt"]}})
        assert st.values()["export_settings"]["timelines"] == ["edl", "srt"]
        wait_until(lambda: st.values()["export_state"]["status"] in ("succeeded", "failed"), 120)
        x = st.values()["export_state"]
        assert x["status"] == "succeeded", x
        assert x["download_url"].startswith(wclient.url + "/storage/")
        assert x["filename"] == "widgets-cut.mp4"
        assert [t["format"] for t in x["timelines"]] == ["edl", "srt"]
        assert x["timelines"][0]["url"].startswith("data:")
        assert wclient.signed_bytes(x["download_url"], 4, 7) == b"ftyp"
        assert any(0 < p["progress"] < 1 or p["status"] == "running"
                   for p in rec.pushed("export_state"))
        # A refused request: the readable reason, in the view.
        st.handle({"seq": 2, "type": "export", "settings": {"container": "webm"}})
        assert "webm carries vp9 or av1" in st.values()["message"]
        st.handle({"seq": 3, "type": "export", "settings": {"container": "mp4"}})
        assert st.values()["export_state"]["status"] in ("queued", "running")
        wait_until(lambda: st.values()["export_state"]["status"] == "succeeded", 120)
    finally:
        st.close()

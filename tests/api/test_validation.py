"""The API edge refuses what it cannot honour: strict types, bounded times, checked settings,
64-bit event ids, and aware UTC timestamps on every read."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from sapari_nb import Client
from sapari_server.db.models import Project
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth


@pytest.fixture
def api(server: EmbeddedServer) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {server.token}"}) as c:
        yield c


def _detail_mentions(r: httpx.Response, *words: str) -> None:
    assert r.status_code == 422, r.text
    text = str(r.json()["detail"]).lower()
    for w in words:
        assert w in text, text


def test_booleans_are_not_numbers(api: httpx.Client) -> None:
    pid = api.post("/projects", json={"name": "strict"}).json()["id"]
    r = api.post(f"/projects/{pid}/clips", json={"filename": "a.mp4", "size": True})
    _detail_mentions(r, "size")
    r = api.post(f"/projects/{pid}/exports", json={"crf": True})
    _detail_mentions(r, "crf")
    r = api.post(f"/projects/{pid}/analyze", json={"padding": "0.2"})
    _detail_mentions(r, "padding")


def test_unknown_fields_are_refused_not_ignored(api: httpx.Client) -> None:
    pid = api.post("/projects", json={"name": "typo"}).json()["id"]
    _detail_mentions(api.post(f"/projects/{pid}/analyze", json={"min_silense": 0.3}),
                     "min_silense")


def test_project_analysis_settings_are_checked_like_a_run(api: httpx.Client) -> None:
    for bad, field in (({"padding": -3}, "padding"),
                       ({"silence_threshold_db": "loud"}, "silence_threshold_db"),
                       ({"min_silence": 0}, "min_silence")):
        r = api.post("/projects", json={"name": "p", "settings": {"analysis": bad}})
        _detail_mentions(r, field)
    _detail_mentions(api.post("/projects", json={"name": "p", "settings": {"colour": 1}}),
                     "colour")
    ok = api.post("/projects", json={"name": "p", "settings": {"analysis": {"padding": 0.2}}})
    assert ok.status_code == 201 and ok.json()["settings"] == {"analysis": {"padding": 0.2}}


def test_stored_bad_settings_never_reach_a_job(api: httpx.Client, server: EmbeddedServer) -> None:
    """Rows written before validation existed: analyze answers 422, no job is queued."""
    pid = api.post("/projects", json={"name": "old row"}).json()["id"]
    rt = server.app.state.runtime
    with rt.sync_session() as s, s.begin():
        s.execute(update(Project).where(Project.id == pid)
                  .values(settings={"analysis": {"padding": -3, "min_silence": "x"}}))
    r = api.post(f"/projects/{pid}/analyze", json={})
    _detail_mentions(r, "padding", "min_silence", "stored")
    assert api.get(f"/projects/{pid}/analyses").json() == []
    # The run's own values override the stored ones, and then the run is fine.
    r = api.post(f"/projects/{pid}/analyze", json={"padding": 0.1, "min_silence": 0.5})
    assert r.status_code == 202, r.text


def test_edit_times_are_bounded(client: Client, api: httpx.Client,
                                talk: tuple[Path, TalkTruth]) -> None:
    project = client.create_project("bounds")
    after = client.cursor()
    clip = client.wait_clip(client.upload(project.id, talk[0]), after=after)
    edit = client.add_edit(project.id, clip.id, 1.0, 2.0)
    for body in ({"end": 1e308}, {"start": -1}, {"end": 1e300}):
        _detail_mentions(api.patch(f"/edits/{edit.id}", json=body), "")
    r = api.patch(f"/edits/{edit.id}", content=b'{"end": Infinity}',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    # A time past the clip's end is clamped to it, like a new manual cut.
    r = api.patch(f"/edits/{edit.id}", json={"end": 10_000})
    assert r.status_code == 200 and r.json()["end"] == pytest.approx(clip.duration)
    _detail_mentions(api.patch(f"/edits/{edit.id}", json={"start": 10_000, "end": 10_001}),
                     "past the clip's end")


def test_event_ids_beyond_64_bits_are_refused(api: httpx.Client) -> None:
    r = api.get("/events", params={"after": 2**63})
    assert r.status_code == 422
    r = api.get("/events", headers={"Last-Event-ID": str(2**63)})
    assert r.status_code == 400 and "event id" in r.json()["detail"]
    # A large but valid id streams normally (nothing after it yet): 200 and a first frame.
    with api.stream("GET", "/events", params={"after": 2**31 + 5}) as s:
        assert s.status_code == 200
        first = next(s.iter_lines())
        assert first.startswith(":") or first.startswith("retry")


def test_timestamps_are_utc_on_write_and_read(api: httpx.Client) -> None:
    created = api.post("/projects", json={"name": "tz"}).json()
    read = api.get(f"/projects/{created['id']}").json()
    listed = [p for p in api.get("/projects").json() if p["id"] == created["id"]][0]
    for body in (created, read, listed):
        stamp = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0, body
    assert (datetime.fromisoformat(read["created_at"].replace("Z", "+00:00"))
            == datetime.fromisoformat(created["created_at"].replace("Z", "+00:00")))


def test_confirm_takes_a_priority(client: Client, server: EmbeddedServer,
                                  talk: tuple[Path, TalkTruth]) -> None:
    """A batch's processing yields to people waiting, like its analysis and render."""
    from sapari_server.db.models import Job
    from sapari_server.queue.factory import BATCH, INTERACTIVE

    project = client.create_project("batch upload")
    batch = client.upload(project.id, talk[0], priority="batch")
    interactive = client.upload(project.id, talk[0])
    rt = server.app.state.runtime
    with rt.sync_session() as s:
        prio = {j.target_id: j.priority for j in s.query(Job).filter(
            Job.kind == "process_clip", Job.target_id.in_([batch.id, interactive.id]))}
    assert prio == {batch.id: BATCH, interactive.id: INTERACTIVE}

"""SSE: typed events with increasing ids, Last-Event-ID replay exactly once, keep-alives."""

from __future__ import annotations

import time

import httpx

from sapari_nb import Client
from sapari_server.embedded import EmbeddedServer


def _make_events(client: Client, project_id: str, n: int) -> None:
    """n EditsChanged events, each from a real API call."""
    for _ in range(n):
        client.set_edits_status(project_id, "accepted")


def _project_with_edit(client: Client, server: EmbeddedServer) -> str:
    from sapari_server.db.models import Clip

    project = client.create_project("events")
    rt = server.app.state.runtime
    with rt.sync_session() as s, s.begin():
        clip = Clip(user_id=client.me().id, project_id=project.id, filename="x.mp4",
                    object_key=f"k/{project.id}", declared_size=1, status="ready", duration=10.0)
        s.add(clip)
        s.flush()
        clip_id = clip.id
    client.add_edit(project.id, clip_id, 1.0, 2.0)
    return project.id


def test_reconnect_with_last_event_id_gets_every_missed_event_once(
        client: Client, server: EmbeddedServer) -> None:
    pid = _project_with_edit(client, server)
    start = client.cursor()
    _make_events(client, pid, 3)
    seen = []
    for ev in client.events(project_id=pid, after=start):
        seen.append(ev)
        if len(seen) == 2:
            break  # the client drops the connection here
    _make_events(client, pid, 4)
    # Reconnect the way a browser does: the Last-Event-ID header.
    rest = []
    with httpx.Client(base_url=server.url, headers={
            "Authorization": client.http.headers["Authorization"],
            "Last-Event-ID": str(seen[-1].id)}, timeout=10) as h:
        from sapari_nb.events import iter_events

        for ev in iter_events(h, project_id=pid, after=seen[-1].id):
            rest.append(ev)
            if len(rest) == 5:
                break
    ids = [e.id for e in seen + rest]
    assert ids == sorted(ids) and len(set(ids)) == 7
    assert all(e.type == "EditsChanged" for e in seen + rest)
    # The stream replays from the database: exactly the events recorded after `start`.
    all_ids = []
    for ev in client.events(project_id=pid, after=start):
        all_ids.append(ev.id)
        if len(all_ids) == 7:
            break
    assert all_ids == ids


def test_keepalive_and_project_filter(client: Client, server: EmbeddedServer) -> None:
    pid = _project_with_edit(client, server)
    other = _project_with_edit(client, server)
    after = client.cursor()
    lines: list[str] = []
    with httpx.stream("GET", server.url + "/events", params={"project_id": pid, "after": after},
                      headers={"Authorization": client.http.headers["Authorization"]},
                      timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        t0 = time.monotonic()
        client.set_edits_status(other, "rejected")  # another project's event: filtered out
        client.set_edits_status(pid, "rejected")
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith(": keep-alive") and any(x.startswith("data:") for x in lines):
                break
            assert time.monotonic() - t0 < 8
    data = [x for x in lines if x.startswith("data:")]
    assert len(data) == 1 and pid in data[0]
    assert any(x.startswith("id:") for x in lines)


def test_bad_last_event_id_is_a_clear_400(client: Client, server: EmbeddedServer) -> None:
    r = httpx.get(server.url + "/events", headers={
        "Authorization": client.http.headers["Authorization"], "Last-Event-ID": "abc"})
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["detail"]


def test_background_stream_calls_listeners(client: Client, server: EmbeddedServer) -> None:
    pid = _project_with_edit(client, server)
    got = []
    stream = client.stream(project_id=pid, after=client.cursor())
    off = stream.on(got.append)
    try:
        client.set_edits_status(pid, "accepted")
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got and got[0].type == "EditsChanged"
        off()
        n = len(got)
        client.set_edits_status(pid, "rejected")
        time.sleep(1.0)
        assert len(got) == n
    finally:
        stream.close()

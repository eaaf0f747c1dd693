"""The widgets' link to the server: status while it is gone, resume after it; CORS."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from sapari_nb import Client, EventStream
from sapari_nb.widgets.state import ProjectState
from sapari_server.embedded import EmbeddedServer
from sapari_server.settings import Settings
from tests.conftest import start_server

from .conftest import Ready, wait_until

PAGE = "http://127.0.0.1:8888"  # a JupyterLab on another port of this machine


def test_server_gone_then_back_on_same_port(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sse_keepalive=0.5, transcriber="none",
                        embedded_workers=0)
    srv = EmbeddedServer(settings).start()
    port = srv.port
    client = Client(srv.url, srv.token, progress=False)
    statuses: list[tuple[str, str]] = []
    try:
        project = client.create_project("reconnect")
        clip = client.presign(project.id, "a.mp4", 1000).clip  # a clip row is enough here
        edit = client.add_edit(project.id, clip.id, 1.0, 2.0, status="proposed")
        st = ProjectState(client, project.id,
                          lambda ch: statuses.append((ch["server"]["status"],
                                                      ch["server"]["message"]))
                          if "server" in ch else None)
        seen_ids: list[int] = []
        st.stream.on(lambda ev: seen_ids.append(ev.id))
        srv.stop()
        wait_until(lambda: st.values()["server"]["status"] == "reconnecting", 10)
        message = st.values()["server"]["message"]
        assert message.startswith(f"the job server at {srv.url} cannot be reached (")
        assert message.endswith("); retrying")

        srv = EmbeddedServer(settings, port=port).start()
        # Changed while the widget's stream is still away: it must arrive on resume.
        client.reject(edit.id)
        event_id = client.cursor()
        t0 = time.monotonic()
        wait_until(lambda: st.values()["edits"][0]["status"] == "rejected", 10)
        assert st.values()["server"] == {"url": srv.url, "proxy_port": port,
                                         "status": "connected", "message": ""}
        assert time.monotonic() - t0 < 5
        # The EditsChanged event itself reached the stream's listeners after the gap.
        wait_until(lambda: event_id in seen_ids, 5)
        assert [s for s, _ in statuses] == ["reconnecting", "connected"]
        st.close()
    finally:
        client.close()
        srv.stop()


def test_stream_says_gone_after_a_while_and_keeps_trying(tmp_path: Path) -> None:
    srv = start_server(tmp_path, embedded_workers=0)
    url, token = srv.url, srv.token
    srv.stop()
    seen: list[str] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        stream = EventStream(http, gone_after=0.3, retry_delay=0.05)
        stream.on_status(lambda status, message: seen.append(status))
        with stream.start():
            wait_until(lambda: "gone" in seen, 5)
            assert stream.running  # still retrying
            assert "still retrying" in stream.status_message
        assert seen[0] == "reconnecting"


def test_cors_preflight_for_a_signed_put(wclient: Client, ready: Ready) -> None:
    ticket = wclient.presign(ready.project_id, "cors.mp4", 100, "video/mp4")
    r = httpx.options(ticket.upload_url, headers={
        "Origin": PAGE, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == PAGE
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert "content-type" in r.headers["access-control-allow-headers"].lower()
    # Another site's page gets no permission.
    r = httpx.options(ticket.upload_url, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"})
    assert "access-control-allow-origin" not in r.headers
    # A ranged GET of the peaks (what the browser may fetch) exposes its range headers.
    art = next(a for a in wclient.artifacts(ready.clip_id) if a.kind == "peak_pyramid")
    r = httpx.get(art.url, headers={"Origin": PAGE, "Range": "bytes=0-7"})
    assert r.status_code == 206 and r.content == b"SPKPYR1\0"
    assert r.headers["access-control-allow-origin"] == PAGE
    assert "content-range" in r.headers["access-control-expose-headers"].lower()
    assert "etag" in r.headers["access-control-expose-headers"].lower()


def test_cors_origins_setting(tmp_path: Path) -> None:
    hub = "https://hub.example.org"
    srv = start_server(tmp_path, embedded_workers=0, cors_origins=[hub], cors_origin_regex="")
    try:
        pre = {"Access-Control-Request-Method": "PUT"}
        r = httpx.options(srv.url + "/health", headers={"Origin": hub, **pre})
        assert r.headers["access-control-allow-origin"] == hub
        r = httpx.options(srv.url + "/health", headers={"Origin": PAGE, **pre})
        assert "access-control-allow-origin" not in r.headers
    finally:
        srv.stop()

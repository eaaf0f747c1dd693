"""Uploads from the widget: presign on request, relay through the kernel, direct PUT, refusals."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sapari_nb import Client, Upload
from sapari_server.auth import create_user
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth

from .conftest import wait_until

CHUNK = 64 * 1024  # small chunks: the short test talk still takes several


@pytest.fixture
def project(wclient: Client, request: pytest.FixtureRequest) -> str:
    return wclient.create_project(f"upload-{request.node.name}"[:200]).id


def relay_files() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("sapari-relay-*"))


@pytest.mark.parametrize("channel", ["msg", "outbox"])
def test_relay_route_makes_a_ready_clip(wclient: Client, project: str,
                                        talk: tuple[Path, TalkTruth], channel: str) -> None:
    data = talk[0].read_bytes()
    w = Upload(wclient, project)
    sent: list[dict[str, object]] = []

    def act(action: dict[str, object], chunk: bytes | None = None) -> None:
        if channel == "msg":  # anywidget: a custom message; its buffers are memoryviews
            w._on_msg(w, action, [memoryview(chunk)] if chunk is not None else [])
        else:  # Panel: no model.send; the chunk rides base64 in the trait
            if chunk is not None:
                action = {**action, "data": base64.b64encode(chunk).decode()}
            sent.append(action)
            w._outbox = [a for a in sent if int(str(a["seq"])) > w._acked]

    try:
        act({"seq": 1, "type": "upload_request", "id": "u1", "name": "my talk.mp4",
             "size": len(data), "content_type": "video/mp4"})
        [row] = w.uploads
        assert row["status"] == "uploading" and row["clip_id"] and row["put_url"]
        assert row["headers"] == {"Content-Type": "video/mp4"}
        for i, offset in enumerate(range(0, len(data), CHUNK)):
            chunk = data[offset:offset + CHUNK]
            last = offset + CHUNK >= len(data)
            act({"seq": 2 + i, "type": "relay_chunk", "id": "u1", "offset": offset,
                 "last": last}, chunk)
            if not last:  # the ack the browser waits for before the next chunk
                assert w.uploads[0]["sent"] == offset + len(chunk)
        assert w.uploads[0]["route"] == "relay"
        wait_until(lambda: w.uploads[0]["status"] in ("ready", "failed"), 60)
        row = w.uploads[0]
        assert row["status"] == "ready", row
        assert row["sent"] == len(data)
        clip = wclient.clip(row["clip_id"])
        assert clip.status == "ready" and clip.size == len(data)
        # ... and the views show it: a clip on the axis with its waveform.
        wait_until(lambda: w.clips and w.clips[0]["status"] == "ready", 5)
        assert len(w.peaks) == w.peaks_meta["count"] * 4 > 0
        assert not relay_files()  # the temp file went with the PUT
    finally:
        w.close()


def test_direct_route_progress_done_and_ready(wclient: Client, project: str,
                                              talk: tuple[Path, TalkTruth]) -> None:
    data = talk[0].read_bytes()
    w = Upload(wclient, project)
    try:
        w.handle({"seq": 1, "type": "upload_request", "id": "d1", "name": "talk.mp4",
                  "size": len(data), "content_type": "video/mp4", "route": "direct"})
        row = w.uploads[0]
        # What the browser does on the direct route, CORS origin included.
        r = httpx.put(row["put_url"], content=data,
                      headers={**row["headers"], "Origin": "http://127.0.0.1:8888"})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://127.0.0.1:8888"
        w.handle({"seq": 2, "type": "upload_progress", "id": "d1", "sent": len(data)})
        assert w.uploads[0]["sent"] == len(data)
        w.handle({"seq": 3, "type": "upload_done", "id": "d1"})
        assert w.uploads[0]["status"] in ("processing", "ready")
        wait_until(lambda: w.uploads[0]["status"] == "ready", 60)
        assert w.uploads[0]["route"] == "direct"
    finally:
        w.close()


def test_done_before_bytes_and_chunk_out_of_order_are_readable(wclient: Client,
                                                               project: str) -> None:
    w = Upload(wclient, project)
    try:
        w.handle({"seq": 1, "type": "upload_request", "id": "x", "name": "a.mp4", "size": 10})
        w.handle({"seq": 2, "type": "upload_done", "id": "x"})
        assert w.uploads[0]["status"] == "failed"
        assert "no bytes have arrived" in w.uploads[0]["error"]

        w.handle({"seq": 3, "type": "upload_request", "id": "y", "name": "b.mp4", "size": 10})
        w.handle({"seq": 4, "type": "relay_chunk", "id": "y", "offset": 5, "last": False},
                 [b"12345"])
        assert w.uploads[1]["status"] == "failed"
        assert "arrived but the kernel had 0 bytes" in w.uploads[1]["error"]
        assert not relay_files()
    finally:
        w.close()


@pytest.fixture
def small_quota_client(server: EmbeddedServer) -> Iterator[Client]:
    with server.app.state.runtime.sync_session() as s, s.begin():
        _, token = create_user(s, "widget-small-quota", quota_bytes=1024 * 1024)
    with Client(server.url, token, progress=False) as c:
        yield c


def test_upload_over_quota_gives_a_readable_error(small_quota_client: Client) -> None:
    c = small_quota_client
    project = c.create_project("quota")
    w = Upload(c, project.id)
    try:
        w.handle({"seq": 1, "type": "upload_request", "id": "big", "name": "long talk.mp4",
                  "size": 5 * 1024 * 1024, "content_type": "video/mp4"})
        [row] = w.uploads
        assert row["status"] == "failed" and row["clip_id"] is None
        assert row["error"] == ("long talk.mp4: upload of 5.0 MiB would exceed your quota "
                                "(0.0 MiB of 1.0 MiB used): delete clips first")
        w.handle({"seq": 2, "type": "upload_request", "id": "huge", "name": "huge.mov",
                  "size": 11 * 1024**3})
        assert "the largest upload accepted is" in w.uploads[1]["error"]
        w.handle({"seq": 3, "type": "upload_request", "id": "empty", "name": "e.mp4",
                  "size": 0})
        assert w.uploads[2]["error"] == "e.mp4 is empty (0 bytes): choose the recording itself"
        assert c.clips(project.id) == []
    finally:
        w.close()

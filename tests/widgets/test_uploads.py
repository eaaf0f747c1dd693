"""Uploads from the widget: presign on request, relay through the kernel, direct PUT, refusals."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from sapari_nb import Client, Upload
from sapari_server.auth import create_user
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth
from tests.conftest import start_server, stored_bytes

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


# -- multipart: big files in parts, resumable -------------------------------------------------
MP_THRESHOLD = 1024 * 1024
MP_PART = 512 * 1024


def noisy_video(path: Path, seconds: float = 4.0, seed: int = 1) -> Path:
    """A few MB of real media quickly: random pictures (x264 cannot shrink them) and a
    gated tone; ~5.6 MB for 4 s at 320x240."""
    rng = np.random.default_rng(seed)
    fps, sr, n = 25, 48000, 1024
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        a = out.add_stream("aac", rate=sr)
        a.bit_rate = 96000
        for _ in range(int(seconds * fps)):
            img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        t = np.arange(int(seconds * sr)) / sr
        tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0))
        tone = tone.astype(np.float32)
        for k in range(0, len(tone), n):
            frame = av.AudioFrame.from_ndarray(tone[None, k:k + n], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sr, k
            for pkt in a.encode(frame):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def mp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    srv = start_server(tmp_path_factory.mktemp("server-multipart"), transcriber="none",
                       multipart_threshold=MP_THRESHOLD, multipart_part_size=MP_PART)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return noisy_video(tmp_path_factory.mktemp("media-mp") / "long talk.mp4")


@pytest.fixture
def mp(mp_server: EmbeddedServer) -> Iterator[tuple[Client, str]]:
    with Client(mp_server.url, mp_server.token, progress=False) as c:
        yield c, c.create_project("multipart").id


ORIGIN = "http://127.0.0.1:8888"


def put_parts(w: Upload, uid: str, numbers: list[int], data: bytes, req: str) -> dict[int, str]:
    """What the browser does: ask the kernel for the parts' URLs, PUT each slice; ETags."""
    w.handle({"seq": 0, "type": "upload_part_urls", "id": uid, "parts": numbers, "req": req})
    answer = w.uploads[0]["part_urls"]
    assert answer["req"] == req and [p["part_number"] for p in answer["parts"]] == numbers
    etags = {}
    for p in answer["parts"]:
        r = httpx.put(p["url"], content=data[p["offset"]:p["offset"] + p["size"]],
                      headers={"Content-Type": "application/octet-stream", "Origin": ORIGIN})
        assert r.status_code == 200, r.text
        # The browser can read the ETag only when CORS exposes it.
        assert "etag" in r.headers["access-control-expose-headers"].lower()
        etags[p["part_number"]] = r.headers["etag"].strip('"')
    return etags


def test_multipart_upload_resumes_with_only_the_missing_parts(
        mp: tuple[Client, str], mp_server: EmbeddedServer, big_file: Path) -> None:
    c, project = mp
    data = big_file.read_bytes()
    count = -(-len(data) // MP_PART)
    assert len(data) >= MP_THRESHOLD and count >= 8
    w = Upload(c, project)
    try:
        w.handle({"seq": 1, "type": "upload_request", "id": "m1", "name": big_file.name,
                  "size": len(data), "content_type": "video/mp4", "route": "direct"})
        row = w.uploads[0]
        assert row["status"] == "uploading" and row["attempt"] == 1 and row["held"] == []
        assert row["multipart"]["part_count"] == count
        assert row["multipart"]["part_size"] == MP_PART
        first = list(range(1, count, 2))  # every other part, then the connection drops
        put_parts(w, "m1", first, data, "r1")
        w.handle({"seq": 2, "type": "upload_failed", "id": "m1",
                  "error": "part 2 of 11 failed after 4 tries: network"})
        row = w.uploads[0]
        assert row["status"] == "failed" and row["resumable"] is True
        assert row["error"].startswith("part 2 of 11 failed")
        # A part URL for a stopped upload is refused (the browser must resume first).
        w.handle({"seq": 3, "type": "upload_part_urls", "id": "m1", "parts": [2], "req": "x"})
        assert "is not sending parts (failed)" in w.message
        w.handle({"seq": 4, "type": "upload_resume", "id": "m1"})
        row = w.uploads[0]
        assert row["status"] == "uploading" and row["error"] is None
        assert row["attempt"] == 2 and not row["resumable"]
        assert sorted(row["held"]) == first  # what the server holds: not sent again
        assert row["sent"] == len(first) * MP_PART
        rest = [n for n in range(1, count + 1) if n not in row["held"]]
        put_parts(w, "m1", rest, data, "r2")
        w.handle({"seq": 5, "type": "upload_done", "id": "m1"})  # no ETags: server's parts
        assert w.uploads[0]["status"] in ("processing", "ready"), w.uploads[0]
        wait_until(lambda: w.uploads[0]["status"] in ("ready", "failed"), 60)
        assert w.uploads[0]["status"] == "ready", w.uploads[0]
        assert stored_bytes(mp_server, w.uploads[0]["clip_id"]) == data
    finally:
        w.close()


def test_multipart_confirm_with_etags_and_a_missing_part(
        mp: tuple[Client, str], mp_server: EmbeddedServer, big_file: Path) -> None:
    c, project = mp
    data = big_file.read_bytes()
    count = -(-len(data) // MP_PART)
    w = Upload(c, project)
    try:
        w.handle({"seq": 1, "type": "upload_request", "id": "m2", "name": "b.mp4",
                  "size": len(data), "content_type": "video/mp4"})
        etags = put_parts(w, "m2", list(range(1, count)), data, "a")  # the last is missing
        w.handle({"seq": 2, "type": "upload_done", "id": "m2"})
        row = w.uploads[0]
        # The server's refusal, readable, and the row can be retried.
        assert row["status"] == "failed" and row["resumable"] is True
        assert f"1 of {count} parts have not arrived whole (parts {count})" in row["error"]
        w.handle({"seq": 3, "type": "upload_resume", "id": "m2"})
        assert w.uploads[0]["held"] == list(range(1, count))
        etags |= put_parts(w, "m2", [count], data, "b")
        parts = [{"part_number": n, "etag": f'"{e}"'} for n, e in sorted(etags.items())]
        w.handle({"seq": 4, "type": "upload_done", "id": "m2", "parts": parts})
        wait_until(lambda: w.uploads[0]["status"] in ("ready", "failed"), 60)
        assert w.uploads[0]["status"] == "ready", w.uploads[0]
        assert stored_bytes(mp_server, w.uploads[0]["clip_id"]) == data
        # Resuming a finished upload changes nothing; one never sent in parts cannot resume.
        w.handle({"seq": 5, "type": "upload_resume", "id": "m2"})
        assert w.uploads[0]["status"] == "ready"
    finally:
        w.close()


def test_small_file_on_a_multipart_server_stays_one_put(
        mp: tuple[Client, str], talk: tuple[Path, TalkTruth]) -> None:
    c, project = mp
    data = talk[0].read_bytes()
    assert len(data) < MP_THRESHOLD
    w = Upload(c, project)
    try:
        w.handle({"seq": 1, "type": "upload_request", "id": "s1", "name": "talk.mp4",
                  "size": len(data), "content_type": "video/mp4"})
        row = w.uploads[0]
        assert "multipart" not in row and row["put_url"]
        w.handle({"seq": 2, "type": "upload_part_urls", "id": "s1", "parts": [1], "req": "x"})
        assert "is not sending parts (uploading)" in w.message
        w.handle({"seq": 3, "type": "upload_failed", "id": "s1", "error": "gone"})
        assert w.uploads[0]["resumable"] is False
        w.handle({"seq": 4, "type": "upload_resume", "id": "s1"})
        assert "cannot resume (it was not sent in parts)" in w.message
    finally:
        w.close()

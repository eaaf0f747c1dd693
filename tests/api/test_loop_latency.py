"""Uploads and an export do not stall the event loop: GET /me stays fast meanwhile."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sapari_nb import Client
from sapari_server.embedded import EmbeddedServer
from sapari_server.settings import Settings
from sapari_testkit.generate import TalkTruth

UPLOADS = 20
UPLOAD_BYTES = 4 * 1024**2


@pytest.fixture
def busy_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    srv = _nodelay(EmbeddedServer(Settings(data_dir=tmp_path / "data", transcriber="none",
                                            preview_artifacts=False, sse_keepalive=0.5)))
    srv.start()
    yield srv
    srv.stop()


def _nodelay(srv: EmbeddedServer) -> EmbeddedServer:
    """Until EmbeddedServer makes its socket with IPPROTO_TCP: asyncio sets TCP_NODELAY only
    on sockets whose proto says TCP, and without it every keep-alive response waits ~40 ms
    for a delayed ACK (Nagle), which would swamp what this test measures."""
    if srv.sock.proto == socket.IPPROTO_TCP:
        return srv
    port = srv.port
    srv.sock.close()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    srv.sock = sock
    srv.thread = threading.Thread(target=srv.server.run, kwargs={"sockets": [sock]},
                                  name="sapari-embedded-server", daemon=True)
    return srv


def _p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))] if s else 0.0


def test_me_p99_under_100ms_during_uploads_and_export(busy_server: EmbeddedServer,
                                                      talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    c = Client(busy_server.url, busy_server.token, progress=False)
    project = c.create_project("busy")
    after = c.cursor()
    c.wait_clip(c.upload(project.id, src), after=after)
    c.wait_analysis(c.analyze(project.id), after=after)
    c.accept_all(project.id)
    uploads = c.create_project("uploads")
    tickets = [c.presign(uploads.id, f"u{i}.mp4", UPLOAD_BYTES) for i in range(UPLOADS)]
    # Clients and bodies are made before the clock starts: this process is also the
    # client, and building twenty SSL contexts would hold the GIL the server needs.
    bodies = [bytes([i]) * UPLOAD_BYTES for i in range(UPLOADS)]
    uploader = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=UPLOADS))
    pollers = [httpx.Client(base_url=busy_server.url, timeout=30,
                            headers={"Authorization": f"Bearer {busy_server.token}"})
               for _ in range(2)]
    latencies: list[float] = []
    lags: list[float] = []
    stop = threading.Event()

    def poll(h: httpx.Client) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            assert h.get("/me").status_code == 200
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.002)

    async def watch_loop() -> None:
        # How late the server's event loop wakes: a blocking call on it shows here.
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t0 - 0.005)

    def upload(i: int) -> int:
        return uploader.put(tickets[i].upload_url, content=bodies[i]).status_code

    asyncio.run_coroutine_threadsafe(watch_loop(), busy_server.server.servers[0]._loop)
    threads = [threading.Thread(target=poll, args=(h,)) for h in pollers]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    try:
        exp = c.export(project.id)
        with ThreadPoolExecutor(UPLOADS) as pool:
            codes = list(pool.map(upload, range(UPLOADS)))
        uploads_done = time.perf_counter() - t0
        done = c.wait_export(exp, after=after, timeout=120)
        export_done = time.perf_counter() - t0
    finally:
        stop.set()
        for t in threads:
            t.join()
        for h in (uploader, *pollers):
            h.close()
        c.close()
    assert codes == [200] * UPLOADS
    assert done.status == "succeeded"
    p99 = _p(latencies, 0.99)
    print(f"\nGET /me during {UPLOADS} uploads of {UPLOAD_BYTES >> 20} MiB "
          f"({uploads_done:.2f} s) and an export ({export_done:.2f} s): "
          f"{len(latencies)} requests, p50 {_p(latencies, 0.5) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms; "
          f"event-loop lag p99 {_p(lags, 0.99) * 1000:.1f} ms, "
          f"max {max(lags, default=0) * 1000:.1f} ms")
    assert len(latencies) >= 20
    assert p99 < 0.100, f"GET /me p99 {p99 * 1000:.0f} ms while uploading and exporting"

"""`sapari-nb serve` and `sapari-nb worker` as separate processes sharing one data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sapari_nb import Client
from sapari_testkit.generate import TalkTruth

from ..conftest import start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sapari_nb.cli", *args]


def test_separate_worker_process_runs_jobs(tmp_path: Path, talk: tuple[Path, TalkTruth]) -> None:
    data = tmp_path / "data"
    srv = start_server(data, embedded_workers=0)
    worker = subprocess.Popen(_cli("worker", "--workers", "1", "--data-dir", str(data)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("worker")
            after = client.cursor()
            # Events written by the other process reach this server's SSE stream.
            clip = client.wait_clip(client.upload(project.id, talk[0]), after=after, timeout=90)
            assert clip.status == "ready"
            run = client.wait_analysis(client.analyze(project.id), after=after, timeout=90)
            assert run.summary["edits"] >= 3
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        srv.stop()


def test_serve_starts_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(_cli("serve", "--port", str(port), "--data-dir", str(tmp_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "SAPARI_SSE_KEEPALIVE": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        token = (tmp_path / "token").read_text().strip()
        me = httpx.get(f"http://127.0.0.1:{port}/me",
                       headers={"Authorization": f"Bearer {token}"}).json()
        assert me["name"] == "local"
        created = subprocess.run(_cli("users", "alice", "--data-dir", str(tmp_path)),
                                 capture_output=True, text=True, timeout=60)
        alice = created.stdout.strip()
        assert alice.startswith("sap_")
        r = httpx.get(f"http://127.0.0.1:{port}/me", headers={"Authorization": f"Bearer {alice}"})
        assert r.json()["name"] == "alice"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)

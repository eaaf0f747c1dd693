"""``sapari-nb app``: serves the Panel app on the embedded server or a given one; argument
errors are one line; Ctrl-C ends it quietly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sapari_server.embedded import EmbeddedServer
from sapari_testkit.browser import free_port, stop_process, wait_http

pytest.importorskip("panel")
ROOT = Path(__file__).resolve().parents[1]


def app(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "sapari_nb.cli", "app", *args],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)


@pytest.mark.parametrize("remote", [False, True], ids=["embedded", "remote"])
def test_app_serves_the_page_and_stops_on_ctrl_c(tmp_path: Path, server: EmbeddedServer,
                                                 remote: bool) -> None:
    port = free_port()
    log = tmp_path / "app.log"
    where = (["--server", server.url, "--token", server.token] if remote
             else ["--data-dir", str(tmp_path / "data")])
    proc = app(["--port", str(port), *where], log)
    try:
        wait_http(f"http://127.0.0.1:{port}/favicon.ico", proc, log, timeout=60)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "bokeh" in page.text.lower()
        first = log.read_text()
        assert f"sapari-nb app on http://127.0.0.1:{port}/" in first
        assert (server.url in first) if remote else ("embedded server" in first)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0, log.read_text()
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        stop_process(proc)


def test_app_refuses_a_server_without_token_and_a_bad_token(tmp_path: Path,
                                                            server: EmbeddedServer) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SAPARI_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "sapari_nb.cli", "app", "--server",
                           server.url], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip() == "sapari-nb app: --server needs --token (or SAPARI_TOKEN)"
    done = subprocess.run([sys.executable, "-m", "sapari_nb.cli", "app", "--server",
                           server.url, "--token", "sap_wrong", "--port", str(free_port())],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("sapari-nb app: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr

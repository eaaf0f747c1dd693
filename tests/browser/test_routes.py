"""The two upload/preview routes a browser without CORS access to the job server falls back to.

test_jupyterlab.py covers ``direct`` (the page reaches the job server through CORS). Here the
job server sends no CORS headers, so the page cannot reach it directly:

- ``proxy``: JupyterLab under ``/user/tester/`` (as on Binder) with jupyter-server-proxy: the
  upload PUT and the preview video go through ``<base_url>proxy/<port>/...``;
- ``relay``: the same, with the proxy extension off: the bytes are relayed through the kernel
  in chunks, and there is no preview.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from sapari_nb import Client
from sapari_nb.samples import sample_path
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.browser import (
    CANVAS_INK,
    JupyterLab,
    run_cells,
    start_jupyter_lab_routed,
    wait_until,
)
from tests.conftest import start_server

from .conftest import Shots, need_browser, need_bundle

pytestmark = pytest.mark.browser

BASE_URL = "/user/tester/"


@pytest.fixture(scope="module")
def no_cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    # No origin allowed: a page on another port cannot read any answer of this server.
    srv = start_server(tmp_path_factory.mktemp("server-no-cors"), transcriber="none",
                       cors_origin_regex="", cors_origins=[])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, JupyterLab]]:
    need_browser()
    # Both JupyterLabs start side by side: each spends most of its 5 s waiting on imports.
    with ThreadPoolExecutor(2) as pool:
        futures = {route: pool.submit(start_jupyter_lab_routed,
                                      tmp_path_factory.mktemp(f"jupyter-{route}"), BASE_URL,
                                      proxy=route == "proxy")
                   for route in ("proxy", "relay")}
        started = {route: f.result() for route, f in futures.items()}
    yield started
    for lab in started.values():
        lab.stop()


def _no_cors(srv: EmbeddedServer) -> None:
    # The precondition of both tests: the job server really refuses the page's origin.
    r = httpx.get(f"{srv.url}/health", headers={"Origin": "http://127.0.0.1:8888"})
    assert "access-control-allow-origin" not in r.headers, r.headers


def _upload_in_notebook(lab: JupyterLab, srv: EmbeddedServer, page: Any, shots: Shots,
                        route: str) -> tuple[Client, str, dict[str, float]]:
    """Open a notebook showing ProjectView of a fresh project, upload the sample through the
    widget's file input; check the route shown and used, the clip ready, the waveform drawn."""
    _no_cors(srv)
    client = Client(srv.url, srv.token, progress=False)
    proj = client.create_project(f"route {route}")
    name = f"route-{route}.ipynb"
    lab.write_notebook(name, [
        "import sapari_nb\n"
        f"client = sapari_nb.Client({srv.url!r}, {srv.token!r}, progress=False)",
        f"sapari_nb.ProjectView(client, {proj.id!r})",
    ])
    need_bundle()
    t0 = time.monotonic()
    marks: dict[str, float] = {}
    page.goto(lab.notebook_url(name))
    run_cells(page, 2)
    page.locator(".sapari-root").first.wait_for(timeout=30_000)
    marks["widget shown"] = round(time.monotonic() - t0, 2)
    shots(page, "opened")

    page.locator("input.sapari-file").first.set_input_files(str(sample_path()))
    badge = page.locator(".sapari-route").first
    wait_until(lambda: (badge.text_content() or "").strip() == f"route: {route}", 20,
               f"the route badge saying 'route: {route}'")
    wait_until(lambda: [c for c in client.clips(proj.id) if c.status == "ready"], 90,
               "the uploaded clip becoming ready on the server")
    marks["clip ready"] = round(time.monotonic() - t0, 2)
    # The route that carried the bytes (a failed proxy PUT would fall back to relay).
    state = page.locator(".sapari-upload-row .sapari-upload-state").first
    wait_until(lambda: (state.text_content() or "").endswith(f"via {route}"), 10,
               f"the upload row saying it went via {route}")
    wave = page.locator("canvas.sapari-wave").first
    wait_until(lambda: wave.evaluate(CANVAS_INK) > 100, 15, "the waveform drawn on its canvas")
    marks["waveform drawn"] = round(time.monotonic() - t0, 2)
    shots(page, "uploaded")
    return client, proj.id, marks


def test_proxy_route_under_a_base_url(labs: dict[str, JupyterLab],
                                      no_cors_server: EmbeddedServer, page: Any,
                                      shots: Shots) -> None:
    started = time.monotonic()
    client, _, marks = _upload_in_notebook(labs["proxy"], no_cors_server, page, shots, "proxy")
    try:
        # The preview loads through the proxy under the page's base URL, on its own (no
        # click): its first frame shows as soon as the clip is ready.
        root = page.locator(".sapari-root").first
        play = page.locator('button[data-action="play"]').first
        video = page.locator("video.sapari-video").first
        src = wait_until(lambda: video.evaluate("(v) => v.currentSrc || v.src"), 15,
                         "a source on the preview video, without any click")
        assert f"{BASE_URL}proxy/{no_cors_server.port}/" in src, src
        wait_until(lambda: video.evaluate("(v) => v.readyState") >= 1, 15,
                   f"the preview video loading its metadata from {src}")
        play.click()
        assert video.evaluate("(v) => v.duration") > 1.0
        wait_until(lambda: video.evaluate("(v) => v.currentTime") >= 1.0, 10,
                   "a second of the preview played")
        played = float(root.get_attribute("data-playhead") or 0)
        play.click()  # stop
        assert played >= 0.9, f"the timeline's playhead did not follow the video: {played}"
        marks["preview played 1 s"] = round(time.monotonic() - started, 2)
        shots(page, "preview")
    finally:
        client.close()
    print(f"proxy route: {time.monotonic() - started:.1f} s; {marks}")


def test_relay_route_without_cors_or_proxy(labs: dict[str, JupyterLab],
                                           no_cors_server: EmbeddedServer, page: Any,
                                           shots: Shots) -> None:
    started = time.monotonic()
    lab = labs["relay"]
    # The precondition: this JupyterLab has no proxy to offer.
    r = httpx.get(f"{lab.url}/proxy/{no_cors_server.port}/health?token={lab.token}")
    assert r.status_code == 404, r.status_code
    client, _, marks = _upload_in_notebook(lab, no_cors_server, page, shots, "relay")
    client.close()
    # No preview on this route, and the widget says so instead of showing a dead player.
    assert "No video preview" in (page.locator(".sapari-root").first.text_content() or "")
    assert not page.locator("video.sapari-video").first.evaluate("(v) => v.currentSrc || v.src")
    print(f"relay route: {time.monotonic() - started:.1f} s; {marks}")

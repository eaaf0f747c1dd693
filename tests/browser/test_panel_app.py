"""The Panel app (``sapari-nb app``) driven by Chromium: create a project, upload to export."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sapari_nb import Client
from sapari_nb.samples import sample_path
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.browser import PanelApp, start_panel_app, wait_until

from .conftest import Shots, need_browser, need_bundle
from .journey import run_journey

pytestmark = pytest.mark.browser


@pytest.fixture
def panel_app(server: EmbeddedServer, shots: Shots) -> Iterator[PanelApp]:
    need_browser()
    app = start_panel_app(server.url, server.token, shots.folder / "panel.log")
    yield app
    app.stop()


def test_project_view_in_panel_app(panel_app: PanelApp, client: Client, page: Any,
                                   shots: Shots) -> None:
    need_bundle()
    started = time.monotonic()
    page.goto(panel_app.url + "/")
    # The project list, and a project created from the page itself.
    name = f"browser journey (Panel) {time.time():.0f}"
    page.locator(".sapari-new-name input").fill(name)
    page.locator(".sapari-create button").click()
    proj = wait_until(lambda: [p for p in client.projects() if p.name == name], 10,
                      "the project created from the app")[0]
    # The page switches to it by itself (the old project's view goes away).
    page.locator(".sapari-root").first.get_by_text(name).first.wait_for(timeout=10_000)
    shots(page, "created")
    times = run_journey(page, client, proj.id, sample_path(), shots)
    print(f"Panel journey: {time.monotonic() - started:.1f} s; {times.marks}")

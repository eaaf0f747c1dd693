"""ProjectView in a real JupyterLab, driven by Chromium: upload to export, in the notebook."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sapari_nb import Client
from sapari_nb.samples import sample_path
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.browser import JupyterLab, run_cells

from .conftest import Shots, need_bundle
from .journey import run_journey

pytestmark = pytest.mark.browser


def test_project_view_in_jupyterlab(jupyter_lab: JupyterLab, server: EmbeddedServer,
                                    client: Client, page: Any, shots: Shots) -> None:
    proj = client.create_project("browser journey (JupyterLab)")
    # The notebook's first cell connects to the test's job server (URL and token generated).
    jupyter_lab.write_notebook("journey.ipynb", [
        "import sapari_nb\n"
        f"client = sapari_nb.Client({server.url!r}, {server.token!r}, progress=False)",
        f"sapari_nb.ProjectView(client, {proj.id!r})",
    ])
    need_bundle()
    started = time.monotonic()
    page.goto(jupyter_lab.notebook_url("journey.ipynb"))
    run_cells(page, 2)
    shots(page, "cells-ran")
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0 or "Traceback" not in (errors.first.text_content() or ""), \
        errors.first.text_content()
    times = run_journey(page, client, proj.id, sample_path(), shots)
    print(f"JupyterLab journey: {time.monotonic() - started:.1f} s; {times.marks}")

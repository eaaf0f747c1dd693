"""ProjectView in a real JupyterLab, driven by Chromium: upload to export, in the notebook."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from sapari_nb import Client
from sapari_nb.samples import sample_path
from sapari_server.embedded import EmbeddedServer

from .conftest import JupyterLab, Shots, need_bundle
from .journey import run_journey, wait_until

pytestmark = pytest.mark.browser


def run_cells(page: Any, count: int, timeout: float = 60) -> None:
    """Run the notebook's first ``count`` cells with Shift+Enter, each to completion."""
    # A key sent before the kernel is idle is lost (WIDGETS.md).
    page.locator("#jp-main-statusbar").get_by_text(re.compile(r"\bIdle\b")).first.wait_for(
        timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
    for i in range(count):
        page.keyboard.press("Shift+Enter")
        prompt = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").nth(i)
        # Done when the prompt shows its execution count, e.g. "[1]:" (not "[*]:").
        wait_until(lambda p=prompt: re.search(r"\[\d+\]", p.text_content() or ""), timeout,
                   f"cell {i + 1} running to completion")


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

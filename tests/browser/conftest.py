"""Browser fixtures: Debian's Chromium through Playwright, a real JupyterLab, the Panel app.

Everything runs on loopback on free ports; JupyterLab's config, data, runtime and IPython
folders live in a temporary folder, so nothing of the user's is read or written. Screenshots
of each step go to ``tests/browser/artifacts/<test>/`` and stay there when the test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = os.environ.get("SAPARI_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "sapari_nb" / "static" / "sapari.js"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def need_browser() -> None:
    """Skip when Chromium or Playwright is missing, unless CI demands them (then fail)."""
    problems = []
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"Chromium is not installed at {CHROMIUM} (make browser-deps)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install -e '.[dev]')")
    if problems:
        msg = "; ".join(problems)
        if REQUIRE_SERVICES:
            pytest.fail(f"{msg}; SAPARI_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(msg)


def need_bundle() -> None:
    if not BUNDLE.is_file():
        # Never a skip: a missing bundle is a broken build, not a missing service.
        pytest.fail(f"the widgets' bundle {BUNDLE} is missing: run `make install` (or "
                    "`npm ci && npm run build` in widgets/)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Wait until ``url`` answers (any status below 500) or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """End a process we started and its children (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


class Shots:
    """Numbered screenshots of one test; the folder is removed again when the test passes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.n = 0
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def __call__(self, page: Any, name: str) -> None:
        self.n += 1
        try:
            page.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True)
        except Exception as e:  # a screenshot never fails the test it documents
            (self.folder / f"{self.n:02d}-{name}.txt").write_text(f"no screenshot: {e}\n")


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Iterator[Shots]:
    s = Shots(ARTIFACTS / request.node.name)
    yield s
    if not request.node.stash.get(_FAILED, True) and os.environ.get("SAPARI_KEEP_SHOTS") != "1":
        shutil.rmtree(s.folder, ignore_errors=True)
        if ARTIFACTS.is_dir() and not any(ARTIFACTS.iterdir()):
            ARTIFACTS.rmdir()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            # The cut preview plays media without a real user gesture in headless runs.
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
                  "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, shots: Shots) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    (shots.folder / "console.txt").write_text("\n".join(errors) + "\n")
    context.close()


class JupyterLab:
    def __init__(self, url: str, token: str, root: Path) -> None:
        self.url = url
        self.token = token
        self.root = root

    def notebook_url(self, name: str) -> str:
        # ?reset: no restored tabs (their hidden cells would match locators).
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        nb = {"nbformat": 4, "nbformat_minor": 5,
              "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                          "language": "python"}},
              "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": src,
                         "outputs": [], "execution_count": None}
                        for i, src in enumerate(cells)]}
        path = self.root / name
        path.write_text(json.dumps(nb))
        return path


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    need_browser()
    base = tmp_path_factory.mktemp("jupyter")
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        (base / sub).mkdir()
        env[var] = str(base / sub)
    root = base / "notebooks"
    root.mkdir()
    # The kernel imports the checkout's packages whatever its working folder.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    jupyter = [sys.executable, "-m", "jupyter"]
    # The "news" popup would cover the notebook; its extension off, in the temp config only.
    subprocess.run([*jupyter, "labextension", "disable",
                    "@jupyterlab/apputils-extension:announcements"],
                   env=env, check=True, capture_output=True)
    port, token = free_port(), secrets.token_hex(16)
    log = base / "jupyter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*jupyter, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--allow-root", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/api/status?token={token}", proc, log, timeout=60)
        yield JupyterLab(url, token, root)
    finally:
        stop_process(proc)


class PanelApp:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log


def start_panel_app(server_url: str, token: str, log: Path) -> PanelApp:
    """``sapari-nb app`` against a running job server, as a user starts it."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sapari_nb.cli", "app", "--port", str(port),
             "--server", server_url, "--token", token],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        # A static file: asking for the page itself would open a session.
        wait_http(f"{url}/favicon.ico", proc, log, timeout=60)
    except BaseException:
        stop_process(proc)
        raise
    return PanelApp(url, proc, log)

"""Browser test support (tests/browser and bench/widget_speed.py): a JupyterLab that touches
nothing of the user's, the Panel app as a user starts it, and notebook driving for Playwright.

Facts behind each choice are in WIDGETS.md (temp Jupyter folders, announcements off, ?reset,
wait for "Idle" before a key, a cell is done when its prompt shows a number).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SAPARI_CHROMIUM", "/usr/bin/chromium")
# Headless runs play media without a real user gesture (the cut preview).
CHROMIUM_ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
                 "--disable-dev-shm-usage"]

# Non-background pixels on a canvas: its corner pixel is taken as the background.
CANVAS_INK = """(c) => {
  const ctx = c.getContext("2d");
  if (!ctx || !c.width || !c.height) return -1;
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const bg = [d[0], d[1], d[2], d[3]];
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2])
        + Math.abs(d[i + 3] - bg[3]) > 40) n++;
  }
  return n;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # an element re-rendered between two calls: poll again
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last seen: {last!r})")


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Wait until ``url`` answers (any status below 500) or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """End a process started here and its children (it leads its own process group)."""
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


def _env_with_checkout() -> dict[str, str]:
    # Kernels and apps import this checkout's packages whatever their working folder.
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))


@dataclass
class JupyterLab:
    url: str
    token: str
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path

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

    def stop(self) -> None:
        stop_process(self.proc)


def start_jupyter_lab(base: Path, timeout: float = 90) -> JupyterLab:
    """JupyterLab on a free loopback port, every Jupyter/IPython folder under ``base``."""
    return start_jupyter_lab_routed(base, timeout=timeout)


def run_cells(page: Any, count: int, timeout: float = 60) -> None:
    """Run the open notebook's first ``count`` cells with Shift+Enter, each to completion."""
    # A key sent before the kernel is idle is lost.
    page.locator("#jp-main-statusbar").get_by_text(re.compile(r"\bIdle\b")).first.wait_for(
        timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
    for i in range(count):
        page.keyboard.press("Shift+Enter")
        prompt = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").nth(i)
        # Done when the prompt shows its execution count, e.g. "[1]:" (not "[*]:").
        wait_until(lambda p=prompt: re.search(r"\[\d+\]", p.text_content() or ""), timeout,
                   f"cell {i + 1} running to completion")


@dataclass
class PanelApp:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop_process(self.proc)


def start_panel_app(server_url: str, token: str, log: Path, timeout: float = 60) -> PanelApp:
    """``sapari-nb app`` against a running job server, as a user starts it."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sapari_nb.cli", "app", "--port", str(port),
             "--server", server_url, "--token", token],
            env=_env_with_checkout(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        # A static file: asking for the page itself would open a session.
        wait_http(f"{url}/favicon.ico", proc, log, timeout=timeout)
    except BaseException:
        stop_process(proc)
        raise
    return PanelApp(url, proc, log)


def start_jupyter_lab_routed(base: Path, base_url: str = "/", proxy: bool = True,
                             timeout: float = 90) -> JupyterLab:
    """JupyterLab on a free loopback port, every Jupyter/IPython folder under ``base``, under
    ``base_url`` (Binder serves the page under ``/user/<name>/``) and, with ``proxy=False``,
    without jupyter-server-proxy (a widget whose browser cannot reach the job server must
    then relay through the kernel).

    ``JupyterLab.url`` then ends with the base URL (no trailing slash), so ``notebook_url``
    holds it too.
    """
    env = _env_with_checkout()
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        (base / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(base / sub)
    if not proxy:
        # The user config folder (a temp one here) outranks the venv's enabling of the
        # extension; the temp folder keeps the user's own Jupyter untouched.
        (base / "config" / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {"jupyter_server_proxy": False}}}))
    root = base / "notebooks"
    root.mkdir(exist_ok=True)
    jupyter = [sys.executable, "-m", "jupyter"]
    # The "news" popup would cover the notebook: its extension off, in the temp config only.
    subprocess.run([*jupyter, "labextension", "disable",
                    "@jupyterlab/apputils-extension:announcements"],
                   env=env, check=True, capture_output=True)
    port, token = free_port(), secrets.token_hex(16)
    prefix = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    log = base / "jupyter.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*jupyter, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--allow-root", f"--IdentityProvider.token={token}",
             f"--ServerApp.base_url={prefix}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{port}{prefix.rstrip('/')}"
    try:
        wait_http(f"{url}/api/status?token={token}", proc, log, timeout=timeout)
    except BaseException:
        stop_process(proc)
        raise
    return JupyterLab(url, token, root, proc, log)

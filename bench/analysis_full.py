"""The whole analysis of a ~10-minute spoken talk through the job server, transcription included.

The talk is five random scripts from one sentence bank back to back, so sentences recur and
some are (rightly) judged repeated takes; this bench measures time, eval_edits.py quality.

Issue target: under 90 s on this 2-core machine (local faster-whisper tiny.en, offline take
heuristics, VAD silences). Prints processing and analysis wall times and x realtime.
Needs espeak-ng (speech) and the `local` extra (the model).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped
sys.path.insert(0, str(ROOT))

from sapari_nb import Client  # noqa: E402
from sapari_server.embedded import EmbeddedServer  # noqa: E402
from sapari_server.settings import Settings  # noqa: E402
from sapari_testkit.speechgen import generate_spoken_talk, random_script  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
TALK = CACHE / "spoken_10min.mp4"
MINUTES = 10


def make_talk() -> float:
    """Several random scripts back to back until the talk is 10 minutes long."""
    CACHE.mkdir(parents=True, exist_ok=True)
    script = []
    seed = 0
    while True:
        script += random_script(seed, n_sentences=30, p_false_start=0.25)
        seed += 1
        if seed >= 5:
            break
    tmp = TALK.with_suffix(".part.mp4")
    truth = generate_spoken_talk(tmp, script, video=True, seed=1)
    tmp.rename(TALK)
    return truth.duration


def main() -> None:
    if not TALK.exists():
        t = time.perf_counter()
        print(f"generated {TALK.name} ({make_talk():.0f} s) in {time.perf_counter() - t:.0f} s")
    with tempfile.TemporaryDirectory() as d:
        srv = EmbeddedServer(Settings(data_dir=Path(d), transcriber="local",
                                      preview_artifacts=False)).start()
        try:
            with Client(srv.url, srv.token, progress=False) as client:
                project = client.create_project("bench")
                after = client.cursor()
                t0 = time.perf_counter()
                clip = client.wait_clip(client.upload(project.id, TALK), after=after)
                t1 = time.perf_counter()
                run = client.wait_analysis(client.analyze(project.id), after=client.cursor())
                t2 = time.perf_counter()
        finally:
            srv.stop()
    dur = clip.duration or 0.0
    print(f"talk: {dur:.0f} s, {TALK.stat().st_size / 1e6:.1f} MB")
    print(f"{'step':<34}{'wall s':>8}{'x realtime':>12}")
    print(f"{'upload + process (probe, audio)':<34}{t1 - t0:>8.1f}{dur / (t1 - t0):>12.0f}")
    print(f"{'analysis (transcribe, VAD, takes)':<34}{t2 - t1:>8.1f}{dur / (t2 - t1):>12.1f}")
    print(f"analysis under 90 s: {'yes' if t2 - t1 < 90 else 'NO'}")
    print(f"edits: {run.summary['by_kind']}  detectors: {run.summary['detectors']}")


if __name__ == "__main__":
    main()

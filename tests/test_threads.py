"""threads.py: native pools sized from the cores this process may use (affinity), once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sapari_server import threads

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, os, sys
sys.path.insert(0, {server!r})
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})  # one core, as a pinned worker
from sapari_server import threads
threads.configure_environment(workers=2)
import onnxruntime  # noqa: F401  (loads after the environment is set)
from sapari_server.media import vad
sess = vad._session()
opts = sess.get_session_options()
print(json.dumps({{
    "cores": threads.available_cores(),
    "whisper": threads.whisper_threads(),
    "render": threads.render_threads(),
    "omp": os.environ["OMP_NUM_THREADS"],
    "user_blas": os.environ["OPENBLAS_NUM_THREADS"],
    "wait": os.environ["OMP_WAIT_POLICY"],
    "vad": [opts.intra_op_num_threads, opts.inter_op_num_threads],
}}))
"""


def test_available_cores_follow_affinity() -> None:
    cores = threads.available_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))
    assert threads.whisper_threads() == (cores, 1)
    assert threads.per_job_threads(cores * 4) == 1  # never below one


def test_pinned_process_sizes_every_pool_to_its_one_core() -> None:
    pytest.importorskip("onnxruntime")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "3"}  # a user's own choice is kept
    for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS"):
        env.pop(k, None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(server=str(ROOT / "server"))],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["cores"] == 1
    assert got["whisper"] == [1, 1] and got["render"] == 1
    assert got["omp"] == "1" and got["wait"] == "PASSIVE"
    assert got["user_blas"] == "3"
    assert got["vad"] == [1, 1]


def test_local_transcriber_takes_its_threads_from_here() -> None:
    pytest.importorskip("faster_whisper")
    from sapari_server.speech import LocalTranscriber, TranscriptionError

    try:
        tr = LocalTranscriber()
    except TranscriptionError as e:
        pytest.skip(str(e))
    assert tr.cpu_threads == threads.whisper_threads()[0]

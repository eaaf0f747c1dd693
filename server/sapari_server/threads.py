"""One place that sizes every thread pool the server's native libraries start.

A process may own fewer cores than the machine has (CPU affinity, a container's CPU quota),
and it may run several jobs at once (the embedded Huey consumer threads). Native libraries
size their pools from the machine's core count by default: CTranslate2 (Whisper), onnxruntime
(Silero VAD), OpenMP and BLAS each start one thread per core, per job. On a busy 2-core
machine that oversubscription, and OpenMP's spin-waiting threads, made identical 6-second
clips take 5.6 to 289 s to analyse. Here every pool is sized from the cores this process may
use, divided among the jobs it runs, and OpenMP threads sleep instead of spinning when idle.

``configure_environment()`` must run before the native libraries load (they read the
variables once); ``runtime`` calls it, and it is idempotent and keeps what the user set.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from . import heap

_workers = 1  # jobs this process runs side by side (set by configure_environment)


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def _cgroup_quota() -> int | None:
    """cpu.max of this process's cgroup ("max 100000" or "150000 100000"), rounded up."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    try:
        return max(1, math.ceil(int(text[0]) / int(text[1])))
    except (ValueError, ZeroDivisionError):
        return None


def job_workers() -> int:
    return _workers


def per_job_threads(workers: int | None = None) -> int:
    """Threads one job's native pools may use: the process's cores shared among its jobs.

    Never below one; a single job gets every core."""
    n = max(1, workers if workers is not None else _workers)
    return max(1, available_cores() // n)


def whisper_threads() -> tuple[int, int]:
    """(cpu_threads, num_workers) for faster-whisper's CTranslate2 model.

    The model is loaded once per process and shared by every job; with one CTranslate2
    worker, transcriptions that arrive together run one after the other instead of
    splitting the cores (each extra worker would also hold another copy of the decoder
    state). So the one worker gets every core the process has."""
    return available_cores(), 1


def vad_threads() -> tuple[int, int]:
    """(intra_op, inter_op) threads for the Silero VAD onnxruntime session.

    The model is a small sequential LSTM over 32 ms windows: extra threads only add
    synchronisation, so one of each, and the other cores stay free for decoding."""
    return 1, 1


def render_threads() -> int:
    """Threads for a render's audio encoders and x264: every core the process has. FFmpeg's
    and x264's threads block when idle (no spinning), so two jobs at once share the cores
    at little cost, while a lone render (the usual case) needs both to beat a plain
    re-encode."""
    return available_cores()


def limit_blas(threads: int) -> bool:
    """Cap numpy's OpenBLAS pool now (numpy is loaded before any setting is read, so the
    environment variable comes too late for it). Returns whether a pool was found."""
    import ctypes
    import glob

    try:
        import numpy
    except ImportError:
        return False
    libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
    for lib in glob.glob(str(libs / "libscipy_openblas*.so")) + glob.glob(
        str(libs / "libopenblas*.so*")
    ):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in (
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            fn = getattr(handle, name, None)
            if fn is not None:
                fn(ctypes.c_int(threads))
                return True
    return False


def configure_environment(workers: int = 1) -> None:
    """Size OpenMP/BLAS pools before the libraries load; remember how many jobs run at once.

    Values the user exported are kept."""
    global _workers
    _workers = max(1, workers)
    threads = str(per_job_threads())
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)
    # Idle OpenMP threads sleep instead of spinning (Intel's default spins 200 ms): a spinning
    # pool steals the CPU from the other job's threads on a busy machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    if "OPENBLAS_NUM_THREADS" not in _user_set:
        limit_blas(int(os.environ["OPENBLAS_NUM_THREADS"]))
    heap.configure()


# Thread variables the user exported before we set any: those are never overridden.
_user_set = {
    k for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
}


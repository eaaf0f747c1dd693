"""glibc malloc tuning: how much of what the job frees stays resident.

Values the user exported (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) are kept. On
other C libraries every call here is a no-op that returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

# glibc gives every thread that allocates its own malloc arena, up to 8 per core; with
# decoder, encoder, VAD and Whisper threads each arena keeps its freed blocks, and the
# process's resident size grew by ~100 MB over a job for memory no one used.
MALLOC_ARENAS = 2

# glibc serves a block under its mmap threshold from the heap, and that threshold grows to
# the largest block freed so far (up to 32 MB): after the first big numpy array or Whisper
# encoder buffer, every block of a few MB came from the heap, and the holes they left when
# freed stayed resident. A fixed threshold (which also stops it growing) gives blocks of
# 4 MB and more back to the system when they are freed: the 10-minute job's peak fell by
# ~35 MB. Lower thresholds saved a few MB more but the page faults of CTranslate2's 1-4 MB
# decoder buffers, mapped afresh each step, cost 20 % of the transcription's time.
MMAP_THRESHOLD = 4 << 20

# While a model loads: its file is read a tensor at a time and converted (float16 -> int8),
# and each freed read buffer of 0.1-4 MB left a hole in the heap that stayed resident.
LOADING_MMAP_THRESHOLD = 128 << 10

_libc: ctypes.CDLL | None = None


def configure() -> None:
    """The process-wide settings above, unless the user exported their own."""
    if "MALLOC_ARENA_MAX" not in os.environ:
        limit_arenas(MALLOC_ARENAS)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        set_mmap_threshold(MMAP_THRESHOLD)


def set_mmap_threshold(size: int) -> bool:
    """mallopt(M_MMAP_THRESHOLD): blocks of ``size`` bytes and more are mapped, not heap."""
    return _call("mallopt", ctypes.c_int(-3), ctypes.c_int(size))


def limit_arenas(arenas: int) -> bool:
    """mallopt(M_ARENA_MAX): applies to arenas created from now on."""
    return _call("mallopt", ctypes.c_int(-8), ctypes.c_int(arenas))


def trim() -> bool:
    """malloc_trim(0): give the free pages of every arena back to the system."""
    return _call("malloc_trim", ctypes.c_size_t(0))


@contextmanager
def loading() -> Iterator[None]:
    """Around a model load: its transient buffers are mapped (so freeing them returns them),
    and the heap is trimmed before and after. The 10-minute job's peak fell by ~14 MB."""
    lower = "MALLOC_MMAP_THRESHOLD_" not in os.environ
    trim()
    if lower:
        set_mmap_threshold(LOADING_MMAP_THRESHOLD)
    try:
        yield
    finally:
        if lower:
            set_mmap_threshold(MMAP_THRESHOLD)
        trim()


def _call(name: str, *args: object) -> bool:
    global _libc
    try:
        if _libc is None:
            path = ctypes.util.find_library("c")
            if not path:
                return False
            _libc = ctypes.CDLL(path)
        return bool(getattr(_libc, name)(*args))
    except (OSError, AttributeError):
        return False

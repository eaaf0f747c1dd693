"""The analysis DAG runs silences beside transcription only when transcription is remote."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from sapari_server.pipelines.analyze import _step_workers
from sapari_server.pipelines.dag import Step, StepContext, run_dag


@pytest.mark.parametrize(
    ("transcriber", "workers"),
    [(SimpleNamespace(name="local"), 1), (SimpleNamespace(name="openai"), 2), (None, 2)],
)
def test_local_whisper_runs_alone(transcriber: object, workers: int) -> None:
    assert _step_workers(transcriber) == workers  # type: ignore[arg-type]


def _timed(name: str, spans: dict[str, tuple[float, float]], lock: threading.Lock) -> Step:
    class Timed(Step):
        needs = ("load",)

        def execute(self, ctx: StepContext) -> None:
            t0 = time.monotonic()
            time.sleep(0.2)
            with lock:
                spans[self.name] = (t0, time.monotonic())

    Timed.name = name
    return Timed()


class Load(Step):
    name = "load"

    def execute(self, ctx: StepContext) -> None:
        return None


@pytest.mark.parametrize("workers", [1, 2])
def test_steps_overlap_only_with_two_workers(workers: int) -> None:
    spans: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()
    steps = [Load(), _timed("transcribe", spans, lock), _timed("silences", spans, lock)]
    run_dag(steps, {}, max_workers=workers)
    (a0, a1), (b0, b1) = spans["transcribe"], spans["silences"]
    overlap = a0 < b1 and b0 < a1
    assert overlap is (workers == 2)
    if workers == 1:
        assert a1 <= b0  # in list order: transcription first (its peak, then the VAD's)

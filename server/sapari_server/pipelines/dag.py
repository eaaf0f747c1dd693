"""A tiny DAG runner: a step runs once its ``needs`` are done; independent steps run side by side.

Progress is the weighted sum of step progress, reported through one callback.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class StepContext:
    """Shared by the steps of one run: inputs, results by step name, and progress."""

    inputs: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    report: Callable[..., None] = lambda name, f, detail="": None

    def need(self, name: str) -> Any:
        return self.results[name]


class Step(ABC):
    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    weight: ClassVar[float] = 1.0

    @abstractmethod
    def execute(self, ctx: StepContext) -> Any: ...

    def progress(self, ctx: StepContext, fraction: float, detail: str = "") -> None:
        """Report this step's own progress; ``detail`` says where it is (e.g. 1:20 / 5:00)."""
        ctx.report(self.name, fraction, detail)


def check_graph(steps: list[Step]) -> None:
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate step names in {names}")
    for s in steps:
        missing = set(s.needs) - set(names)
        if missing:
            raise ValueError(f"step {s.name} needs unknown steps {sorted(missing)}")


def run_dag(steps: list[Step], inputs: dict[str, Any],
            progress: Callable[[float, str], None] | None = None,
            max_workers: int = 2) -> dict[str, Any]:
    check_graph(steps)
    total = sum(s.weight for s in steps) or 1.0
    done_frac: dict[str, float] = {s.name: 0.0 for s in steps}
    started: dict[str, float] = {}
    lock = threading.Lock()

    def report(name: str, fraction: float, detail: str = "") -> None:
        # The message names the step, where it is, and how long it has run, so a long
        # step never looks hung (the overall fraction may move slowly).
        with lock:
            done_frac[name] = min(max(fraction, 0.0), 1.0)
            overall = sum(done_frac[s.name] * s.weight for s in steps) / total
            elapsed = time.monotonic() - started.setdefault(name, time.monotonic())
        if progress:
            message = f"{name} {detail}".strip() if detail else name
            if elapsed >= 1.0 and fraction < 1.0:
                message += f" ({elapsed:.0f} s)"
            progress(overall, message)

    ctx = StepContext(inputs=inputs, report=report)
    pending = {s.name: s for s in steps}
    running: dict[Future[Any], Step] = {}
    finished: set[str] = set()
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="step") as pool:
        while pending or running:
            for name, step in list(pending.items()):
                if set(step.needs) <= finished:
                    del pending[name]
                    report(name, 0.0)
                    running[pool.submit(step.execute, ctx)] = step
            if not running:
                raise ValueError(f"steps {sorted(pending)} can never run: a cycle in needs")
            done, _ = wait(list(running), return_when=FIRST_EXCEPTION)
            for fut in done:
                step = running.pop(fut)
                ctx.results[step.name] = fut.result()  # re-raises the step's error
                finished.add(step.name)
                report(step.name, 1.0)
    return ctx.results

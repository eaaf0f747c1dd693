"""Progress messages name the step, where it is, and how long it has run."""

from __future__ import annotations

import time

from sapari_server.pipelines.dag import Step, StepContext, run_dag


class Slow(Step):
    name = "transcribe"

    def execute(self, ctx: StepContext) -> None:
        self.progress(ctx, 0.5, "1:00 / 2:00")
        time.sleep(1.1)
        self.progress(ctx, 0.75, "1:30 / 2:00")


def test_messages_carry_detail_and_elapsed_time() -> None:
    seen: list[tuple[float, str]] = []
    run_dag([Slow()], {}, progress=lambda f, m: seen.append((f, m)))
    messages = [m for _, m in seen]
    assert "transcribe 1:00 / 2:00" in messages
    assert "transcribe 1:30 / 2:00 (1 s)" in messages
    assert seen[-1] == (1.0, "transcribe")

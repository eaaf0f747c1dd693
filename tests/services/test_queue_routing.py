"""Every job kind has a queue; heavy and light are separate queues on the embedded default
too (one SQLite file), with the periodic sweeps on light. No service needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sapari_server.queue.consumer import serving
from sapari_server.queue.factory import HEAVY, LIGHT, QUEUES
from sapari_server.queue.tasks import QUEUE_OF, bind_tasks, enqueue, handlers, queue_of
from sapari_server.runtime import build_runtime
from sapari_server.settings import Settings


def test_every_job_kind_runs_on_a_known_queue() -> None:
    assert set(handlers()) <= set(QUEUE_OF), "add the new kind to QUEUE_OF (heavy or light)"
    assert set(QUEUE_OF.values()) <= set(QUEUES)
    # Video encoding is heavy; analysis is light.
    assert queue_of("render_export") == queue_of("process_clip") == HEAVY
    assert queue_of("analyze_project") == LIGHT
    with pytest.raises(LookupError, match="QUEUE_OF"):
        queue_of("no_such_kind")
    assert serving("all") == QUEUES and serving("heavy") == (HEAVY,)
    with pytest.raises(ValueError, match="heavy, light"):
        serving("fast")


def test_embedded_queues_are_separate_in_one_file(tmp_path: Path) -> None:
    rt = build_runtime(Settings(data_dir=tmp_path, queue_name="t"))
    try:
        heavy, light = rt.queues[HEAVY], rt.queues[LIGHT]
        assert heavy.storage.filename == light.storage.filename == str(tmp_path / "queue.db")
        bind_tasks(rt)
        enqueue(rt, "render_export", "job_render", 0)
        enqueue(rt, "analyze_project", "job_analysis", 10)
        assert [t.args for t in heavy.pending()] == [("job_render",)]
        assert [t.args for t in light.pending()] == [("job_analysis",)]
        assert {t.name for t in light._registry.periodic_tasks} == {
            "recover_jobs", "storage_lifecycle"}
        assert not heavy._registry.periodic_tasks
    finally:
        rt.close()

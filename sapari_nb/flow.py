"""The main job end to end through the API: upload, process, analyze, accept, render, download."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import Client
from .errors import Interrupted, SapariError
from .events import Event
from .outputs import atomic_output

log = logging.getLogger(__name__)
# Timeline formats and the file extension each is written with.
TIMELINE_EXT = {"fcpxml": "fcpxml", "premiere": "xml", "edl": "edl", "otio": "otio",
                "srt": "srt", "vtt": "vtt"}


@dataclass
class EditResult:
    output: Path
    project_id: str
    export_id: str
    input_duration: float
    output_duration: float
    cuts: list[dict[str, Any]]
    timelines: list[Path]
    # What the analysis used ("silence", "transcript:local", "takes:heuristic", ...) and
    # anything it could not do, in plain words.
    detectors: list[str]
    notes: list[str]


def timeline_path(out: Path, fmt: str) -> Path:
    return out.with_suffix(f".{TIMELINE_EXT[fmt]}")


def output_paths(out: Path, edits_json: Path | None = None,
                 timelines: list[str] | None = None) -> list[tuple[str, Path]]:
    """Every file ``edit_file`` writes, with the flag that names it (for clash checks)."""
    paths = [("-o", out)]
    if edits_json is not None:
        paths.append(("--edits", edits_json))
    for fmt in dict.fromkeys(timelines or []):
        paths.append((f"--timeline {fmt}", timeline_path(out, fmt)))
    return paths


def edit_file(client: Client, src: Path, out: Path, *, edits_json: Path | None = None,
              analysis: dict[str, Any] | None = None,
              export: dict[str, Any] | None = None, project_name: str | None = None,
              priority: str = "interactive", timelines: list[str] | None = None,
              cleanup: bool = False) -> EditResult:
    """Cut the silences out of ``src`` into ``out``; optionally write the applied cuts as JSON.

    Every output is written under a temporary name beside it and renamed only when all of
    them are ready: a failure or Ctrl-C leaves no partial file under the user's names.
    Ctrl-C (``KeyboardInterrupt``) cancels the job running on the server and raises
    ``Interrupted``. ``cleanup`` deletes the project (and its stored bytes) at the end,
    whatever happened.
    """
    project = client.create_project(project_name or src.stem)
    running: dict[str, str | None] = {"job": None}
    try:
        with ExitStack() as outputs:
            result = _run(client, project.id, src, out, running, outputs, edits_json=edits_json,
                          analysis=analysis, export=export, priority=priority,
                          timelines=timelines)
        return result
    except KeyboardInterrupt:
        raise Interrupted(_cancel(client, running["job"])) from None
    finally:
        if cleanup:
            try:
                client.delete_project(project.id, purge=True)
            except SapariError as e:
                log.warning("could not delete project %s: %s", project.id, e)


def _cancel(client: Client, job_id: str | None) -> str | None:
    """Cancel the running job; its id when the server took the cancel."""
    if job_id is None:
        return None
    try:
        client.cancel(job_id)
    except SapariError as e:  # 409: it finished meanwhile; nothing left to stop
        log.info("cancel %s: %s", job_id, e)
        return None
    return job_id


def _run(client: Client, project_id: str, src: Path, out: Path, running: dict[str, str | None],
         outputs: ExitStack, *, edits_json: Path | None, analysis: dict[str, Any] | None,
         export: dict[str, Any] | None, priority: str,
         timelines: list[str] | None) -> EditResult:
    after = client.cursor()
    clip = client.upload(project_id, src)

    def clip_job(ev: Event) -> None:
        # ClipUploaded and JobProgress name the processing job: what Ctrl-C cancels.
        if clip.id in (ev.payload.get("clip_id"), ev.payload.get("target_id")):
            running["job"] = ev.payload.get("job_id") or running["job"]

    clip = client.wait_clip(clip, after=after, on_event=clip_job)
    after = client.cursor()
    run = client.analyze(project_id, priority=priority, **(analysis or {}))
    running["job"] = run.job_id
    run = client.wait_analysis(run, after=after)
    client.accept_all(project_id)
    after = client.cursor()
    exp = client.export(project_id, priority=priority, **(export or {}))
    running["job"] = exp.job_id
    exp = client.wait_export(exp, after=after)
    running["job"] = None
    client.download(exp.id, outputs.enter_context(atomic_output(out)), label=out.name)
    cuts = [{"start": c["start"], "end": c["end"], "kind": c["kind"], "reason": c["reason"]}
            for c in (exp.result or {}).get("cuts", [])]
    if edits_json is not None:
        outputs.enter_context(atomic_output(edits_json)).write_text(
            json.dumps(cuts, indent=2) + "\n")
    written = []
    for fmt in dict.fromkeys(timelines or []):
        # The NLE should open the user's own file, not the server's copy of it.
        content = client.timeline(project_id, fmt, media_dir=str(src.resolve().parent))
        path = timeline_path(out, fmt)
        outputs.enter_context(atomic_output(path)).write_bytes(content)
        written.append(path)
    summary = run.summary or {}
    return EditResult(out, project_id, exp.id, clip.duration or 0.0, exp.duration or 0.0, cuts,
                      written, summary.get("detectors", []), summary.get("notes", []))

"""The main job end to end through the API: upload, process, analyze, accept, render, download."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import Client


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


def edit_file(client: Client, src: Path, out: Path, *, edits_json: Path | None = None,
              analysis: dict[str, Any] | None = None,
              export: dict[str, Any] | None = None, project_name: str | None = None,
              priority: str = "interactive", timelines: list[str] | None = None) -> EditResult:
    """Cut the silences out of ``src`` into ``out``; optionally write the applied cuts as JSON."""
    project = client.create_project(project_name or src.stem)
    after = client.cursor()
    clip = client.upload(project.id, src)
    clip = client.wait_clip(clip, after=after)
    after = client.cursor()
    run = client.analyze(project.id, priority=priority, **(analysis or {}))
    run = client.wait_analysis(run, after=after)
    client.accept_all(project.id)
    after = client.cursor()
    exp = client.export(project.id, priority=priority, **(export or {}))
    exp = client.wait_export(exp, after=after)
    client.download(exp.id, out)
    cuts = [{"start": c["start"], "end": c["end"], "kind": c["kind"], "reason": c["reason"]}
            for c in (exp.result or {}).get("cuts", [])]
    if edits_json is not None:
        edits_json.parent.mkdir(parents=True, exist_ok=True)
        edits_json.write_text(json.dumps(cuts, indent=2) + "\n")
    written = []
    for fmt in timelines or []:
        # The NLE should open the user's own file, not the server's copy of it.
        content = client.timeline(project.id, fmt, media_dir=str(src.resolve().parent))
        ext = {"premiere": "xml"}.get(fmt, fmt)
        path = out.with_suffix(f".{ext}")
        path.write_bytes(content)
        written.append(path)
    summary = run.summary or {}
    return EditResult(out, project.id, exp.id, clip.duration or 0.0, exp.duration or 0.0, cuts,
                      written, summary.get("detectors", []), summary.get("notes", []))

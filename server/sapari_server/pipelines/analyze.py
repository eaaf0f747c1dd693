"""analyze_project: the analysis DAG over every ready clip of a project, ending in Edit rows."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from ..db.base import utcnow
from ..db.models import AnalysisRun, Artifact, Clip, Edit
from ..events.log import record_event
from ..media.silence import SilenceSettings, detect_pauses
from ..queue.jobs import JobContext, JobFailure, fail_target
from .cuts import Range, clean_cuts, usable_duration
from .dag import Step, StepContext, run_dag


@dataclass
class ClipLevels:
    clip_id: str
    duration: float
    hop: float
    levels_db: np.ndarray
    wav16k: Path | None


class LoadLevels(Step):
    name = "load_audio"
    weight = 0.2

    def execute(self, ctx: StepContext) -> list[ClipLevels]:
        storage = ctx.inputs["storage"]
        stack: ExitStack = ctx.inputs["stack"]
        out = []
        for clip_id, duration, key, hop, wav_key in ctx.inputs["clips"]:
            with storage.local_path(key) as p:
                levels = np.load(p)
            wav = stack.enter_context(storage.local_path(wav_key)) if wav_key else None
            out.append(ClipLevels(clip_id, duration, hop, levels, wav))
        return out


class DetectSilences(Step):
    name = "silences"
    needs = ("load_audio",)
    weight = 0.6

    def execute(self, ctx: StepContext) -> dict[str, list[Range]]:
        settings: SilenceSettings = ctx.inputs["silence"]
        found: dict[str, list[Range]] = {}
        clips: list[ClipLevels] = ctx.need("load_audio")
        for i, c in enumerate(clips):
            cuts = detect_pauses(c.levels_db, c.wav16k, c.duration, settings, hop=c.hop)
            found[c.clip_id] = [
                Range(x.start, x.end, x.kind, x.reason, {"level_db": round(x.level_db, 1)})
                for x in cuts
            ]
            self.progress(ctx, (i + 1) / len(clips))
        return found


class Validate(Step):
    name = "validate"
    needs = ("silences",)
    weight = 0.2

    def execute(self, ctx: StepContext) -> dict[str, list[Range]]:
        durations = {c.clip_id: c.duration for c in ctx.need("load_audio")}
        return {cid: clean_cuts(cuts, durations[cid])
                for cid, cuts in ctx.need("silences").items()}


def analyze_project(ctx: JobContext) -> None:
    rt = ctx.rt
    with rt.sync_session() as s, s.begin():
        run = s.get(AnalysisRun, ctx.target_id)
        if run is None or run.is_deleted:
            raise JobFailure(f"analysis run {ctx.target_id} no longer exists")
        run.status = "running"
        record_event(s, user_id=run.user_id, project_id=run.project_id,
                     type="AnalysisStarted", payload={"analysis_id": run.id})
        project_id, s_cfg = run.project_id, dict(run.settings)
    rt.bus.notify(ctx.user_id)
    with rt.sync_session() as s:
        clips = list(s.scalars(
            select(Clip).where(Clip.project_id == project_id, Clip.is_deleted.is_(False))
            .order_by(Clip.position, Clip.created_at)))
        not_ready = [c.filename for c in clips if c.status != "ready"]
        if not clips:
            raise JobFailure("the project has no clips: upload a recording before analyzing")
        if not_ready:
            raise JobFailure(
                f"clips not processed yet ({', '.join(not_ready)}): wait for ClipReady, "
                "or remove clips that failed, then analyze again")
        inputs_clips = []
        for c in clips:
            arts = {a.kind: a for a in s.scalars(select(Artifact).where(
                Artifact.clip_id == c.id, Artifact.is_deleted.is_(False)))}
            if "levels" not in arts:
                raise JobFailure(f"clip {c.filename} has no audio levels: process it again")
            wav = arts.get("audio")
            inputs_clips.append((c.id, usable_duration(c), arts["levels"].object_key,
                                 arts["levels"].meta["hop"], wav.object_key if wav else None))
    threshold = s_cfg.get("silence_threshold_db", rt.settings.silence_threshold_db)
    silence = SilenceSettings(
        method=s_cfg.get("silence_method", rt.settings.silence_method),
        threshold_db=None if threshold == "auto" else float(threshold),
        min_silence=s_cfg.get("min_silence", rt.settings.min_silence),
        padding=s_cfg.get("padding", rt.settings.padding),
    )
    with ExitStack() as stack:
        results = run_dag(
            [LoadLevels(), DetectSilences(), Validate()],
            {"clips": inputs_clips, "storage": rt.storage, "silence": silence, "stack": stack},
            progress=lambda f, step: ctx.progress(f, step),
        )
    cuts: dict[str, list[Range]] = results["validate"]
    write_edits(ctx, cuts)


def write_edits(ctx: JobContext, cuts: dict[str, list[Range]]) -> None:
    rt = ctx.rt
    with rt.sync_session() as s, s.begin():
        run = s.get(AnalysisRun, ctx.target_id)
        assert run is not None
        # A new analysis replaces the old proposals; the user's accept/reject and manual
        # edits stay.
        for old in s.scalars(select(Edit).where(
                Edit.project_id == run.project_id, Edit.source == "auto",
                Edit.status == "proposed", Edit.is_deleted.is_(False))):
            old.soft_delete()
        n = 0
        total_cut = 0.0
        for clip_id, ranges in cuts.items():
            for r in ranges:
                s.add(Edit(user_id=run.user_id, project_id=run.project_id, clip_id=clip_id,
                           analysis_run_id=run.id, kind=r.kind, start=round(r.start, 4),
                           end=round(r.end, 4), reason=r.reason, status="proposed",
                           source="auto", meta=r.meta))
                n += 1
                total_cut += r.end - r.start
        run.status = "succeeded"
        run.summary = {"edits": n, "seconds_cut": round(total_cut, 3),
                       "detectors": ["silence"], "finished_at": utcnow().isoformat()}
        record_event(s, user_id=run.user_id, project_id=run.project_id, type="AnalysisComplete",
                     payload={"analysis_id": run.id, **run.summary})
    rt.bus.notify(ctx.user_id)


analyze_failed = fail_target(AnalysisRun, "AnalysisFailed", "analysis_id")

"""process_clip: probe an uploaded clip, decode its audio once into levels, peaks and a 16 kHz WAV."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from .. import keys
from ..db.models import Artifact, Clip
from ..events.log import record_event
from ..media.audio import AudioAnalysis, analyze_audio
from ..media.errors import MediaError
from ..media.probe import MediaInfo, probe
from ..queue.jobs import JobContext, JobFailure, fail_target
from .dag import Step, StepContext, run_dag

HOP = 0.01
PEAKS_PER_SECOND = 100


class Probe(Step):
    name = "probe"
    weight = 0.05

    def execute(self, ctx: StepContext) -> MediaInfo:
        info = probe(ctx.inputs["path"])
        if info.audio is None:
            raise MediaError(
                f"{ctx.inputs['filename']} has no audio track: sapari-nb finds cuts by listening "
                "to speech, so upload a recording that includes its sound"
            )
        return info


class DecodeAudio(Step):
    name = "audio"
    needs = ("probe",)
    weight = 0.85

    def execute(self, ctx: StepContext) -> AudioAnalysis:
        return analyze_audio(
            ctx.inputs["path"], hop=HOP, peaks_per_second=PEAKS_PER_SECOND,
            wav_out=ctx.inputs["workdir"] / "audio16k.wav",
            progress=lambda f: self.progress(ctx, f),
        )


class StoreArtifacts(Step):
    name = "store"
    needs = ("audio",)
    weight = 0.1

    def execute(self, ctx: StepContext) -> list[dict[str, Any]]:
        analysis: AudioAnalysis = ctx.need("audio")
        work: Path = ctx.inputs["workdir"]
        # Analysis reads the hum-rejected levels where the decoder made them.
        levels = analysis.levels_dehum_db
        np.save(work / "levels.npy",
                (analysis.levels_db if levels is None else levels).astype(np.float32))
        (work / "peaks.i16").write_bytes(np.ascontiguousarray(analysis.peaks, "<i2").tobytes())
        made = []
        for kind, name, meta in (
            ("levels", "levels.npy", {"hop": analysis.hop, "unit": "dBFS",
                                      "dehum": analysis.levels_dehum_db is not None}),
            ("peaks", "peaks.i16", {"per_second": analysis.peaks_per_second,
                                    "layout": "int16 min,max pairs"}),
            ("audio", "audio16k.wav", {"sample_rate": 16000, "channels": 1}),
        ):
            key = keys.clip_artifact(*ctx.inputs["ids"], name)
            obj = ctx.inputs["storage"].put_file(key, work / name)
            made.append({"kind": kind, "object_key": key, "size": obj.size, "meta": meta})
        return made


def process_clip(ctx: JobContext) -> None:
    rt = ctx.rt
    with rt.sync_session() as s, s.begin():
        clip = s.get(Clip, ctx.target_id)
        if clip is None or clip.is_deleted:
            raise JobFailure(f"clip {ctx.target_id} no longer exists")
        clip.status = "processing"
        ids = (clip.user_id, clip.project_id, clip.id)
        key, filename = clip.object_key, clip.filename

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sapari-clip-")))
        path = stack.enter_context(rt.storage.local_path(key))
        results = run_dag(
            [Probe(), DecodeAudio(), StoreArtifacts()],
            {"path": path, "filename": filename, "workdir": work, "ids": ids,
             "storage": rt.storage},
            progress=lambda f, step: ctx.progress(f, step),
        )
    info: MediaInfo = results["probe"]
    analysis: AudioAnalysis = results["audio"]
    with rt.sync_session() as s, s.begin():
        clip = s.get(Clip, ctx.target_id)
        assert clip is not None
        # Re-processing (a retried job) replaces the artifacts instead of piling them up.
        for old in s.scalars(select(Artifact).where(Artifact.clip_id == clip.id,
                                                    Artifact.is_deleted.is_(False))):
            old.soft_delete()
        for a in results["store"]:
            s.add(Artifact(user_id=clip.user_id, clip_id=clip.id, **a))
        clip.status = "ready"
        clip.error = None
        clip.duration = analysis.duration
        clip.media_info = info.to_dict()
        record_event(s, user_id=clip.user_id, project_id=clip.project_id, type="ClipReady",
                     payload={"clip_id": clip.id, "duration": analysis.duration,
                              "media_info": clip.media_info})
    rt.bus.notify(ctx.user_id)


process_clip_failed = fail_target(Clip, "ClipFailed", "clip_id")

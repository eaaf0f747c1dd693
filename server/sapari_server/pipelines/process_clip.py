"""process_clip: probe an uploaded clip, decode its audio once into levels, peaks and a 16 kHz WAV."""

from __future__ import annotations

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
from ..media.peaks import build_peak_pyramid, write_pyramid
from ..media.probe import MediaInfo, probe
from ..media.proxy import ProxyInfo, make_proxy
from ..media.thumbnails import SpriteInfo, make_thumbnail_sprite
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
        # The time limit scales with the real duration from here on.
        ctx.inputs["job"].set_media_seconds(info.duration)
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


class Proxy(Step):
    """Low-resolution preview with the source's frame times, for the browser timeline."""

    name = "proxy"
    needs = ("probe",)
    weight = 1.0

    def execute(self, ctx: StepContext) -> ProxyInfo | None:
        if not ctx.inputs["previews"]:
            return None
        return make_proxy(ctx.inputs["path"], ctx.inputs["workdir"] / "proxy.mp4",
                          progress=lambda f: self.progress(ctx, f))


class Sprite(Step):
    name = "thumbnails"
    needs = ("probe",)
    weight = 0.05

    def execute(self, ctx: StepContext) -> SpriteInfo | None:
        info: MediaInfo = ctx.need("probe")
        if not ctx.inputs["previews"] or info.video is None:
            return None
        return make_thumbnail_sprite(ctx.inputs["path"], ctx.inputs["workdir"] / "sprite.jpg",
                                     progress=lambda f: self.progress(ctx, f))


class PeakPyramid(Step):
    """Waveform peaks at halving resolutions, one HTTP range per zoom level."""

    name = "peaks"
    needs = ("audio",)
    weight = 0.01

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        analysis: AudioAnalysis = ctx.need("audio")
        levels = build_peak_pyramid(analysis.peaks, analysis.peaks_per_second)
        return write_pyramid(levels, ctx.inputs["workdir"] / "peaks.pyr")


def _store(ctx: StepContext, items: tuple[tuple[str, str, dict[str, Any]], ...],
           ) -> list[dict[str, Any]]:
    job: JobContext = ctx.inputs["job"]
    work: Path = ctx.inputs["workdir"]
    made = []
    for kind, name, meta in items:
        key = keys.clip_artifact(*ctx.inputs["ids"], name, job.tag)
        obj = job.put_file(key, work / name)
        made.append({"kind": kind, "object_key": key, "size": obj.size, "meta": meta})
    return made


class StoreAudio(Step):
    """Levels, peaks and the 16 kHz WAV go to storage while the proxy still encodes."""

    name = "store_audio"
    needs = ("audio", "peaks")
    weight = 0.03

    def execute(self, ctx: StepContext) -> list[dict[str, Any]]:
        analysis: AudioAnalysis = ctx.need("audio")
        work: Path = ctx.inputs["workdir"]
        # Analysis reads the hum-rejected levels where the decoder made them.
        levels = analysis.levels_dehum_db
        np.save(work / "levels.npy",
                (analysis.levels_db if levels is None else levels).astype(np.float32))
        (work / "peaks.i16").write_bytes(np.ascontiguousarray(analysis.peaks, "<i2").tobytes())
        return _store(ctx, (
            ("levels", "levels.npy", {"hop": analysis.hop, "unit": "dBFS",
                                      "dehum": analysis.levels_dehum_db is not None}),
            ("peaks", "peaks.i16", {"per_second": analysis.peaks_per_second,
                                    "layout": "int16 min,max pairs"}),
            ("audio", "audio16k.wav", {"sample_rate": 16000, "channels": 1}),
            ("peak_pyramid", "peaks.pyr", ctx.need("peaks")),
        ))


class StorePreviews(Step):
    name = "store_previews"
    needs = ("proxy", "thumbnails")
    weight = 0.02

    def execute(self, ctx: StepContext) -> list[dict[str, Any]]:
        return _store(ctx, tuple(
            # The worker's temporary path means nothing to anyone else.
            (kind, name, {k: v for k, v in info.to_dict().items() if k != "path"})
            for kind, name, info in (
                ("proxy", "proxy.mp4", ctx.need("proxy")),
                ("thumbnails", "sprite.jpg", ctx.need("thumbnails"))) if info is not None
        ))


def process_clip(ctx: JobContext) -> None:
    rt = ctx.rt
    with ctx.session() as s:
        clip = s.get(Clip, ctx.target_id)
        if clip is None or clip.is_deleted:
            raise JobFailure(f"clip {ctx.target_id} no longer exists")
        clip.status = "processing"
        ids = (clip.user_id, clip.project_id, clip.id)
        key, filename = clip.object_key, clip.filename

    with ExitStack() as stack:
        work = stack.enter_context(ctx.scratch())
        path = stack.enter_context(rt.storage.local_path(key))
        # Errors about the server's copy name the user's file.
        ctx.alias(path, filename)
        results = run_dag(
            [Probe(), DecodeAudio(), Proxy(), Sprite(), PeakPyramid(), StoreAudio(),
             StorePreviews()],
            {"path": path, "filename": filename, "workdir": work, "ids": ids, "job": ctx,
             "previews": rt.settings.preview_artifacts},
            progress=lambda f, step: ctx.progress(f, step),
        )
    info: MediaInfo = results["probe"]
    analysis: AudioAnalysis = results["audio"]
    with ctx.finish() as s:
        clip = s.get(Clip, ctx.target_id)
        assert clip is not None
        # Re-processing (a retried job) replaces the artifacts instead of piling them up.
        for old in s.scalars(select(Artifact).where(Artifact.clip_id == clip.id,
                                                    Artifact.is_deleted.is_(False))):
            old.soft_delete()
        for a in results["store_audio"] + results["store_previews"]:
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

"""analyze_project: the analysis DAG over every ready clip of a project, ending in Edit rows.

    load_audio -> transcribe ----------> takes -> validate -> Edit rows
              \\-> silences (in parallel) -/

Silences come from the audio (VAD guarded by the loudness floor); takes from the transcript
and the audio together. With no transcriber, silences only, and the summary says why.
Every cut's edges are then placed on the audio (``media.edges``): the voiced stretches the
VAD and the levels show, never Whisper's word times, which start late after a pause.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from ..db.base import utcnow
from ..db.models import AnalysisRun, Artifact, Clip, Edit, Transcript
from ..events.log import record_event
from ..media.edges import SpeechTrack, refine_on_spectrum, snap_cut, speech_track
from ..media.silence import SilenceSettings, detect_pauses
from ..media.spectrum import wav_reader
from ..queue.jobs import JobContext, JobFailure, fail_target
from ..speech.factory import make_transcriber, transcriber_status
from ..speech.restarts import find_restarts_in_wav
from ..speech.second_pass import fill_gaps, local_listener
from ..speech.takes import TakeDetectionError, add_restarts, make_take_detector
from ..speech.types import Transcriber, TranscriptionError, Word
from .cuts import Range, clean_cuts, keep_segments, usable_duration
from .dag import Step, StepContext, run_dag
from .place_takes import place_takes

log = logging.getLogger(__name__)


@dataclass
class ClipAudio:
    clip_id: str
    duration: float
    hop: float
    levels_db: np.ndarray
    wav16k: Path | None
    transcript: list[Word] | None  # a stored transcript from this backend, reused
    filename: str = ""


class LoadAudio(Step):
    name = "load_audio"
    weight = 0.05

    def execute(self, ctx: StepContext) -> list[ClipAudio]:
        storage = ctx.inputs["storage"]
        stack: ExitStack = ctx.inputs["stack"]
        out = []
        for c in ctx.inputs["clips"]:
            with storage.local_path(c["levels_key"]) as p:
                levels = np.load(p)
            wav = stack.enter_context(storage.local_path(c["wav_key"])) if c["wav_key"] else None
            out.append(ClipAudio(c["id"], c["duration"], c["hop"], levels, wav, c["words"],
                                 c["filename"]))
        return out


class Transcribe(Step):
    name = "transcribe"
    needs = ("load_audio",)
    weight = 0.6

    def execute(self, ctx: StepContext) -> dict[str, list[Word]]:
        tr: Transcriber | None = ctx.inputs["transcriber"]
        clips: list[ClipAudio] = ctx.need("load_audio")
        found: dict[str, list[Word]] = {}
        if tr is None:
            return found
        total = sum(c.duration for c in clips) or 1.0
        done = 0.0
        for c in clips:
            if c.transcript is not None:
                found[c.clip_id] = c.transcript
            elif c.wav16k is not None:
                base = done

                def report(f: float, msg: str, base: float = base,
                           d: float = c.duration) -> None:
                    # msg: "transcribe 1:20 / 5:00"; the step's name comes from the DAG.
                    self.progress(ctx, (base + f * d) / total,
                                  msg.removeprefix("transcribe").strip())

                try:
                    t = tr.transcribe(c.wav16k, duration=c.duration, progress=report)
                except TranscriptionError as e:
                    raise JobFailure(f"transcription failed: {e}") from None
                found[c.clip_id] = t.words
                ctx.inputs["save_transcript"](c.clip_id, t)
            done += c.duration
            self.progress(ctx, done / total)
        return found


class Silences(Step):
    name = "silences"
    needs = ("load_audio",)
    weight = 0.15

    def execute(self, ctx: StepContext) -> dict[str, list[Range]]:
        settings: SilenceSettings = ctx.inputs["silence"]
        clips: list[ClipAudio] = ctx.need("load_audio")
        notes: list[str] = ctx.inputs["notes"]
        methods: set[str] = ctx.inputs["silence_methods"]
        found: dict[str, list[Range]] = {}
        # Decide the fallback here (detect_pauses would make it quietly) so the summary
        # can say that pauses were found by loudness, and why.
        vad_missing = _vad_problem() if settings.method == "vad" else None
        if vad_missing:
            notes.append(vad_missing)
        tracks: dict[str, SpeechTrack] = ctx.inputs.setdefault("tracks", {})
        no_wav = []
        for i, c in enumerate(clips):
            s = settings
            if settings.method == "vad" and (vad_missing or c.wav16k is None):
                s = dataclasses.replace(settings, method="loudness", threshold_db=None)
                if not vad_missing:
                    no_wav.append(c.filename)
            methods.add(s.method)
            # The probabilities are computed once: pauses and cut edges both read them.
            probs = _probabilities(c.wav16k) if s.method == "vad" else None
            found[c.clip_id], tracks[c.clip_id] = clip_pauses(
                c.levels_db, c.hop, c.duration, c.wav16k, s, probs)
            self.progress(ctx, (i + 1) / len(clips))
        if no_wav:
            notes.append(f"no 16 kHz audio for {', '.join(no_wav)}: its pauses were found by "
                         "loudness instead of voice activity; process the clip again for VAD")
        return found


def _probabilities(wav: Path | None) -> np.ndarray | None:
    """Silero speech probabilities of a clip's 16 kHz WAV; None when VAD cannot run."""
    from ..media import vad

    if wav is None:
        return None
    try:
        return vad.speech_probabilities(wav)
    except vad.VadUnavailable:
        return None  # detect_pauses says why and falls back to loudness


def _vad_problem() -> str | None:
    """None when the Silero VAD model loads; else a note for the summary."""
    from ..media import vad

    try:
        vad.load_model()
    except vad.VadUnavailable as e:
        log.warning("VAD unavailable (%s): pauses by loudness", e)
        return ("voice activity detection (Silero VAD) is not available on this server, so "
                "pauses were found by loudness instead: install faster-whisper and "
                "onnxruntime (pip install 'sapari-nb[local]') for VAD")
    return None


class Takes(Step):
    name = "takes"
    needs = ("transcribe", "silences")
    weight = 0.15

    def execute(self, ctx: StepContext) -> dict[str, list[Range]]:
        detector = ctx.inputs["detector"]
        words: dict[str, list[Word]] = ctx.need("transcribe")
        pauses: dict[str, list[Range]] = ctx.need("silences")
        durations = {c.clip_id: c.duration for c in ctx.need("load_audio")}
        wavs = {c.clip_id: c.wav16k for c in ctx.need("load_audio")}
        found: dict[str, list[Range]] = {}
        if detector is None:
            return found
        for clip_id, ws in words.items():
            if not ws:
                continue
            try:
                found[clip_id] = clip_takes(
                    detector, ws, pauses.get(clip_id, []), durations[clip_id],
                    ctx.inputs["silence"].padding, ctx.inputs.get("tracks", {}).get(clip_id),
                    wavs.get(clip_id), ctx.inputs.get("transcriber"))
            except TakeDetectionError as e:
                raise JobFailure(f"take detection failed: {e}") from None
        return found


class Validate(Step):
    name = "validate"
    needs = ("silences", "takes")
    weight = 0.05

    def execute(self, ctx: StepContext) -> dict[str, list[Range]]:
        durations = {c.clip_id: c.duration for c in ctx.need("load_audio")}
        takes: dict[str, list[Range]] = ctx.need("takes")
        tracks: dict[str, SpeechTrack] = ctx.inputs.get("tracks", {})
        padding = ctx.inputs["silence"].padding
        out = {}
        for cid, cuts in ctx.need("silences").items():
            out[cid] = clip_cuts(cuts, takes.get(cid, []), tracks.get(cid), padding,
                                 durations[cid])
        return out


# --- one clip, pure: the steps above call these; benchmarks and tests call them too -------


def clip_pauses(levels_db: np.ndarray, hop: float, duration: float, wav16k: Path | None,
                settings: SilenceSettings, probs: np.ndarray | None,
                ) -> tuple[list[Range], SpeechTrack]:
    """Pause cuts of one clip and its speech track (voiced stretches for cut edges)."""
    cuts = detect_pauses(levels_db, wav16k, duration, settings, hop=hop, probs=probs)
    track = speech_track(levels_db, hop, duration, probs)
    if wav16k is not None:
        # Soft onsets under room noise: the spectrum sees what the broadband level misses.
        with wav_reader(wav16k) as read:
            if read is not None:
                track = refine_on_spectrum(track, read)
    return [Range(x.start, x.end, x.kind, x.reason, {"level_db": round(x.level_db, 1)})
            for x in cuts], track


def clip_takes(detector: Any, words: list[Word], pauses: list[Range], duration: float,
               padding: float, track: SpeechTrack | None,
               wav16k: Path | None = None, transcriber: Any = None) -> list[Range]:
    """Take cuts of one clip, placed on the audio. Raises TakeDetectionError.

    With the speech track and the clip's 16 kHz WAV, voiced stretches no word covers are
    listened to again (``speech.second_pass``, local model only), and restarts heard in the
    audio (the phrase before a pause said again after it) join what the detector found in
    the words.
    """
    listen = local_listener(transcriber) if transcriber is not None else None
    if listen is not None and track is not None and wav16k is not None:
        with wav_reader(wav16k) as read:
            if read is not None:
                words = fill_gaps(words, track.runs, duration, read, listen)
    # What the VAD heard as speech: everything between the pauses.
    voiced = keep_segments(duration, pauses)
    findings = detector.detect(words, pauses=[(p.start, p.end) for p in pauses], voiced=voiced)
    if track is not None and wav16k is not None:
        restarts = find_restarts_in_wav(wav16k, track.runs, duration)
        findings = add_restarts(words, findings, restarts, voiced)
    return place_takes(findings, words, pauses, padding, track)


def clip_cuts(pauses: list[Range], takes: list[Range], track: SpeechTrack | None,
              padding: float, duration: float) -> list[Range]:
    """The clip's final cuts: pauses placed on the audio, merged with the take cuts."""
    if track is not None:
        # Take cuts were placed on the audio already, with their kept words.
        pauses = _on_audio(pauses, track, padding)
    return clean_cuts(pauses + takes, duration)


def _on_audio(cuts: list[Range], track: SpeechTrack, padding: float) -> list[Range]:
    """Pause cuts with edges out of every voiced stretch (padding kept next to speech)."""
    out = []
    for c in cuts:
        placed = snap_cut(track, c.start, c.end, padding=padding)
        if placed is not None:
            out.append(dataclasses.replace(c, start=placed[0], end=placed[1]))
    return out


def _settings_for(run_cfg: dict[str, Any], rt: Any) -> SilenceSettings:
    threshold = run_cfg.get("silence_threshold_db", rt.settings.silence_threshold_db)
    return SilenceSettings(
        method=run_cfg.get("silence_method", rt.settings.silence_method),
        threshold_db=None if threshold == "auto" else float(threshold),
        min_silence=run_cfg.get("min_silence", rt.settings.min_silence),
        padding=run_cfg.get("padding", rt.settings.padding),
    )


def analyze_project(ctx: JobContext) -> None:
    rt = ctx.rt
    with ctx.session() as s:
        run = s.get(AnalysisRun, ctx.target_id)
        if run is None or run.is_deleted:
            raise JobFailure(f"analysis run {ctx.target_id} no longer exists")
        run.status = "running"
        record_event(s, user_id=run.user_id, project_id=run.project_id,
                     type="AnalysisStarted", payload={"analysis_id": run.id})
        project_id, run_cfg = run.project_id, dict(run.settings)
    rt.bus.notify(ctx.user_id)

    detectors = set(run_cfg.get("detectors") or ["silence", "takes"])
    try:
        transcriber = make_transcriber(rt.settings) if "takes" in detectors else None
        detector = make_take_detector(rt.settings) if transcriber is not None else None
    except (TranscriptionError, TakeDetectionError) as e:
        raise JobFailure(str(e)) from None
    notes: list[str] = []
    methods: set[str] = set()
    if "takes" in detectors and transcriber is None:
        status = transcriber_status(rt.settings)
        notes.append(status if "silences only" in status else f"{status}; cutting silences only")
    elif transcriber is not None and detector is None:
        notes.append("take detection is off (SAPARI_TAKE_DETECTOR=none): the transcript was "
                     "made but false starts and retakes were not judged")

    with rt.sync_session() as s:
        clips = list(s.scalars(
            select(Clip).where(Clip.project_id == project_id, Clip.is_deleted.is_(False))
            .order_by(Clip.position, Clip.created_at)))
        if not clips:
            raise JobFailure("the project has no clips: upload a recording before analyzing")
        not_ready = [c.filename for c in clips if c.status != "ready"]
        if not_ready:
            raise JobFailure(
                f"clips not processed yet ({', '.join(not_ready)}): wait for ClipReady, "
                "or remove clips that failed, then analyze again")
        inputs = []
        for c in clips:
            arts = {a.kind: a for a in s.scalars(select(Artifact).where(
                Artifact.clip_id == c.id, Artifact.is_deleted.is_(False)))}
            if "levels" not in arts:
                raise JobFailure(f"clip {c.filename} has no audio levels: process it again")
            stored = None
            if transcriber is not None:
                t = s.scalars(select(Transcript).where(
                    Transcript.clip_id == c.id, Transcript.is_deleted.is_(False),
                    Transcript.backend == transcriber.name)
                    .order_by(Transcript.created_at.desc())).first()
                stored = [Word(**w) for w in t.words] if t is not None else None
            inputs.append({"id": c.id, "filename": c.filename, "duration": usable_duration(c),
                           "levels_key": arts["levels"].object_key,
                           "hop": arts["levels"].meta["hop"],
                           "wav_key": arts["audio"].object_key if "audio" in arts else None,
                           "words": stored})

    def save_transcript(clip_id: str, t: Any) -> None:
        # Kept at once: an hour of transcription is not redone if a later step fails.
        with ctx.session() as s:
            for old in s.scalars(select(Transcript).where(
                    Transcript.clip_id == clip_id, Transcript.is_deleted.is_(False))):
                old.soft_delete()
            s.add(Transcript(user_id=ctx.user_id, clip_id=clip_id, backend=t.backend,
                             language=t.language, words=t.to_json()))

    steps: list[Step] = [LoadAudio(), Transcribe(), Silences(), Takes(), Validate()]
    with ExitStack() as stack:
        results = run_dag(
            steps,
            {"clips": inputs, "storage": rt.storage, "silence": _settings_for(run_cfg, rt),
             "stack": stack, "transcriber": transcriber, "detector": detector,
             "save_transcript": save_transcript, "notes": notes,
             "silence_methods": methods},
            progress=lambda f, step: ctx.progress(f, step),
            max_workers=_step_workers(transcriber),
        )
    used = ["silence"] + _speech_used(transcriber, detector, results["transcribe"],
                                      {c["id"]: c["filename"] for c in inputs}, notes)
    write_edits(ctx, results["validate"], used, notes,
                {"silence_method": " and ".join(sorted(methods)) or None})


def _step_workers(transcriber: Transcriber | None) -> int:
    """Steps run at once. Local Whisper already keeps every core busy: silences beside it
    saved ~1 s of the 10-minute talk's 24 s analysis but held the VAD and the levels while
    the encoder's buffers peaked (+36 MB). A remote transcriber mostly waits on the network,
    so silences run meanwhile."""
    return 1 if transcriber is not None and transcriber.name == "local" else 2


def _speech_used(transcriber: Transcriber | None, detector: Any,
                 words: dict[str, list[Word]], names: dict[str, str],
                 notes: list[str]) -> list[str]:
    """The speech detectors that really ran: none when the transcript came back empty."""
    if transcriber is None:
        return []
    silent = [names[cid] for cid, ws in words.items() if not ws]
    if words and len(silent) == len(words):
        notes.append(f"transcription ({transcriber.name}) heard no words, so false starts and "
                     "retakes were not judged: silences only. Check that the recording has "
                     "speech, or set SAPARI_LANGUAGE if it is not English")
        return []
    if silent:
        notes.append(f"transcription ({transcriber.name}) heard no words in "
                     f"{', '.join(silent)}: only its silences were cut")
    return [f"transcript:{transcriber.name}"] + ([f"takes:{detector.name}"] if detector else [])


def write_edits(ctx: JobContext, cuts: dict[str, list[Range]], detectors: list[str],
                notes: list[str], extra: dict[str, Any] | None = None) -> None:
    rt = ctx.rt
    with ctx.finish() as s:
        run = s.get(AnalysisRun, ctx.target_id)
        assert run is not None
        # A new analysis replaces the old proposals; the user's accept/reject and manual
        # edits stay.
        for old in s.scalars(select(Edit).where(
                Edit.project_id == run.project_id, Edit.source == "auto",
                Edit.status == "proposed", Edit.is_deleted.is_(False))):
            old.soft_delete()
        kinds: dict[str, int] = {}
        total_cut = 0.0
        for clip_id, ranges in cuts.items():
            for r in ranges:
                s.add(Edit(user_id=run.user_id, project_id=run.project_id, clip_id=clip_id,
                           analysis_run_id=run.id, kind=r.kind, start=round(r.start, 4),
                           end=round(r.end, 4), reason=r.reason, status="proposed",
                           source="auto", meta=r.meta))
                kinds[r.kind] = kinds.get(r.kind, 0) + 1
                total_cut += r.end - r.start
        run.status = "succeeded"
        run.summary = {"edits": sum(kinds.values()), "by_kind": kinds,
                       "seconds_cut": round(total_cut, 3), "detectors": detectors,
                       "notes": notes, **(extra or {}),
                       "finished_at": utcnow().isoformat()}
        record_event(s, user_id=run.user_id, project_id=run.project_id, type="AnalysisComplete",
                     payload={"analysis_id": run.id, **run.summary})
    rt.bus.notify(ctx.user_id)


analyze_failed = fail_target(AnalysisRun, "AnalysisFailed", "analysis_id")

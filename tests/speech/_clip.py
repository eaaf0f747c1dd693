"""Run the analysis pipeline's own per-clip steps on a 16 kHz WAV (no server, no database)."""

from __future__ import annotations

from pathlib import Path

from sapari_server.media import vad
from sapari_server.media.audio import analyze_audio
from sapari_server.media.silence import SilenceSettings
from sapari_server.pipelines.analyze import clip_cuts, clip_pauses, clip_takes
from sapari_server.pipelines.cuts import Range
from sapari_server.speech.takes_heuristic import HeuristicTakeDetector
from sapari_server.speech.types import Word


def analyze_clip(wav: Path, words: list[Word], padding: float = 0.1,
                 transcriber: object = None) -> list[Range]:
    """The clip's final cuts, as the Silences, Takes and Validate steps make them.

    With the local ``transcriber``, uncovered speech gets its second listen as in the job.
    """
    a = analyze_audio(wav)
    levels = a.levels_db if a.levels_dehum_db is None else a.levels_dehum_db
    settings = SilenceSettings(padding=padding)
    pauses, track = clip_pauses(levels, a.hop, a.duration, wav, settings,
                                vad.speech_probabilities(wav))
    takes = clip_takes(HeuristicTakeDetector(), words, pauses, a.duration, padding, track, wav,
                       transcriber)
    return clip_cuts(pauses, takes, track, padding, a.duration)


def local_transcriber() -> object:
    import pytest

    pytest.importorskip("faster_whisper")
    from sapari_server.speech import LocalTranscriber, TranscriptionError

    try:
        tr = LocalTranscriber()
        tr.model  # noqa: B018 - load now, skip if unusable
    except TranscriptionError as e:
        pytest.skip(str(e))
    return tr


def local_words(wav: Path) -> list[Word]:
    return local_transcriber().transcribe(wav).words  # type: ignore[attr-defined]

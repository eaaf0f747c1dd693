"""Transcription through the OpenAI audio API (or any OpenAI-compatible endpoint).

The 16 kHz WAV is compressed to Opus in Ogg (24 kbps mono: ~3 kB/s, so the API's 25 MB
upload limit holds about 2 h) and, when longer than one upload may be, cut at quiet points
into pieces. Each piece is sent with ``response_format="verbose_json"`` and
``timestamp_granularities=["word"]``; the pieces' word times are shifted by the piece's
first sample and joined. Retries (429 with Retry-After, 5xx, timeouts) are the ``openai``
client's own; whatever still fails becomes a TranscriptionError that names the fix.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import openai

from .types import (
    SAMPLE_RATE,
    LegacyProgressFn,
    ProgressFn,
    Transcript,
    TranscriptionError,
    Word,
    clock,
    hop_power,
    progress_caller,
    read_wav16k,
    refine_word_bounds,
)

if TYPE_CHECKING:
    from ..settings import Settings

# The API refuses uploads over 25 MB; keep room for the multipart envelope and Ogg pages.
DEFAULT_MAX_UPLOAD_BYTES = 24 * 1024 * 1024
DEFAULT_BITRATE = 24_000
# Pieces also stay under 15 minutes even when they would fit: a failed piece costs a retry
# of at most that much audio, and very long uploads are where hosted endpoints time out.
DEFAULT_MAX_PIECE_SECONDS = 900.0
# Opus is VBR: busy speech can run above the nominal rate. Plan with this margin, then check.
_VBR_MARGIN = 1.25
_HOP = 160  # 10 ms energy frames for choosing cut points
_QUIET_WINDOW = 20  # frames (200 ms) averaged when looking for a quiet place to cut
# Cut points are looked for in the last 30% of the longest allowed piece.
_SEARCH_FRACTION = 0.3

# whisper-1 answers language names; the rest of sapari (and faster-whisper) uses codes.
_LANGUAGE_CODES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "polish": "pl", "russian": "ru", "ukrainian": "uk",
    "turkish": "tr", "swedish": "sv", "danish": "da", "norwegian": "no", "finnish": "fi",
    "czech": "cs", "greek": "el", "hungarian": "hu", "romanian": "ro", "japanese": "ja",
    "chinese": "zh", "korean": "ko", "arabic": "ar", "hebrew": "he", "hindi": "hi",
    "indonesian": "id", "vietnamese": "vi", "thai": "th", "catalan": "ca",
}


def plan_pieces(
    samples: np.ndarray, max_samples: int, *, search_fraction: float = _SEARCH_FRACTION
) -> list[tuple[int, int]]:
    """[start, end) sample ranges covering ``samples``, each at most ``max_samples`` long.

    Every cut lies in the quietest stretch of the last ``search_fraction`` of the allowed
    length: the middle of the longest run of 10 ms frames whose 200 ms mean energy is within
    3 dB of that stretch's minimum, so cuts fall inside pauses, not inside words.
    """
    n = int(samples.size)
    max_samples = max(int(max_samples), 4 * _HOP * _QUIET_WINDOW)
    if n <= max_samples:
        return [(0, n)]
    power = hop_power(samples, _HOP)
    kernel = np.ones(_QUIET_WINDOW) / _QUIET_WINDOW
    smooth = np.convolve(power, kernel, mode="same")
    pieces: list[tuple[int, int]] = []
    start = 0
    while n - start > max_samples:
        lo = math.ceil((start + max_samples * (1 - search_fraction)) / _HOP)
        hi = (start + max_samples) // _HOP  # exclusive: the cut frame's start stays in range
        window = smooth[lo:hi]
        quiet = window <= 2.0 * float(window.min()) + 1e-12
        # Longest run of quiet frames; the last one wins ties (longer pieces, fewer uploads).
        best_len, best_mid, run = 0, hi - 1, 0
        for i, q in enumerate(quiet):
            run = run + 1 if q else 0
            if run >= best_len and run:
                best_len, best_mid = run, lo + i - run // 2
        cut = best_mid * _HOP
        pieces.append((start, cut))
        start = cut
    pieces.append((start, n))
    return pieces


def encode_opus(samples: np.ndarray, bitrate: int = DEFAULT_BITRATE) -> bytes:
    """Float32 16 kHz mono samples as Opus in an Ogg file, in memory."""
    buf = io.BytesIO()
    pcm = (np.clip(samples, -1.0, 1.0 - 1 / 32768) * 32768).astype(np.int16)
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=SAMPLE_RATE)
        stream.layout = "mono"
        stream.codec_context.bit_rate = bitrate
        if pcm.size:
            frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = 0
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _language_code(name: str | None) -> str | None:
    if not name:
        return None
    return _LANGUAGE_CODES.get(name.lower(), name.lower())


class OpenAITranscriber:
    """Whisper through the OpenAI API (``whisper-1``), or any endpoint that speaks it."""

    name = "openai"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        model: str = "whisper-1",
        language: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_piece_seconds: float = DEFAULT_MAX_PIECE_SECONDS,
        bitrate: int = DEFAULT_BITRATE,
        refine: bool = True,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url or None
        self.model = model
        self.language = language
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_upload_bytes = max_upload_bytes
        self.max_piece_seconds = max_piece_seconds
        self.bitrate = bitrate
        # Whisper's word ends run into pauses on the API too; snap them to the audio.
        self.refine = refine
        self._client: openai.OpenAI | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> OpenAITranscriber:
        kwargs: dict[str, Any] = {
            "base_url": settings.openai_base_url or None,
            "model": settings.transcribe_model,
            "language": settings.language,
            "timeout": settings.openai_timeout,
            "max_retries": settings.openai_max_retries,
        }
        kwargs.update(overrides)
        return cls(settings.openai_api_key, **kwargs)

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(
                api_key=self.api_key,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._client

    @property
    def _where(self) -> str:
        return self.base_url or "api.openai.com"

    def max_piece_samples(self) -> int:
        by_size = self.max_upload_bytes / (self.bitrate / 8 * _VBR_MARGIN)
        return int(min(by_size, self.max_piece_seconds) * SAMPLE_RATE)

    def pieces(self, samples: np.ndarray) -> list[tuple[int, int, bytes]]:
        """The (start, end, Ogg bytes) uploads for these samples, each under the size limit."""
        out: list[tuple[int, int, bytes]] = []
        pending = plan_pieces(samples, self.max_piece_samples())
        while pending:
            a, b = pending.pop(0)
            data = encode_opus(samples[a:b], self.bitrate)
            if len(data) > self.max_upload_bytes and b - a > 2 * SAMPLE_RATE:
                # The encoder beat the margin: split this piece again, at half its length.
                sub = plan_pieces(samples[a:b], (b - a) // 2)
                pending[:0] = [(a + s, a + e) for s, e in sub]
                continue
            out.append((a, b, data))
        return out

    def transcribe(
        self,
        wav16k: Path,
        *,
        duration: float | None = None,
        progress: ProgressFn | LegacyProgressFn | None = None,
    ) -> Transcript:
        report = progress_caller(progress)
        samples = read_wav16k(Path(wav16k))
        n = samples.size
        if duration is None:
            duration = n / SAMPLE_RATE
        pieces = self.pieces(samples) if n else []
        words: list[Word] = []
        languages: list[str] = []
        for i, (a, b, data) in enumerate(pieces):
            answer = self._request(data, i, len(pieces))
            piece_words, lang = self._parse(answer, (b - a) / SAMPLE_RATE, i, len(pieces))
            # Exact stitching: the piece starts at sample a of the WAV.
            offset = a / SAMPLE_RATE
            words += [Word(w.word, w.start + offset, w.end + offset, w.probability) for w in piece_words]
            if lang:
                languages.append(lang)
            report(b / n, f"transcribe {clock(b / SAMPLE_RATE)} / {clock(n / SAMPLE_RATE)}")
        if self.refine:
            words = refine_word_bounds(words, samples)
        report(1.0, f"transcribe {clock(n / SAMPLE_RATE)} / {clock(n / SAMPLE_RATE)}")
        # The most common language, ties to the first piece's: never set order, which varies
        # between runs.
        language = max(languages, key=languages.count) if languages else self.language
        return Transcript(
            words,
            language,
            self.name,
            float(duration),
            info={
                "model": self.model,
                "endpoint": self._where,
                "pieces": [[a / SAMPLE_RATE, b / SAMPLE_RATE] for a, b, _ in pieces],
                "uploaded_bytes": sum(len(d) for _, _, d in pieces),
            },
        )

    # --- one upload ---------------------------------------------------------------------

    def _request(self, data: bytes, index: int, count: int) -> Any:
        part = f" (piece {index + 1} of {count})" if count > 1 else ""
        kwargs: dict[str, Any] = {}
        if self.language:
            kwargs["language"] = self.language
        try:
            return self.client.audio.transcriptions.create(
                model=self.model,
                file=(f"audio{index:03d}.ogg", data, "audio/ogg"),
                response_format="verbose_json",
                timestamp_granularities=["word"],
                **kwargs,
            )
        except openai.AuthenticationError as exc:
            raise TranscriptionError(
                f"{self._where} rejected the API key (401: {_api_message(exc)}). Check "
                "SAPARI_OPENAI_API_KEY (and SAPARI_OPENAI_BASE_URL if the key belongs to "
                "another provider)."
            ) from exc
        except openai.PermissionDeniedError as exc:
            raise TranscriptionError(
                f"{self._where} refused access with this API key (403: {_api_message(exc)}). "
                f"Give the key's project access to '{self.model}' or use another "
                "SAPARI_OPENAI_API_KEY."
            ) from exc
        except openai.NotFoundError as exc:
            raise TranscriptionError(
                f"{self._where} does not know the transcription model '{self.model}' (404: "
                f"{_api_message(exc)}). Set SAPARI_TRANSCRIBE_MODEL to a model with word "
                "timestamps (whisper-1 on api.openai.com) and check SAPARI_OPENAI_BASE_URL "
                "(it should end in /v1)."
            ) from exc
        except openai.RateLimitError as exc:
            raise TranscriptionError(
                f"{self._where} kept answering 429 (rate limit or quota: {_api_message(exc)}) "
                f"after {self.max_retries} retries{part}. Wait and analyse again, check the "
                "account's quota and billing, or raise SAPARI_OPENAI_MAX_RETRIES."
            ) from exc
        except openai.BadRequestError as exc:
            raise TranscriptionError(
                f"{self._where} refused the audio{part} (400: {_api_message(exc)}). If the "
                f"model '{self.model}' has no word timestamps, set SAPARI_TRANSCRIBE_MODEL="
                "whisper-1."
            ) from exc
        except openai.APIStatusError as exc:
            raise TranscriptionError(
                f"{self._where} failed with HTTP {exc.status_code}{part} after "
                f"{self.max_retries} retries ({_api_message(exc)}). The service is having "
                "trouble: analyse again later, or use the local model "
                "(SAPARI_TRANSCRIBER=local)."
            ) from exc
        except openai.APITimeoutError as exc:
            raise TranscriptionError(
                f"{self._where} did not answer within {self.timeout:g} s{part}, "
                f"{self.max_retries + 1} times. Raise SAPARI_OPENAI_TIMEOUT, check the "
                "network, or use the local model (SAPARI_TRANSCRIBER=local)."
            ) from exc
        except openai.APIConnectionError as exc:
            raise TranscriptionError(
                f"Cannot reach {self._where}{part} ({exc.__cause__ or exc}). Check the network "
                "and SAPARI_OPENAI_BASE_URL, or use the local model (SAPARI_TRANSCRIBER=local)."
            ) from exc
        except (openai.APIResponseValidationError, ValueError) as exc:
            # Non-JSON where JSON was promised: a proxy page, a truncated body.
            raise self._malformed(f"its answer is not valid JSON ({exc})", part) from exc

    def _malformed(self, what: str, part: str) -> TranscriptionError:
        return TranscriptionError(
            f"{self._where} gave a malformed transcription{part}: {what}. Check that "
            "SAPARI_OPENAI_BASE_URL points at an OpenAI-compatible API and that "
            f"'{self.model}' supports response_format=verbose_json with word timestamps "
            "(whisper-1 does)."
        )

    def _parse(
        self, answer: Any, piece_seconds: float, index: int, count: int
    ) -> tuple[list[Word], str | None]:
        part = f" (piece {index + 1} of {count})" if count > 1 else ""
        if isinstance(answer, str):
            try:
                answer = json.loads(answer)
            except ValueError as exc:
                raise self._malformed("its answer is not JSON", part) from exc
        # The SDK builds its model without validation: dump it back to plain data (quietly; a
        # wrong type in a field is reported below, in our words).
        data = answer.model_dump(warnings=False) if hasattr(answer, "model_dump") else answer
        if not isinstance(data, dict):
            raise self._malformed(f"expected a JSON object, got {type(data).__name__}", part)
        raw_words = data.get("words")
        if raw_words is None:
            raise self._malformed("it has no word timestamps ('words' is missing)", part)
        segments = _segments(data.get("segments"))
        words: list[Word] = []
        try:
            for w in raw_words:
                text = str(w["word"]).strip()
                start, end = float(w["start"]), float(w["end"])
                if not (math.isfinite(start) and math.isfinite(end)):
                    raise ValueError(f"non-finite time in {w!r}")
                if start < -0.5 or start > piece_seconds + 1.0:
                    raise ValueError(f"word {text!r} at {start} s lies outside the audio")
                if text:
                    start = max(0.0, start)
                    words.append(Word(text, start, max(start, end), _probability(segments, start, end)))
        except (KeyError, TypeError, ValueError) as exc:
            raise self._malformed(f"a word entry is unusable ({exc})", part) from exc
        lang = data.get("language")
        return words, _language_code(lang if isinstance(lang, str) else None)


def _segments(raw: Any) -> list[tuple[float, float, float]]:
    """(start, end, probability) per segment; exp(avg_logprob) is the API's only confidence."""
    out: list[tuple[float, float, float]] = []
    if not isinstance(raw, list):
        return out
    for s in raw:
        try:
            lp = float(s.get("avg_logprob", 0.0))
            out.append((float(s["start"]), float(s["end"]), min(1.0, max(0.0, math.exp(lp)))))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return out


def _probability(segments: Sequence[tuple[float, float, float]], start: float, end: float) -> float:
    mid = (start + end) / 2
    for s, e, p in segments:
        if s <= mid <= e:
            return p
    return 1.0


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(exc.message)

"""What every speech backend returns, and the audio helpers they share.

A ``Transcriber`` reads the 16 kHz mono 16-bit WAV that processing writes per clip
(``audio16k.wav``) and returns a ``Transcript``: words with start, end (seconds from the
start of that WAV) and a probability. ``refine_word_bounds`` moves word edges to where the
audio says speech starts and stops, because Whisper's word ends run long into the pauses.
"""

from __future__ import annotations

import inspect
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16000

# progress(fraction done, message such as "transcribe 1:20 / 5:00"). A callback taking only
# the fraction is still accepted (see ``progress_caller``).
ProgressFn = Callable[[float, str], None]
LegacyProgressFn = Callable[[float], None]
_SEGMENT_STATS = ("no_speech_prob", "avg_logprob", "compression_ratio")


@dataclass(frozen=True)
class Word:
    """One recognised word; times in seconds from the start of the audio.

    The last three fields are Whisper's judgement of the segment the word came from (None
    when the backend does not give them): take detection only cuts where the words are real.
    """

    word: str
    start: float
    end: float
    probability: float = 1.0
    no_speech_prob: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None


@dataclass
class Transcript:
    words: list[Word]
    language: str | None
    backend: str
    duration: float
    # Backend-specific facts worth keeping (model name, pieces uploaded, ...).
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    def to_json(self) -> list[dict[str, Any]]:
        out = []
        for w in self.words:
            d: dict[str, Any] = {
                "word": w.word, "start": w.start, "end": w.end, "probability": w.probability
            }
            # Stored with the words so a reused transcript is judged exactly as a fresh one.
            d.update({k: getattr(w, k) for k in _SEGMENT_STATS if getattr(w, k) is not None})
            out.append(d)
        return out

    @classmethod
    def from_json(
        cls,
        words: list[dict[str, Any]],
        *,
        language: str | None = None,
        backend: str = "stored",
        duration: float | None = None,
    ) -> Transcript:
        parsed = [
            Word(
                word=str(w["word"]),
                start=float(w["start"]),
                end=float(w["end"]),
                probability=float(w.get("probability", 1.0)),
                **{k: float(w[k]) for k in _SEGMENT_STATS if w.get(k) is not None},
            )
            for w in words
        ]
        if duration is None:
            duration = max((w.end for w in parsed), default=0.0)
        return cls(words=parsed, language=language, backend=backend, duration=duration)


class TranscriptionError(Exception):
    """Transcription failed; the message says what went wrong and what to do about it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@runtime_checkable
class Transcriber(Protocol):
    name: str

    def transcribe(
        self,
        wav16k: Path,
        *,
        duration: float | None = None,
        progress: ProgressFn | LegacyProgressFn | None = None,
    ) -> Transcript: ...


def progress_caller(
    progress: ProgressFn | LegacyProgressFn | None,
) -> Callable[[float, str], None]:
    """``progress`` made callable as f(fraction, message), whatever its shape.

    A callback with two required positional parameters gets the message; one with a single
    required parameter (the pipeline's older ``report(f, base=..., d=...)``) gets only the
    fraction, so its defaulted parameters are never overwritten by the message.
    """
    if progress is None:
        return lambda fraction, message: None
    try:
        params = inspect.signature(progress).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass both
        return progress  # type: ignore[return-value]
    required = [
        p for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    if len(required) >= 2 or varargs:
        return progress  # type: ignore[return-value]
    legacy: LegacyProgressFn = progress  # type: ignore[assignment]
    return lambda fraction, message: legacy(fraction)


def clock(seconds: float) -> str:
    """1:05 or 1:02:03: how progress messages show a position in the audio."""
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


# --- audio helpers shared by the backends ------------------------------------------------


_READ_BLOCK = 1 << 18  # samples per read: 16 s of audio


def read_wav16k(path: Path, *, check_only: bool = False) -> np.ndarray:
    """The samples of a 16 kHz mono 16-bit WAV as float32 in [-1, 1).

    ``check_only``: raise what reading would raise, and return no samples (an empty array).
    """
    try:
        with wave.open(str(path), "rb") as w:
            fmt = (w.getframerate(), w.getnchannels(), w.getsampwidth())
            if fmt != (SAMPLE_RATE, 1, 2):
                raise TranscriptionError(
                    f"{path.name} is {fmt[0]} Hz, {fmt[1]} channel(s), {8 * fmt[2]}-bit; "
                    "transcription needs the 16 kHz mono 16-bit WAV that processing writes "
                    "(process the clip again)."
                )
            # Read in blocks straight into the float array: the whole file as bytes plus
            # an unscaled float copy would briefly hold 2.5x the result.
            n = 0 if check_only else w.getnframes()
            out = np.empty(n, np.float32)
            pos = 0
            while pos < n:
                raw = w.readframes(min(_READ_BLOCK, n - pos))
                if not raw:
                    break
                block = out[pos : pos + len(raw) // 2]
                block[:] = np.frombuffer(raw, dtype="<i2")
                block *= np.float32(1 / 32768)
                pos += block.size
    except FileNotFoundError as exc:
        raise TranscriptionError(
            f"{path} does not exist: process the clip before transcribing it."
        ) from exc
    except (wave.Error, EOFError) as exc:
        raise TranscriptionError(
            f"{path.name} is not a readable WAV file ({exc}); process the clip again."
        ) from exc
    return out if pos == n else out[:pos]


# Energy analysis for word edges: 10 ms hops, 20 ms windows.
_HOP = 160
_EDGE_PAD = 0.02  # kept past the last loud frame: release of the final consonant
_MAX_TRIM = 1.0  # never move a word edge inward by more than this (a misread, not a tail)
_MAX_EXTEND = 0.5  # edges may grow outward this far when speech continues past them
_MIN_WORD = 0.05
# A quiet stretch this long inside a word's span is a pause, not a stop closure: the span
# covers two sounds and the word is the bigger one (Whisper ends that swallow the next onset).
_SPLIT_GAP = 0.2
_BRIDGE = 0.06  # closures bridged when growing an edge through continuous speech


def hop_power(samples: np.ndarray, hop: int = _HOP) -> np.ndarray:
    """Mean power of each whole ``hop``-sample frame, in float64 (computed in chunks: an hour
    of audio must not need a float64 copy of itself)."""
    n = samples.size // hop
    out = np.empty(n, np.float64)
    step = 4096  # frames per chunk
    for i in range(0, n, step):
        j = min(n, i + step)
        block = samples[i * hop : j * hop].astype(np.float64).reshape(j - i, hop)
        out[i:j] = np.einsum("ij,ij->i", block, block) / hop
    return out


def frame_energy_db(samples: np.ndarray) -> np.ndarray:
    """Short-time energy in dBFS, one value per 10 ms hop (20 ms window centred on it)."""
    return _energy_db(hop_power(samples))


def wav_energy_db(path: Path) -> np.ndarray:
    """``frame_energy_db(read_wav16k(path))``, read from the file a block at a time."""
    block = 4096 * _HOP  # one of hop_power's own chunks: the same sums, bit for bit
    parts = []
    with wave.open(str(path), "rb") as w:
        while raw := w.readframes(block):
            x = np.frombuffer(raw, dtype="<i2").astype(np.float32)
            x *= np.float32(1 / 32768)
            parts.append(hop_power(x))
    return _energy_db(np.concatenate(parts) if parts else np.zeros(0, np.float64))


def _energy_db(power: np.ndarray) -> np.ndarray:
    if power.size == 0:
        return np.zeros(0, np.float32)
    # Average each hop with its successor: a 20 ms window.
    win = power.copy()
    win[:-1] = 0.5 * (power[:-1] + power[1:])
    return (10 * np.log10(win + 1e-12)).astype(np.float32)


def speech_threshold_db(energy_db: np.ndarray) -> float:
    """A level splitting speech from pause, relative to this recording's floor and peaks."""
    if energy_db.size == 0:
        return -60.0
    floor = float(np.percentile(energy_db, 10))
    loud = float(np.percentile(energy_db, 95))
    # 35 dB under the loud vowels keeps weak fricatives and releases; 10 dB above the
    # room floor keeps noise and hum out. On a noisy recording the floor rule wins.
    return max(loud - 35.0, floor + 10.0, -70.0)


def refine_word_bounds(
    words: Sequence[Word],
    samples: np.ndarray | None,
    *,
    max_trim: float = _MAX_TRIM,
    max_extend: float = _MAX_EXTEND,
    energy: np.ndarray | None = None,
) -> list[Word]:
    """Snap word edges to the audio: cut tails that run into silence, grow clipped edges.

    Whisper's word times come from attention alignment, so a word before a pause often ends
    hundreds of milliseconds into the pause and the word after it may start inside the pause.
    Inside each word's span we keep only the stretch from its first to its last loud frame
    (plus a short release pad; of two sounds split by a pause, the bigger); a word whose span
    holds no loud frame is left alone (we do not know where it is). An edge inside continuous
    sound grows up to ``max_extend``. Edges never cross a neighbour and never move inward
    more than ``max_trim``.

    ``energy`` (``frame_energy_db(samples)``, 400 times smaller) may stand in for the
    samples, so a caller need not keep the whole recording until the words are back.
    """
    if energy is None:
        assert samples is not None
        energy = frame_energy_db(samples)
    if energy.size == 0 or not words:
        return list(words)
    loud = energy >= speech_threshold_db(energy)
    hop_s = _HOP / SAMPLE_RATE
    n = loud.size
    out: list[Word] = []
    for i, w in enumerate(words):
        lo = max(0, int(w.start / hop_s))
        hi = min(n, int(np.ceil(w.end / hop_s)))
        island = _main_island(loud[lo:hi])
        if island is None:
            out.append(w)
            continue
        first, last = lo + island[0], lo + island[1]
        start = max(w.start, first * hop_s - _EDGE_PAD / 2)
        end = min(w.end, (last + 1) * hop_s + _EDGE_PAD)
        prev_end = out[-1].end if out else 0.0
        next_start = words[i + 1].start if i + 1 < len(words) else n * hop_s
        # Speech that carries on past an edge (short closures bridged): the alignment clipped
        # the word or drifted late; grow it, but never over a pause, which may hold a false
        # start Whisper dropped (take detection wants to see that uncovered speech).
        if first == lo:
            start = min(start, max(_walk(loud, first, -1, max_extend) * hop_s, prev_end))
        if last == hi - 1:
            end = max(end, min((_walk(loud, last, +1, max_extend) + 1) * hop_s, next_start))
        start = max(start, w.start - max_extend, prev_end)
        start = min(start, w.start + max_trim)
        end = max(end, w.end - max_trim, start + _MIN_WORD)
        end = min(end, max(w.end + max_extend, start + _MIN_WORD))
        out.append(replace(w, start=round(start, 3), end=round(end, 3)))
    return out


def _main_island(loud: np.ndarray) -> tuple[int, int] | None:
    """(first, last) loud frame of the biggest run of loud frames, gaps < _SPLIT_GAP merged."""
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(idx) > _SPLIT_GAP * SAMPLE_RATE / _HOP)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [idx.size - 1]))
    k = int(np.argmax(ends - starts))  # most loud frames
    return int(idx[starts[k]]), int(idx[ends[k]])


def _walk(loud: np.ndarray, k: int, step: int, limit: float) -> int:
    """The farthest loud frame reachable from frame k going ``step``-wards, bridging gaps."""
    bridge = int(_BRIDGE * SAMPLE_RATE / _HOP)
    max_frames = int(limit * SAMPLE_RATE / _HOP)
    best, j, gap = k, k, 0
    while 0 <= j + step < loud.size and abs(j + step - k) <= max_frames:
        j += step
        if loud[j]:
            best, gap = j, 0
        else:
            gap += 1
            if gap > bridge:
                break
    return best

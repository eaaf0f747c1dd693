"""Talks composed from recordings of real people, with known truth (test support, not shipped).

A talk is a script of pieces laid end to end at 16 kHz mono:

    script = [Say(a), Pause(1.2), FalseStart(b, 0.7), Pause(0.6), Say(b),
              Pause(1.5), Take(c), Pause(0.8), Say(c)]
    talk = compose("demo", script, Room("pink", snr_db=25, hum_hz=50), seed=3)
    talk.samples, talk.truth

- ``Say(u)``: the utterance ``u`` whole; an editor keeps it.
- ``FalseStart(u, seconds)``: the first ``seconds`` of speech of ``u`` (cut at the word
  boundary nearest to it when ``u`` carries word times, else at the quietest 10 ms near it:
  often mid-word, the way a speaker breaks off), then the script goes on (a pause, then
  ``Say(u)``: the retake). The fragment is played 2-4 % faster or slower and 1-3 dB
  quieter or louder, so it is not a sample-exact copy of the retake's start.
- ``Take(u)``: ``u`` said whole and abandoned (a repeated take); the later ``Say(u)`` is
  the one kept.
- ``Pause(seconds)``: room tone of the utterance before it (looped from its own quietest
  stretches, with crossfades): never digital silence.

The truth is measured on the clean sources, before any room noise is added:

- ``kept_words``: word intervals of kept speech (word times of the source where it has them,
  intersected with the voiced frames; else voiced islands: runs of 10 ms frames above the
  source's own floor, with hysteresis, gaps under 0.1 s merged, 20 ms added each side:
  about a word or a short phrase each);
- ``false_starts`` / ``takes``: voiced span of each abandoned piece (what must be cut), with
  ``removable`` the whole stretch between the kept speech around it (cutting any of that is
  right);
- ``retake_onsets``: audio onset of the kept take after each false start or take;
- ``pauses``: every gap between voiced islands of the whole talk (inserted and natural).

Sources are read by the caller (a path, or bytes read from a git snapshot at run time);
this module only decodes, measures and composes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

RATE = 16_000
FRAME = 0.010  # energy frame for every measurement, s
SPEECH_RMS_DB = -23.0  # each utterance's active speech is brought to this level (dBFS)
VOICED_ABOVE_FLOOR_DB = 9.0  # a frame may be voiced this far above the clip's own floor
VOICED_BELOW_PEAK_DB = 50.0  # ... and no further than this below its loudest frame
TONE_ABOVE_FLOOR_DB = 6.0  # room tone: frames no louder than this over the floor
ISLAND_GAP = 0.10  # voiced runs closer than this are one island
ISLAND_PAD = 0.02  # weak onsets/offsets (h, f, s) sit under the threshold: widen a little
TRIM_KEEP = 0.12  # own room tone kept before/after each utterance's voicing, s


# --- decoding -----------------------------------------------------------------------------


def decode(source: str | Path | bytes) -> np.ndarray:
    """Any audio PyAV reads (wav, flac, ogg, mp3; a path or the file's bytes) as 16 kHz mono."""
    handle: str | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(handle) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        parts = [o.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])
                 for o in res.resample(f)]
        parts += [o.to_ndarray().reshape(-1) for o in res.resample(None)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


# --- measuring ----------------------------------------------------------------------------


def frame_db(x: np.ndarray) -> np.ndarray:
    n = int(RATE * FRAME)
    k = max(1, x.size // n)
    seg = np.pad(x, (0, max(0, k * n - x.size)))[: k * n].reshape(k, n)
    return 20 * np.log10(np.sqrt((seg.astype(np.float64) ** 2).mean(1)) + 1e-9)


def voiced_mask(x: np.ndarray, core_below_peak: float | None = None) -> np.ndarray:
    """Voiced frames, with hysteresis against the clip's own floor (5th percentile) and peak.

    A run of frames above the low threshold (``VOICED_ABOVE_FLOOR_DB`` over the floor, and
    within ``VOICED_BELOW_PEAK_DB`` of the peak) is voiced when it holds at least one frame
    above the high one (10 dB higher): quiet consonants and onsets next to a vowel count,
    a lone noise blip does not. ``core_below_peak`` puts the high threshold that far under
    the peak instead (a meeting's distant voices and noises are not the talker's speech).
    """
    db = frame_db(x)
    floor, peak = float(np.percentile(db, 5)), float(np.percentile(db, 99.5))
    low = max(floor + VOICED_ABOVE_FLOOR_DB, peak - VOICED_BELOW_PEAK_DB)
    high = max(low + 10.0, min(peak - 20.0, low + 20.0))
    if core_below_peak is not None:
        high = max(low + 10.0, peak - core_below_peak)
    out = np.zeros(db.size, bool)
    for a, b in runs(db > low):
        if (db[a:b] > high).any():
            out[a:b] = True
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def islands(x: np.ndarray, gap: float = ISLAND_GAP,
            within: list[tuple[float, float]] | None = None,
            core_below_peak: float | None = None) -> list[tuple[float, float]]:
    """Voiced islands in seconds: runs of voiced frames, gaps under ``gap`` merged, widened.

    ``within``: where the source's own annotation says someone speaks (speaker turns);
    voiced frames outside it (a door, paper, a cough in a meeting) are not speech.
    """
    mask = voiced_mask(x, core_below_peak)
    if within is not None:
        allowed = np.zeros(mask.size, bool)
        for s, e in within:
            allowed[max(0, int(s / FRAME)): max(0, int(np.ceil(e / FRAME)))] = True
        mask &= allowed
    out: list[list[float]] = []
    for a, b in runs(mask):
        if b - a < 2:  # a 10 ms click is not speech
            continue
        s, e = a * FRAME, b * FRAME
        if out and s - out[-1][1] < gap:
            out[-1][1] = e
        else:
            out.append([s, e])
    end = x.size / RATE
    return [(max(0.0, s - ISLAND_PAD), min(end, e + ISLAND_PAD)) for s, e in out]


def active_rms_db(x: np.ndarray) -> float:
    db = frame_db(x)
    m = voiced_mask(x)
    return float(10 * np.log10(np.mean(10 ** (db[m] / 10)) + 1e-12)) if m.any() else -90.0


# --- utterances ---------------------------------------------------------------------------


@dataclass
class Utterance:
    """One recording, trimmed to its voicing plus a little of its own room tone."""

    name: str
    samples: np.ndarray
    speaker: str
    style: str  # "read" or "spontaneous"
    words: list[tuple[str, float, float]] | None  # known word times in ``samples``, s
    tone: np.ndarray  # its room tone (quietest stretches), for pauses after it
    islands: list[tuple[float, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.samples.size / RATE

    @property
    def onset(self) -> float:
        return self.islands[0][0]

    @property
    def offset(self) -> float:
        return self.islands[-1][1]


def room_tone(x: np.ndarray) -> np.ndarray:
    """The clip's room tone: its runs of >= 60 ms near the floor, joined with short fades.

    Only frames within TONE_ABOVE_FLOOR_DB of the floor: no breath, lip noise or tail of a
    word gets into a pause (a quiet stretch between words is not room tone).
    """
    db = frame_db(x)
    quiet = db < float(np.percentile(db, 5)) + TONE_ABOVE_FLOOR_DB
    n = int(FRAME * RATE)
    pieces = [x[(a + 1) * n:(b - 1) * n] for a, b in runs(quiet) if b - a >= 8]
    if not pieces:  # hardly any: the quietest frames one by one
        order = np.sort(np.argsort(db)[: max(4, db.size // 10)])
        pieces = [x[i * n:(i + 1) * n] for i in order]
    return _join(pieces, 0.005)


def _join(pieces: Sequence[np.ndarray], fade: float) -> np.ndarray:
    f = int(fade * RATE)
    out: np.ndarray = pieces[0].astype(np.float32).copy()
    for p in pieces[1:]:
        p = p.astype(np.float32)
        k = min(f, out.size, p.size)
        if k:
            ramp = np.linspace(0, 1, k, dtype=np.float32)
            out[-k:] = out[-k:] * (1 - ramp) + p[:k] * ramp
            out = np.concatenate([out, p[k:]])
        else:
            out = np.concatenate([out, p])
    return out


def utterance(name: str, source: str | Path | bytes, *, speaker: str, style: str = "read",
              words: list[tuple[str, float, float]] | None = None,
              span: tuple[float, float] | None = None) -> Utterance:
    """Decode, level to SPEECH_RMS_DB, trim to voicing (+TRIM_KEEP); ``span`` takes a part."""
    x = decode(source)
    if span is not None:
        x = x[int(span[0] * RATE): int(span[1] * RATE)]
        if words is not None:
            words = [(w, s - span[0], e - span[0]) for w, s, e in words
                     if s >= span[0] - 1e-6 and e <= span[1] + 1e-6]
    isl = islands(x)
    if not isl:
        raise ValueError(f"{name}: no voiced audio found")
    gain = 10 ** ((SPEECH_RMS_DB - active_rms_db(x)) / 20)
    x = (x * gain).astype(np.float32)
    tone = room_tone(x)
    a = max(0, int((isl[0][0] - TRIM_KEEP) * RATE))
    b = min(x.size, int((isl[-1][1] + TRIM_KEEP) * RATE))
    x = x[a:b].copy()
    t0 = a / RATE
    isl = [(s - t0, e - t0) for s, e in isl]
    if words is not None:
        words = [(w, s - t0, e - t0) for w, s, e in words]
    return Utterance(name, x, speaker, style, words, tone, isl)


def phrases(name: str, source: str | Path | bytes, *, speaker: str, style: str,
            min_gap: float = 0.35, min_len: float = 1.6,
            turns: list[tuple[float, float]] | None = None,
            core_below_peak: float | None = None) -> list[Utterance]:
    """A long recording split at its own pauses (>= ``min_gap``) into phrases >= ``min_len``.

    ``turns``: the source's speaker turns (s), where it has them: only speech inside counts.
    """
    x = decode(source)
    isl = islands(x, within=turns, core_below_peak=core_below_peak)
    groups: list[list[float]] = []
    for s, e in isl:
        if groups and (s - groups[-1][1] < min_gap or groups[-1][1] - groups[-1][0] < min_len):
            groups[-1][1] = e
        else:
            groups.append([s, e])
    if len(groups) > 1 and groups[-1][1] - groups[-1][0] < min_len:
        groups[-2][1] = groups.pop()[1]
    out = []
    for k, (s, e) in enumerate(groups):
        span = (max(0.0, s - 0.15), min(x.size / RATE, e + 0.15))
        out.append(_utterance_from(f"{name}#{k}", x, span, speaker, style, turns,
                                   core_below_peak))
    return out


def _utterance_from(name: str, x: np.ndarray, span: tuple[float, float], speaker: str,
                    style: str, turns: list[tuple[float, float]] | None,
                    core_below_peak: float | None) -> Utterance:
    part = x[int(span[0] * RATE): int(span[1] * RATE)]
    t0 = int(span[0] * RATE) / RATE
    isl = islands(part, within=None if turns is None else [(s - t0, e - t0) for s, e in turns],
                  core_below_peak=core_below_peak)
    gain = 10 ** ((SPEECH_RMS_DB - active_rms_db(part)) / 20)
    part = (part * gain).astype(np.float32)
    # Tone from the whole recording (a phrase alone may have too little of it).
    tone = room_tone((x * gain).astype(np.float32))
    return Utterance(name, part, speaker, style, None, tone, isl)


# --- scripts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    kind: str  # "say", "false_start", "take", "pause"
    utt: Utterance | None = None
    seconds: float = 0.0


def Say(u: Utterance) -> Piece:  # noqa: N802 - reads like a script
    return Piece("say", u)


def FalseStart(u: Utterance, seconds: float) -> Piece:  # noqa: N802
    return Piece("false_start", u, seconds)


def Take(u: Utterance) -> Piece:  # noqa: N802
    return Piece("take", u)


def Pause(seconds: float) -> Piece:  # noqa: N802
    return Piece("pause", None, seconds)


@dataclass(frozen=True)
class Room:
    """What the whole talk is heard through, on top of each source's own room tone.

    ``noise``: None, "pink", "rumble" (brown room noise) or "recorded" (``recorded``: a
    real noise recording, looped);
    ``snr_db``: speech level (SPEECH_RMS_DB) over the noise; ``hum_hz``: 50 or 60 Hz mains
    hum with odd/even harmonics at ``hum_db`` below speech.
    """

    noise: str | None = None
    snr_db: float = 25.0
    hum_hz: float | None = None
    hum_below_db: float = 22.0
    recorded: np.ndarray | None = None

    @property
    def label(self) -> str:
        parts = [{"pink": "pink", "rumble": "rumble", "recorded": "room noise"}.get(self.noise or "", "")]
        if self.noise:
            parts[0] += f" {self.snr_db:g} dB SNR"
        if self.hum_hz:
            parts.append(f"{self.hum_hz:g} Hz hum")
        return " + ".join(p for p in parts if p) or "clean"


@dataclass
class Truth:
    duration: float
    kept_words: list[tuple[float, float]]
    kept_speech: list[tuple[float, float]]  # kept voiced islands
    false_starts: list[tuple[float, float]]  # voiced span of each abandoned fragment
    takes: list[tuple[float, float]]  # voiced span of each abandoned whole take
    removable: list[tuple[float, float]]  # the stretch around each abandoned piece
    retake_onsets: list[float]
    pauses: list[tuple[float, float]]
    pieces: list[tuple[str, str, float, float]]  # (kind, name, start, end) for reports

    def to_json(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in (
            "duration", "kept_words", "kept_speech", "false_starts", "takes", "removable",
            "retake_onsets", "pauses", "pieces")}


@dataclass
class Talk:
    name: str
    samples: np.ndarray
    truth: Truth
    room: Room
    speakers: list[str]
    style: str

    def write(self, path: Path) -> Path:
        import wave

        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes((np.clip(self.samples, -1, 1) * 32767).astype("<i2").tobytes())
        return path


def _fragment(u: Utterance, seconds: float,
              rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The first ``seconds`` of speech of ``u`` (10 ms fade out), and its voiced islands.

    The islands are the utterance's own, cut at the break and moved by the tempo change:
    measured with the whole utterance's floor and peak, as the kept take's are.
    """
    target = u.onset + seconds
    if u.words:
        ends = [e for _, s, e in u.words if e - u.onset >= 0.3 and e < u.offset - 0.5]
        cut = min(ends, key=lambda e: abs(e - target)) if ends else target
    else:
        db = frame_db(u.samples)
        lo, hi = int((target - 0.15) / FRAME), int((target + 0.15) / FRAME)
        lo, hi = max(lo, 0), min(hi, db.size - 1)
        cut = (lo + int(np.argmin(db[lo:hi + 1]))) * FRAME + FRAME / 2 if hi > lo else target
    frag = u.samples[: int(cut * RATE)].copy()
    fade = min(frag.size, int(0.01 * RATE))
    frag[frag.size - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    # Not a sample-exact copy of the retake: a little faster or slower, louder or quieter.
    rate = 1 + float(rng.choice([-1, 1])) * float(rng.uniform(0.02, 0.04))
    n = max(2, int(round(frag.size / rate)))
    frag = np.interp(np.arange(n) * rate, np.arange(frag.size), frag).astype(np.float32)
    gain = 10 ** (float(rng.choice([-1, 1])) * float(rng.uniform(1.0, 3.0)) / 20)
    isl = [(s / rate, min(e, cut) / rate) for s, e in u.islands if s < cut - 0.02]
    return (frag * gain).astype(np.float32), isl


def _loop(tone: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of room tone: the tone looped from random offsets with 20 ms crossfades."""
    if n <= 0:
        return np.zeros(0, np.float32)
    pieces, total = [], 0
    while total < n + RATE // 10:
        start = int(rng.integers(0, max(1, tone.size - RATE // 20)))
        p = tone[start:]
        pieces.append(p)
        total += p.size
    return _join(pieces, 0.02)[:n]


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise, shaped in the frequency domain (flat below 20 Hz)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec /= np.sqrt(np.maximum(f, 20.0))
    x = np.fft.irfft(spec, n)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def rumble(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS room rumble: brown (1/f amplitude) noise from 20 Hz, as HVAC and traffic."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec /= np.maximum(f, 20.0)
    x = np.fft.irfft(spec, n)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def hum(n: int, hz: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS mains hum: the fundamental and harmonics of a rectifier-fed supply."""
    t = np.arange(n) / RATE
    phase = float(rng.uniform(0, 2 * np.pi))
    x = sum(a * np.sin(2 * np.pi * hz * k * t + phase * k)
            for k, a in ((1, 1.0), (2, 0.5), (3, 0.35), (4, 0.2), (5, 0.12)))
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def compose(name: str, script: list[Piece], room: Room | None = None, seed: int = 0,
            lead: float = 0.5, tail: float = 0.6) -> Talk:
    """Lay the script end to end, add the room, and measure the truth."""
    room = room or Room()
    rng = np.random.default_rng(seed)
    chunks: list[np.ndarray] = []
    # (kind, name, start s, islands in talk seconds, words in talk seconds)
    laid: list[tuple[str, str, float, float, list[tuple[float, float]],
                     list[tuple[float, float]]]] = []
    pos = 0
    last_tone: np.ndarray | None = None
    first = next(p.utt for p in script if p.utt is not None)
    assert first is not None
    chunks.append(_loop(first.tone, int(lead * RATE), rng))
    pos = chunks[0].size
    for piece in script:
        if piece.kind == "pause":
            tone = last_tone if last_tone is not None else first.tone
            audio = _loop(tone, int(piece.seconds * RATE), rng)
            chunks.append(audio)
            pos += audio.size
            continue
        u = piece.utt
        assert u is not None
        if piece.kind == "false_start":
            audio, isl = _fragment(u, piece.seconds, rng)
            words: list[tuple[float, float]] = []
        else:
            audio = u.samples
            isl = list(u.islands)
            words = _words_of(u)
        t0 = pos / RATE
        laid.append((piece.kind, u.name, t0, t0 + audio.size / RATE,
                     [(t0 + s, t0 + e) for s, e in isl], [(t0 + s, t0 + e) for s, e in words]))
        chunks.append(audio)
        pos += audio.size
        last_tone = u.tone
    chunks.append(_loop(last_tone if last_tone is not None else first.tone,
                        int(tail * RATE), rng))
    clean = np.concatenate(chunks).astype(np.float32)
    n = clean.size
    speech_rms = 10 ** (SPEECH_RMS_DB / 20)
    extra = np.zeros(n, np.float32)
    if room.noise in ("pink", "rumble"):
        noise = pink(n, rng) if room.noise == "pink" else rumble(n, rng)
        extra += noise * speech_rms * 10 ** (-room.snr_db / 20)
    elif room.noise == "recorded":
        if room.recorded is None or room.recorded.size == 0:
            raise ValueError("a 'recorded' room needs the noise recording")
        rec = room.recorded / (np.sqrt(np.mean(room.recorded.astype(np.float64) ** 2)) + 1e-12)
        extra += _loop(rec.astype(np.float32), n, rng) * speech_rms * 10 ** (-room.snr_db / 20)
    if room.hum_hz:
        extra += hum(n, room.hum_hz, rng) * speech_rms * 10 ** (-room.hum_below_db / 20)
    samples = clean + extra
    peak = float(np.max(np.abs(samples)))
    if peak > 0.99:  # never clip: scale everything (truth is in seconds, unaffected)
        samples *= 0.99 / peak
    return Talk(name, samples.astype(np.float32), _truth(laid, n / RATE), room,
                sorted({p.utt.speaker for p in script if p.utt is not None}),
                "/".join(sorted({p.utt.style for p in script if p.utt is not None})))


def _words_of(u: Utterance) -> list[tuple[float, float]]:
    """Word intervals of kept speech: known word times within voicing, else the islands."""
    if not u.words:
        return list(u.islands)
    out = []
    for w, s, e in u.words:
        if w.startswith("<") or w in ("sil", "SIL"):
            continue
        # Alignment times are approximate (10 ms frames): keep their voiced part.
        for a, b in u.islands:
            lo, hi = max(s, a), min(e, b)
            if hi - lo > 0.02:
                out.append((lo, hi))
    return out


def _truth(laid: list[tuple[str, str, float, float, list[tuple[float, float]],
                            list[tuple[float, float]]]], duration: float) -> Truth:
    kept_words: list[tuple[float, float]] = []
    kept_speech: list[tuple[float, float]] = []
    fs: list[tuple[float, float]] = []
    takes: list[tuple[float, float]] = []
    removable: list[tuple[float, float]] = []
    onsets: list[float] = []
    all_isl: list[tuple[float, float]] = []
    for i, (kind, _name, _a, _b, isl, words) in enumerate(laid):
        all_isl += isl
        if kind == "say":
            kept_speech += isl
            kept_words += words
            continue
        span = (isl[0][0], isl[-1][1]) if isl else (_a, _b)
        (fs if kind == "false_start" else takes).append(span)
        # Everything from the kept speech before it to the kept take after it may go.
        prev_end = max((x[4][-1][1] for x in laid[:i] if x[0] == "say" and x[4]), default=0.0)
        nxt = next((x for x in laid[i + 1:] if x[0] == "say" and x[4]), None)
        retake = nxt[4][0][0] if nxt is not None else duration
        removable.append((prev_end, retake))
        if nxt is not None:
            onsets.append(retake)
    all_isl.sort()
    pauses = [(a[1], b[0]) for a, b in zip(all_isl, all_isl[1:], strict=False) if b[0] > a[1]]
    pieces = [(k, nm, a, b) for k, nm, a, b, _, _ in laid]
    return Truth(duration, kept_words, kept_speech, fs, takes, _merge(removable),
                 sorted(set(onsets)), pauses, pieces)


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]



"""Spoken test talks (espeak-ng) with exact ground truth: sentences, false starts, fillers.

Each spoken part of a script is rendered on its own with ``espeak-ng -w``, its leading and
trailing silence trimmed by energy, and the parts are laid end to end with known gaps. So the
start and end of every part in the output file is known to the sample, which is what a test
of false-start detection needs (a transcriber's timing is not ground truth).

    script = [Sentence("Welcome to the show."), Pause(0.6),
              FalseStart("So the first thing"), Pause(0.5),
              Sentence("So the first thing you want to do is open the file.")]
    truth = generate_spoken_talk("talk.wav", script, voice="en-gb", speed=170)
    truth.false_starts  # [(start, end)] of the abandoned take, in seconds

``truth.words()`` gives an approximate word list (times spread inside each part by letter
count) that stands in for a transcript when a test must not depend on a transcriber.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from sapari_server.speech.types import Word

PartKind = Literal["sentence", "false_start", "filler", "pause"]
# espeak-ng writes 22.05 kHz mono 16-bit WAV whatever the voice.
ESPEAK_RATE = 22050
# Gap put between two spoken parts that the script does not separate with a Pause: enough
# for the parts to stay distinct in the energy envelope, short enough to sound continuous.
DEFAULT_GAP = 0.12
# Energy trim of espeak's own silence: 5 ms frames, voice = within 40 dB of the part's peak.
_TRIM_FRAME = 0.005
_TRIM_DB = 40.0
_PARALLEL = 4  # espeak-ng processes at once (each is short-lived and single threaded)


class SpeechGenUnavailable(RuntimeError):
    """espeak-ng is not installed, so spoken test talks cannot be generated."""


@dataclass(frozen=True)
class Segment:
    """One part of a script: something said, or a pause of ``seconds``."""

    kind: PartKind
    text: str = ""
    seconds: float = 0.0


def Sentence(text: str) -> Segment:  # noqa: N802 - reads like a script constructor
    return Segment("sentence", text)


def FalseStart(text: str) -> Segment:  # noqa: N802
    """An abandoned start of the sentence that follows it (the retake)."""
    return Segment("false_start", text)


def Filler(text: str = "um") -> Segment:  # noqa: N802
    return Segment("filler", text)


def Pause(seconds: float) -> Segment:  # noqa: N802
    return Segment("pause", seconds=seconds)


@dataclass(frozen=True)
class SpokenPart:
    kind: PartKind
    text: str
    start: float
    end: float


@dataclass
class SpokenTruth:
    """Where every part of the script is in the written file, in seconds."""

    duration: float
    sample_rate: int
    parts: list[SpokenPart]
    voice: str = "en-us"
    speed: int = 160
    fps: Fraction | None = None
    sentences: list[tuple[float, float]] = field(default_factory=list)
    false_starts: list[tuple[float, float]] = field(default_factory=list)
    fillers: list[tuple[float, float]] = field(default_factory=list)
    pauses: list[tuple[float, float]] = field(default_factory=list)  # every silent gap
    speech: list[tuple[float, float]] = field(default_factory=list)  # every spoken part

    def words(
        self, *, include_false_starts: bool = True, include_fillers: bool = True
    ) -> list[Word]:
        """Approximate word timing from the truth: each part's span shared by letter count.

        A false start's last word carries "..." the way Whisper marks abandoned sentences.
        Excluding false starts or fillers imitates a transcriber that dropped those words.
        """
        from sapari_server.speech.types import Word

        out: list[Word] = []
        for part in self.parts:
            if part.kind == "pause":
                continue
            if part.kind == "false_start" and not include_false_starts:
                continue
            if part.kind == "filler" and not include_fillers:
                continue
            tokens = part.text.split()
            if part.kind == "false_start" and tokens:
                tokens[-1] = tokens[-1].rstrip(".,;:!?") + "..."
            weights = np.array([max(1, len(re.sub(r"\W", "", t))) for t in tokens], dtype=float)
            edges = part.start + (part.end - part.start) * np.concatenate(
                [[0.0], np.cumsum(weights) / weights.sum()]
            )
            for tok, a, b in zip(tokens, edges[:-1], edges[1:], strict=True):
                out.append(Word(word=tok, start=round(float(a), 3), end=round(float(b), 3)))
        return out


def espeak_binary() -> str:
    """Path of espeak-ng, or a clear error saying how to get it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise SpeechGenUnavailable(
            "espeak-ng is not installed, so spoken test talks cannot be generated: "
            "install it (e.g. `apt-get install espeak-ng`) or skip speech tests."
        )
    return path


def _trim(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cut espeak's leading and trailing silence: keep from the first to the last loud frame."""
    n = max(1, int(rate * _TRIM_FRAME))
    frames = len(samples) // n
    if frames == 0:
        return samples
    rms = np.sqrt(np.mean(samples[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-20)
    peak = float(rms.max())
    if peak <= 1e-6:
        return samples[:0]
    loud = np.flatnonzero(rms >= peak * 10 ** (-_TRIM_DB / 20))
    return samples[loud[0] * n : (loud[-1] + 1) * n]


def _render_parts(texts: list[str], voice: str, speed: int, pitch: int) -> dict[str, np.ndarray]:
    """Render each distinct text once, a few espeak-ng processes at a time."""
    exe = espeak_binary()
    unique = list(dict.fromkeys(texts))
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="speechgen-") as tmp:
        for lo in range(0, len(unique), _PARALLEL):
            batch = unique[lo : lo + _PARALLEL]
            procs = []
            for i, text in enumerate(batch):
                wav = Path(tmp) / f"{lo + i}.wav"
                cmd = [exe, "-w", str(wav), "-v", voice, "-s", str(speed), "-p", str(pitch), text]
                procs.append((text, wav, subprocess.Popen(cmd, stderr=subprocess.PIPE)))
            for text, wav, proc in procs:
                _, err = proc.communicate(timeout=60)
                if proc.returncode != 0 or not wav.is_file():
                    raise SpeechGenUnavailable(
                        f"espeak-ng failed on voice {voice!r}: {err.decode(errors='replace').strip()}"
                    )
                with wave.open(str(wav)) as w:
                    if w.getnchannels() != 1 or w.getsampwidth() != 2:
                        raise SpeechGenUnavailable("espeak-ng wrote an unexpected WAV format")
                    rate = w.getframerate()
                    data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
                if rate != ESPEAK_RATE:
                    raise SpeechGenUnavailable(f"espeak-ng wrote {rate} Hz, expected {ESPEAK_RATE}")
                out[text] = _trim(data.astype(np.float32) / 32768.0, rate)
    return out


def generate_spoken_talk(
    path: str | Path,
    script: list[Segment],
    *,
    voice: str = "en-us",
    speed: int = 160,
    seed: int | None = None,
    noise_db: float | None = None,
    video: bool = False,
    lead_silence: float = 0.3,
    tail_silence: float = 0.3,
    sample_rate: int = ESPEAK_RATE,
) -> SpokenTruth:
    """Speak ``script`` into ``path`` (.wav; or .mp4/.mov/.mkv with ``video=True``).

    ``seed`` picks the speaker's pitch (espeak ``-p`` 35-65) and the noise; ``noise_db`` adds
    steady white noise at that RMS level in dBFS everywhere, pauses included.
    ``sample_rate`` resamples a .wav (16000 gives what the transcribers read); containers
    always carry 48 kHz AAC. Truth times are in seconds, so they hold at any rate.
    """
    path = Path(path)
    is_wav = path.suffix.lower() == ".wav"
    if video and is_wav:
        raise ValueError("a .wav file cannot carry video: use .mp4 or pass video=False")
    if not video and not is_wav:
        raise ValueError("audio-only talks are written as .wav: pass video=True for a container")
    rng = np.random.default_rng(seed)
    pitch = 50 if seed is None else int(rng.integers(35, 66))
    spoken = [s for s in script if s.kind != "pause"]
    for seg in script:
        if seg.kind == "pause" and seg.seconds < 0:
            raise ValueError(f"a pause cannot be negative ({seg.seconds} s)")
        if seg.kind != "pause" and not seg.text.strip():
            raise ValueError(f"a {seg.kind} part needs text")
    audio = _render_parts([s.text for s in spoken], voice, speed, pitch)

    rate = ESPEAK_RATE
    chunks: list[np.ndarray] = [np.zeros(int(round(lead_silence * rate)), np.float32)]
    pos = len(chunks[0])
    parts: list[SpokenPart] = []
    prev_spoken = False
    for seg in script:
        if seg.kind == "pause":
            n = int(round(seg.seconds * rate))
            if n:
                parts.append(SpokenPart("pause", "", pos / rate, (pos + n) / rate))
                chunks.append(np.zeros(n, np.float32))
                pos += n
            prev_spoken = False
            continue
        if prev_spoken:
            n = int(round(DEFAULT_GAP * rate))
            parts.append(SpokenPart("pause", "", pos / rate, (pos + n) / rate))
            chunks.append(np.zeros(n, np.float32))
            pos += n
        clip = audio[seg.text]
        parts.append(SpokenPart(seg.kind, seg.text, pos / rate, (pos + len(clip)) / rate))
        chunks.append(clip)
        pos += len(clip)
        prev_spoken = True
    chunks.append(np.zeros(int(round(tail_silence * rate)), np.float32))
    samples = np.concatenate(chunks)
    if noise_db is not None:
        samples = samples + rng.normal(0.0, 10 ** (noise_db / 20), len(samples)).astype(np.float32)
    samples = np.clip(samples, -1.0, 1.0)
    duration = len(samples) / rate

    fps: Fraction | None = None
    if is_wav:
        out_rate = rate
        if sample_rate != rate:
            samples, out_rate = _resample(samples, rate, sample_rate), sample_rate
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(out_rate)
            w.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).tobytes())
    else:
        fps = Fraction(30)
        _write_video(path, samples, rate, fps)

    def spans(kind: str) -> list[tuple[float, float]]:
        return [(p.start, p.end) for p in parts if p.kind == kind]

    silent = [(0.0, lead_silence)] if lead_silence > 0 else []
    silent += spans("pause")
    if tail_silence > 0:
        silent.append((duration - len(chunks[-1]) / rate, duration))
    return SpokenTruth(
        duration=duration,
        sample_rate=sample_rate if is_wav else 48000,
        parts=parts,
        voice=voice,
        speed=speed,
        fps=fps,
        sentences=spans("sentence"),
        false_starts=spans("false_start"),
        fillers=spans("filler"),
        pauses=silent,
        speech=[(p.start, p.end) for p in parts if p.kind != "pause"],
    )


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Band-limited resampling with PyAV (FFmpeg's swresample), same duration."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=dst)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = src
    frame.pts = 0
    frame.time_base = Fraction(1, src)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame) + resampler.resample(None)]
    data = np.concatenate(out) if out else np.zeros(0, np.float32)
    n = int(round(len(samples) * dst / src))
    return np.pad(data[:n], (0, max(0, n - len(data))))


def _write_video(path: Path, samples: np.ndarray, rate: int, fps: Fraction) -> None:
    """H.264 + AAC (48 kHz) container: a small moving picture under the spoken audio."""
    import av

    from .generate import base_picture, picture

    width, height, out_rate = 320, 240, 48000
    with av.open(str(path), mode="w") as out:
        vstream = out.add_stream("libx264", rate=fps)
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"crf": "30", "preset": "ultrafast"}
        astream = out.add_stream("aac", rate=out_rate, layout="mono")
        # Exact resampling to 48 kHz here keeps the truth times valid in the container.
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=out_rate)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        for rs in resampler.resample(frame) + resampler.resample(None):
            out.mux(astream.encode(rs))
        out.mux(astream.encode(None))
        base = base_picture(width, height)
        for i in range(math.ceil(len(samples) / rate * fps - 1e-9)):
            vf = av.VideoFrame.from_ndarray(picture(width, height, i, base), format="yuv420p")
            vf.pts = i
            vf.time_base = 1 / fps
            out.mux(vstream.encode(vf))
        out.mux(vstream.encode(None))


# Sentences a person might say in a tutorial talk; each is long enough to have a false start.
SENTENCE_BANK: tuple[str, ...] = (
    "Welcome back to the channel, today we are building a small weather station.",
    "So the first thing you want to do is open the terminal.",
    "Make sure the power supply is unplugged before you touch the board.",
    "The sensor sits on the left side of the breadboard.",
    "Next we connect the red wire to the three volt pin.",
    "If the light does not turn on, check the ground connection.",
    "This part of the code reads the temperature every ten seconds.",
    "I like to keep the wires short so the signal stays clean.",
    "Now let me show you what happens when we press the button.",
    "You can see the numbers changing on the screen right now.",
    "The library we need is already installed on this machine.",
    "We will store every reading in a simple text file.",
    "Remember to save your work before you upload the program.",
    "The display shows the humidity in the top right corner.",
    "Most of the time the default settings work just fine.",
    "Let me zoom in so you can read the small print.",
    "There are two ways to fix this problem, and both are easy.",
    "The battery should last for about three weeks.",
    "Here is the finished station sitting on my window sill.",
    "Our next step is to put everything inside the case.",
    "A small fan keeps the air moving over the sensor.",
    "The data goes to a web page that updates every minute.",
    "Try to mount the box away from direct sunlight.",
    "In the next video we will add a rain gauge.",
    "Thank you for watching, and see you next time.",
    "The wiring diagram is linked in the description below.",
    "Each reading takes less than a second to arrive.",
    "Once the case is closed, the station is ready to go.",
    "Please double check the polarity of the battery.",
    "The whole project costs less than twenty dollars.",
)
FILLERS: tuple[str, ...] = ("um", "uh", "erm")


def random_script(
    seed: int,
    n_sentences: int = 8,
    p_false_start: float = 0.3,
    p_filler: float = 0.1,
    pause_range: tuple[float, float] = (0.4, 1.0),
    false_start_pause: tuple[float, float] = (0.35, 0.7),
) -> list[Segment]:
    """A talk of ``n_sentences`` distinct bank sentences with false starts and fillers.

    A false start is the first 2 words up to 60% of its sentence, then a pause, then the
    whole sentence (the retake). Fillers stand alone between sentences.
    """
    if not 1 <= n_sentences <= len(SENTENCE_BANK):
        raise ValueError(f"n_sentences must be 1..{len(SENTENCE_BANK)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(SENTENCE_BANK))[:n_sentences]
    script: list[Segment] = []
    for k, idx in enumerate(order):
        sentence = SENTENCE_BANK[int(idx)]
        if k:
            script.append(Pause(round(float(rng.uniform(*pause_range)), 3)))
        if rng.random() < p_filler:
            script.append(Filler(FILLERS[int(rng.integers(len(FILLERS)))]))
            script.append(Pause(round(float(rng.uniform(0.25, 0.5)), 3)))
        if rng.random() < p_false_start:
            words = sentence.split()
            n = int(rng.integers(2, max(3, int(len(words) * 0.6)) + 1))
            script.append(FalseStart(" ".join(words[:n]).rstrip(",.")))
            script.append(Pause(round(float(rng.uniform(*false_start_pause)), 3)))
        script.append(Sentence(sentence))
    return script

"""Synthetic talking-head media with exact ground truth, for tests, benchmarks and samples.

Speech is a voiced harmonic tone (f0 100-220 Hz with vibrato) shaped by 4-6 Hz syllable
envelopes, so loudness-based tools see something that behaves like a voice: loud, with
dips and short stop-consonant gaps (never longer than ``MAX_INNER_GAP``) inside a phrase,
and digital silence (or steady noise) in the pauses. Everything is generated and encoded
block by block, so a 60-minute 720p file costs no more memory than a 10-second one.

``voice="formant"`` swaps the tone for something a speech detector (Silero VAD) accepts as
speech: the harmonics are weighted by vowel formant resonances that glide from syllable to
syllable, with jittered pitch and fricative noise at some syllable onsets. Rooms can add
white or pink noise (``noise_db``, ``noise_color``) and 50 Hz mains hum (``hum_db``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

# Longest near-silent gap placed inside a speech segment (a stop consonant's closure).
MAX_INNER_GAP = 0.10
# Onset/offset ramp of a speech segment: short enough that the truth boundaries stay sharp,
# long enough that the encoder does not see a click.
_EDGE_RAMP = 0.005
_AUDIO_BLOCK = 1024  # one AAC frame
# (F1, F2, F3) in Hz of a few English vowels (Peterson & Barney, male averages).
_VOWELS = np.array(
    [
        [730, 1090, 2440],  # a
        [270, 2290, 3010],  # i
        [300, 870, 2240],  # u
        [530, 1840, 2480],  # e
        [570, 840, 2410],  # o
        [660, 1720, 2410],  # ae
        [490, 1350, 1690],  # er
    ],
    dtype=np.float64,
)
_FORMANT_BW = np.array([90.0, 110.0, 170.0])  # resonance bandwidths, Hz
_VOICE_TOP = 5000.0  # highest harmonic rendered by the formant voice, Hz
_PINK_ROWS = 16  # Voss-McCartney rows: flat 1/f down to sr / 2**16 (< 1 Hz)
_HUM_HARMONICS = np.array([1.0, 0.5, 0.3, 0.2])  # 50, 100, 150, 200 Hz, rectifier-like


@dataclass
class TalkTruth:
    """Where speech and pauses are, in seconds, in the file ``generate_talk`` wrote."""

    duration: float
    speech: list[tuple[float, float]]
    pauses: list[tuple[float, float]]
    sample_rate: int = 48000
    fps: Fraction = field(default_factory=lambda: Fraction(30))


@dataclass
class _Syllables:
    """Flat arrays describing every syllable of the talk, for vectorised lookup."""

    starts: np.ndarray  # float64 seconds
    lengths: np.ndarray
    amps: np.ndarray  # 0 for a stop gap
    f0: np.ndarray  # fundamental of the phrase the syllable belongs to
    first: np.ndarray  # bool: first syllable of a phrase (ramp in)
    last: np.ndarray  # bool: last syllable of a phrase (ramp out)


def _plan(
    pauses: list[float],
    speech_lengths: list[float] | None,
    lead_silence: float,
    tail_silence: float,
    rng: np.random.Generator,
) -> tuple[float, list[tuple[float, float]], list[tuple[float, float]]]:
    n_speech = len(pauses) + 1
    if speech_lengths is None:
        speech_lengths = [float(rng.uniform(1.5, 3.5)) for _ in range(n_speech)]
    if len(speech_lengths) != n_speech:
        raise ValueError(f"need {n_speech} speech lengths for {len(pauses)} pauses")
    t = 0.0
    speech: list[tuple[float, float]] = []
    silent: list[tuple[float, float]] = []
    if lead_silence > 0:
        silent.append((0.0, lead_silence))
        t = lead_silence
    for i, length in enumerate(speech_lengths):
        speech.append((t, t + length))
        t += length
        if i < len(pauses):
            silent.append((t, t + pauses[i]))
            t += pauses[i]
    if tail_silence > 0:
        silent.append((t, t + tail_silence))
        t += tail_silence
    return t, speech, silent


def _syllables(speech: list[tuple[float, float]], rng: np.random.Generator) -> _Syllables:
    starts: list[float] = []
    lengths: list[float] = []
    amps: list[float] = []
    f0s: list[float] = []
    first: list[bool] = []
    last: list[bool] = []
    for s, e in speech:
        f0 = float(rng.uniform(100, 220))
        t = s
        begin = len(starts)
        while t < e - 1e-9:
            length = float(rng.uniform(1 / 6, 1 / 4))  # 4-6 syllables per second
            # A stop-consonant gap now and then, but never at a phrase edge: the truth
            # boundaries of speech must be real sound.
            gap = float(rng.uniform(0.04, MAX_INNER_GAP)) if rng.random() < 0.25 else 0.0
            if t + length + gap + 0.15 >= e:  # close the phrase with one last syllable
                length, gap = e - t, 0.0
            starts.append(t)
            lengths.append(length)
            amps.append(float(rng.uniform(0.6, 1.0)))
            f0s.append(f0)
            first.append(len(starts) - 1 == begin)
            last.append(False)
            t += length
            if gap:
                starts.append(t)
                lengths.append(gap)
                amps.append(0.0)
                f0s.append(f0)
                first.append(False)
                last.append(False)
                t += gap
        last[-1] = True
    return _Syllables(
        np.asarray(starts),
        np.asarray(lengths),
        np.asarray(amps),
        np.asarray(f0s),
        np.asarray(first),
        np.asarray(last),
    )


class _SpeechSynth:
    """Renders consecutive blocks of the talk's audio; keeps the oscillator phase."""

    # Harmonic weights of the "voice": falling like a glottal source, normalised so a full
    # syllable peaks near -12 dBFS RMS and the talk averages around -16 dBFS.
    _HARMONICS = np.array([1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08])

    def __init__(
        self,
        syl: _Syllables,
        duration: float,
        sample_rate: int,
        channels: int,
        noise_db: float | None,
        rng: np.random.Generator,
        *,
        noise_color: Literal["white", "pink"] = "white",
        hum_db: float | None = None,
        voice: Literal["tone", "formant"] = "tone",
        voice_seed: int = 0,
    ) -> None:
        self.syl = syl
        self.sr = sample_rate
        self.channels = channels
        self.total = int(round(duration * sample_rate))
        self.pos = 0
        self.phase = 0.0
        self.rng = rng
        rms_unit = math.sqrt(float(np.sum(self._HARMONICS**2)) / 2)
        self.gain = 10 ** (-12 / 20) / rms_unit
        self.noise = 0.0 if noise_db is None else 10 ** (noise_db / 20)
        self.ends = syl.starts + syl.lengths
        self.noise_color = noise_color
        self.hum = 0.0 if hum_db is None else 10 ** (hum_db / 20)
        self.voice = voice
        # The formant voice draws from its own generator so the plan and the default voice
        # stay identical for a given seed whatever options are chosen.
        vrng = np.random.default_rng([voice_seed, 0x5A9A])
        n_syl = syl.starts.size
        self.vowel = _VOWELS[vrng.integers(0, len(_VOWELS), n_syl)]
        # Previous syllable's vowel, for the glide at each syllable's start (coarticulation).
        self.prev_vowel = np.concatenate((self.vowel[:1], self.vowel[:-1]))
        self.fricative = vrng.random(n_syl) < 0.4
        self.vrng = vrng
        self.pink_rows = np.zeros(_PINK_ROWS)  # current held value of each Voss row

    def blocks(self, upto: int) -> Iterator[np.ndarray]:
        """Yield (channels, n) float32 blocks until sample ``upto`` (exclusive)."""
        upto = min(upto, self.total)
        while self.pos < upto:
            n = min(_AUDIO_BLOCK, upto - self.pos)
            yield self._render(self.pos, n)
            self.pos += n

    def _formant_voice(
        self, t: np.ndarray, idx: np.ndarray, x: np.ndarray, f0: np.ndarray, env: np.ndarray
    ) -> np.ndarray:
        """Unit-RMS-at-full-envelope voiced sound: harmonics weighted by vowel formants."""
        n = t.size
        # Jitter: a small random pitch step per block on top of the vibrato, as in voices.
        f0 = f0 * (1 + 0.01 * self.vrng.standard_normal(1))
        phase = self.phase + np.cumsum(2 * np.pi * f0 / self.sr)
        self.phase = float(phase[-1] % (2 * np.pi))
        # Formants glide from the previous vowel over the first 30 % of the syllable.
        glide = np.clip(np.clip(x, 0, 1) / 0.3, 0, 1)[:, None]
        formants = self.prev_vowel[idx] * (1 - glide) + self.vowel[idx] * glide  # (n, 3)
        k_max = int(_VOICE_TOP // max(float(f0.min()), 50.0))
        k = np.arange(1, k_max + 1)[:, None]  # (K, 1)
        freqs = k * f0[None, :]  # (K, n)
        # Source: glottal pulses fall ~12 dB/octave; the mouth radiates +6 dB/octave.
        amp = 1.0 / k
        for j in range(3):
            fj = formants[:, j][None, :]
            r = freqs / fj
            # Magnitude of a second-order resonance normalised to 1 at DC.
            amp = amp / np.sqrt((1 - r**2) ** 2 + (freqs * _FORMANT_BW[j] / fj**2) ** 2)
        amp = np.where(freqs < min(_VOICE_TOP, self.sr / 2 - 500), amp, 0.0)
        amp /= np.sqrt(np.sum(amp**2, axis=0) / 2)[None, :]
        voiced = (amp * np.sin(k * phase[None, :])).sum(axis=0)
        out = voiced * env
        # A fricative hiss (differenced noise: energy up high) opening some syllables.
        fric = self.fricative[idx] & (x >= 0) & (x < 0.3) & (env > 0)
        if fric.any():
            hiss = np.diff(self.vrng.standard_normal(n + 1)) * 0.25
            out = np.where(fric, out * 0.5 + hiss * self.syl.amps[idx], out)
        return out

    def _pink(self, start: int, n: int) -> np.ndarray:
        """Unit-RMS pink noise, Voss-McCartney: row r holds a random value for 2**r samples.

        Rows change on absolute sample indices, so blocks join without seams.
        """
        pos = start + np.arange(n)
        out = np.zeros(n)
        for r in range(_PINK_ROWS):
            cell = pos >> r
            changes = np.flatnonzero(np.diff(cell, prepend=cell[0] - (pos[0] % (1 << r) == 0)))
            # Value per sample: the carried one until the first change in this block.
            vals = np.empty(changes.size + 1)
            vals[0] = self.pink_rows[r]
            vals[1:] = self.rng.standard_normal(changes.size)
            seg = np.searchsorted(changes, np.arange(n), side="right")
            out += vals[seg]
            self.pink_rows[r] = vals[-1]
        return out / math.sqrt(_PINK_ROWS)

    def _render(self, start: int, n: int) -> np.ndarray:
        t = (start + np.arange(n)) / self.sr
        syl = self.syl
        idx = np.searchsorted(syl.starts, t, side="right") - 1
        inside = (idx >= 0) & (t < self.ends[np.maximum(idx, 0)])
        idx = np.maximum(idx, 0)
        x = (t - syl.starts[idx]) / syl.lengths[idx]
        # Syllable shape: a rounded hump over a floor, so syllables dip into each other
        # (-16 dB between them) instead of dropping to silence.
        env = syl.amps[idx] * (0.16 + 0.84 * np.sin(np.pi * np.clip(x, 0, 1)) ** 0.7)
        local = t - syl.starts[idx]
        remain = self.ends[idx] - t
        ramp_in = np.where(syl.first[idx], np.clip(local / _EDGE_RAMP, 0, 1), 1.0)
        ramp_out = np.where(syl.last[idx], np.clip(remain / _EDGE_RAMP, 0, 1), 1.0)
        env = np.where(inside, env * ramp_in * ramp_out, 0.0)
        f0 = syl.f0[idx] * (
            1 + 0.03 * np.sin(2 * np.pi * 5.5 * t) + 0.05 * np.sin(2 * np.pi * 0.3 * t)
        )
        if self.voice == "formant":
            mono = self._formant_voice(t, idx, x, f0, env) * (10 ** (-12 / 20))
        else:
            phase = self.phase + np.cumsum(2 * np.pi * f0 / self.sr)
            self.phase = float(phase[-1] % (2 * np.pi))
            k = np.arange(1, len(self._HARMONICS) + 1)[:, None]
            voice = (self._HARMONICS[:, None] * np.sin(k * phase[None, :])).sum(axis=0)
            mono = voice * env * self.gain
        if self.noise:
            if self.noise_color == "pink":
                mono = mono + self._pink(start, n) * self.noise
            else:
                mono = mono + self.rng.normal(0.0, self.noise, n)
        if self.hum:
            k = np.arange(1, len(_HUM_HARMONICS) + 1)[:, None]
            norm = self.hum / math.sqrt(float(np.sum(_HUM_HARMONICS**2)) / 2)
            # Absolute time keeps the hum phase-continuous across blocks without state.
            hum = (_HUM_HARMONICS[:, None] * np.sin(2 * np.pi * 50.0 * k * t[None, :])).sum(0)
            mono = mono + hum * norm
        out = np.empty((self.channels, n), dtype=np.float32)
        for c in range(self.channels):
            # Slightly different gain per channel so a mono mix is a real mix.
            out[c] = mono * (1.0 - 0.15 * c)
        return out


def picture(width: int, height: int, index: int, base: np.ndarray) -> np.ndarray:
    """yuv420p planes (stacked, shape (h*3/2, w)) of frame ``index``: moving box + counter."""
    frame = base.copy()
    y = frame[:height]
    # Background drifts one pixel per frame so every frame differs.
    y[:] = np.roll(y, index % width, axis=1)
    box = max(8, min(width, height) // 5)
    span_x, span_y = width - box, height - box
    bx = int(abs((index * 4) % (2 * span_x) - span_x)) if span_x > 0 else 0
    by = int(abs((index * 3) % (2 * span_y) - span_y)) if span_y > 0 else 0
    y[by : by + box, bx : bx + box] = 235
    # Frame number as 16 binary cells along the top edge.
    cell = max(2, width // 32)
    for bit in range(16):
        if index >> bit & 1:
            y[0:cell, bit * cell : (bit + 1) * cell] = 16
    return frame


def base_picture(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    luma = (60 + 100 * xx / max(1, width - 1) + 40 * yy / max(1, height - 1)).astype(np.uint8)
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)
    chroma[: height // 4] = 110  # a touch of colour so chroma planes are not flat
    return np.concatenate([luma, chroma], axis=0)


def generate_talk(
    path: str | Path,
    *,
    pauses: list[float] | None = None,
    speech_lengths: list[float] | None = None,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    fps: int | Fraction = 30,
    sample_rate: int = 48000,
    channels: int = 1,
    video: bool = True,
    audio: bool = True,
    noise_db: float | None = None,
    noise_color: Literal["white", "pink"] = "white",
    hum_db: float | None = None,
    voice: Literal["tone", "formant"] = "tone",
    lead_silence: float = 0.0,
    tail_silence: float = 0.0,
    crf: int = 30,
    preset: str = "ultrafast",
    gop: int | None = None,
    audio_bitrate: int = 96_000,
    faststart: bool = False,
) -> TalkTruth:
    """Write a synthetic talk to ``path`` and return where its speech and pauses are.

    Layout: [lead_silence] speech pause speech pause ... speech [tail_silence]. The
    container follows the suffix (.mp4/.mov/.mkv: H.264 + AAC; .wav: PCM, audio only).
    ``noise_db`` is the RMS level (dBFS) of steady noise of ``noise_color``; ``hum_db`` adds
    50 Hz mains hum with harmonics at that RMS level; ``voice="formant"`` renders a
    vowel-like voice that speech detectors recognise (the default tone is kept for tests
    that pin its levels).
    """
    if not (video or audio):
        raise ValueError("generate_talk needs video or audio")
    path = Path(path)
    rng = np.random.default_rng(seed)
    if pauses is None:
        pauses = [0.8, 1.5, 0.3, 2.0]
    duration, speech, silent = _plan(pauses, speech_lengths, lead_silence, tail_silence, rng)
    rate = Fraction(fps)
    is_wav = path.suffix.lower() == ".wav"
    if is_wav and video:
        raise ValueError("a .wav file cannot carry video: pass video=False")
    if video and (width % 2 or height % 2):
        raise ValueError("yuv420p needs an even width and height")

    options = {"movflags": "+faststart"} if faststart and not is_wav else {}
    with av.open(str(path), mode="w", options=options) as out:
        vstream = astream = None
        if video:
            vstream = out.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = width, height
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(crf), "preset": preset}
            if gop is not None:
                # Cameras and OBS put a keyframe every 1-2 s; x264's default is 250 frames.
                vstream.options["g"] = str(gop)
            vstream.codec_context.time_base = 1 / rate
        if audio:
            layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
            if is_wav:
                astream = out.add_stream("pcm_s16le", rate=sample_rate, layout=layout)
            else:
                astream = out.add_stream("aac", rate=sample_rate, layout=layout)
                astream.bit_rate = audio_bitrate * max(1, channels)

        synth = _SpeechSynth(
            _syllables(speech, rng),
            duration,
            sample_rate,
            channels,
            noise_db,
            rng,
            noise_color=noise_color,
            hum_db=hum_db,
            voice=voice,
            voice_seed=seed,
        )
        a_format = "s16" if is_wav else "fltp"

        def push_audio(upto: int) -> None:
            assert astream is not None
            for block in synth.blocks(upto):
                data = block
                if a_format == "s16":
                    # Packed int16: interleave channels into one row.
                    data = (np.clip(block.T, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(data, format=a_format, layout=astream.layout)
                frame.sample_rate = sample_rate
                frame.pts = synth.pos
                frame.time_base = Fraction(1, sample_rate)
                out.mux(astream.encode(frame))

        if vstream is not None:
            base = base_picture(width, height)
            n_frames = math.ceil(duration * rate - 1e-9)
            for i in range(n_frames):
                if astream is not None:
                    # Keep audio a little ahead of video so the muxer interleaves cheaply.
                    push_audio(int((i + 1) / rate * sample_rate) + _AUDIO_BLOCK)
                frame = av.VideoFrame.from_ndarray(
                    picture(width, height, i, base), format="yuv420p"
                )
                frame.pts = i
                frame.time_base = 1 / rate
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode(None))
        if astream is not None:
            push_audio(synth.total)
            out.mux(astream.encode(None))

    return TalkTruth(
        duration=duration,
        speech=speech,
        pauses=silent,
        sample_rate=sample_rate,
        fps=rate,
    )


def make_bad_inputs(dirpath: str | Path) -> dict[str, Path]:
    """Write inputs a user might upload by mistake; keys name what is wrong with each."""
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    text = d / "text.mp4"
    text.write_text("These are my lecture notes, not a video.\n" * 20)
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    good = d / "good_for_truncation.mp4"
    generate_talk(good, pauses=[0.6], speech_lengths=[1.5, 1.5], seed=7)
    data = good.read_bytes()
    truncated = d / "truncated.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    good.unlink()
    no_audio = d / "no_audio.mp4"
    generate_talk(no_audio, pauses=[0.6], speech_lengths=[1.0, 1.0], audio=False, seed=8)
    # A subtitle file FFmpeg recognises: a readable container with no audio or video.
    subtitles = d / "subtitles.mp4"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:02,000\nHello there.\n\n")
    return {
        "text": text,
        "empty": empty,
        "truncated": truncated,
        "no_audio": no_audio,
        "no_streams": subtitles,
    }

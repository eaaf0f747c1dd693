"""Build the shipped sample talk: espeak-ng speech + a moving picture, with its ground truth.

Run once (needs espeak-ng on PATH; the product itself does not):

    .venv/bin/python scripts/make_sample.py

Writes sapari_nb/samples/talk.mp4 (H.264 CRF 30 + AAC 96k mono, 320x240 30 fps, a keyframe
every 2 s) and sapari_nb/samples/talk.json (the script, and where every phrase, pause and
false start is). Each phrase is synthesized separately and trimmed of espeak's own padding, so
the pause lengths written to the JSON are exact.

    .venv/bin/python scripts/make_sample.py --video-only

re-encodes only the picture track of the existing talk.mp4 (its AAC packets are copied as
they are, so the sound and the JSON's times do not move); no espeak-ng needed.

Keyframes every GOP frames (2 s), as cameras and OBS record: with x264's default (250 frames,
8.3 s) every piece the editor keeps was shorter than a GOP, and the smart render of the
sample could copy no whole group of pictures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped

from sapari_testkit.generate import base_picture, picture  # noqa: E402

RATE = 48_000
FPS = 30
WIDTH, HEIGHT = 320, 240
GAP = 0.22  # ordinary breath between phrases: not a pause worth cutting
GOP = 60  # frames between keyframes: 2 s, as cameras and OBS record
X264 = {"crf": "30", "preset": "slow", "g": str(GOP)}

# (text, pause after it in seconds, kind). kind "false_start" marks an abandoned phrase.
SCRIPT: list[tuple[str, float, str]] = [
    ("Hi, and welcome back to the channel.", GAP, "speech"),
    ("Today we are going to set up a small home recording studio.", 1.2, "speech"),
    ("So the first thing you", 0.7, "false_start"),
    (
        "So the first thing you want to do is find a quiet room with soft furnishings.",
        GAP,
        "speech",
    ),
    ("Curtains, a rug, and a bookshelf all help to stop echoes.", 1.6, "speech"),
    ("Next, put the microphone about a hand's width from your mouth.", 0.9, "speech"),
    ("Closer sounds warmer, but watch out for popping sounds.", GAP, "speech"),
    ("Finally, record a short test and listen back on headphones.", 2.0, "speech"),
    ("That's it for today. Thanks for watching, and see you next time.", 0.0, "speech"),
]


def speak(text: str, workdir: Path, voice: str, speed: int) -> tuple[np.ndarray, int]:
    out = workdir / "phrase.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text],
        check=True,
        capture_output=True,
    )
    with wave.open(str(out)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    samples = pcm.astype(np.float32) / 32768
    # Trim espeak's leading/trailing silence so our pause lengths are the real ones.
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return samples[loud[0] : loud[-1] + 1], rate


def to_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    parts = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    parts += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(parts)


def build_audio(voice: str, speed: int) -> tuple[np.ndarray, list[dict]]:
    pieces: list[np.ndarray] = []
    phrases: list[dict] = []
    lead = np.zeros(int(0.4 * RATE), np.float32)  # a beat of quiet before the first word
    pieces.append(lead)
    t = lead.size
    with tempfile.TemporaryDirectory() as tmp:
        for text, pause, kind in SCRIPT:
            raw, rate = speak(text, Path(tmp), voice, speed)
            audio = to_rate(raw, rate)
            audio *= 0.35 / max(1e-6, float(np.abs(audio).max()))  # peaks near -9 dBFS
            phrases.append(
                {"text": text, "kind": kind, "start": t / RATE, "end": (t + audio.size) / RATE}
            )
            pieces.append(audio.astype(np.float32))
            t += audio.size
            gap = np.zeros(int(round(pause * RATE)), np.float32)
            pieces.append(gap)
            t += gap.size
    tail = np.zeros(int(0.5 * RATE), np.float32)
    pieces.append(tail)
    return np.concatenate(pieces), phrases


def encode(path: Path, audio: np.ndarray) -> float:
    duration = audio.size / RATE
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.options = dict(X264)
        vs.codec_context.time_base = Fraction(1, FPS)
        aus = out.add_stream("aac", rate=RATE, layout="mono")
        aus.bit_rate = 96_000
        base = base_picture(WIDTH, HEIGHT)
        n_frames = int(np.ceil(duration * FPS - 1e-9))
        pos = 0
        for i in range(n_frames):
            upto = min(audio.size, int((i + 1) / FPS * RATE) + 1024)
            while pos < upto:
                chunk = audio[pos : min(upto, pos + 1024)]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = RATE, pos, Fraction(1, RATE)
                out.mux(aus.encode(frame))
                pos += chunk.size
            vf = av.VideoFrame.from_ndarray(picture(WIDTH, HEIGHT, i, base), format="yuv420p")
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    return duration


def reencode_video(mp4: Path) -> None:
    """Re-encode the picture track of `mp4` with X264; copy its audio packets untouched."""
    tmp = mp4.with_name(f".{mp4.name}.partial")
    with av.open(str(mp4)) as src, av.open(
        str(tmp), "w", format="mp4", options={"movflags": "+faststart"}
    ) as out:
        n_frames = src.streams.video[0].frames
        a_in = src.streams.audio[0]
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.options = dict(X264)
        vs.codec_context.time_base = Fraction(1, FPS)
        aus = out.add_stream_from_template(a_in)
        audio = (p for p in src.demux(a_in) if p.size)
        base = base_picture(WIDTH, HEIGHT)
        pending = next(audio, None)
        for i in range(n_frames):
            # Audio up to this frame's time first, so the file interleaves as encode() writes.
            while pending is not None and pending.pts * a_in.time_base <= Fraction(i + 1, FPS):
                pending.stream = aus
                out.mux(pending)
                pending = next(audio, None)
            vf = av.VideoFrame.from_ndarray(picture(WIDTH, HEIGHT, i, base), format="yuv420p")
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        while pending is not None:
            pending.stream = aus
            out.mux(pending)
            pending = next(audio, None)
    tmp.replace(mp4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "sapari_nb" / "samples")
    parser.add_argument("--voice", default="en-us")
    parser.add_argument("--speed", type=int, default=165, help="espeak-ng words per minute")
    parser.add_argument(
        "--video-only",
        action="store_true",
        help="re-encode only the picture track of the existing talk.mp4 (keeps its sound)",
    )
    args = parser.parse_args()
    if args.video_only:
        mp4 = args.out / "talk.mp4"
        reencode_video(mp4)
        print(f"re-encoded the video of {mp4} ({mp4.stat().st_size / 1e3:.0f} kB)")
        return
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed: apt-get install -y espeak-ng")

    audio, phrases = build_audio(args.voice, args.speed)
    args.out.mkdir(parents=True, exist_ok=True)
    mp4 = args.out / "talk.mp4"
    duration = encode(mp4, audio)

    pauses = []
    prev_end = 0.0
    for p in phrases:
        if p["start"] - prev_end > 0.5:
            pauses.append({"start": round(prev_end, 4), "end": round(p["start"], 4)})
        prev_end = p["end"]
    if duration - prev_end > 0.3:
        pauses.append({"start": round(prev_end, 4), "end": round(duration, 4)})
    false_starts = []
    for i, p in enumerate(phrases):
        if p["kind"] == "false_start":
            retake = phrases[i + 1]
            false_starts.append(
                {
                    "start": round(p["start"], 4),
                    "end": round(retake["start"], 4),
                    "abandoned": p["text"],
                    "retake": retake["text"],
                }
            )
    truth = {
        "file": mp4.name,
        "duration": round(duration, 4),
        "video": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "codec": "h264", "crf": 30},
        "audio": {"sample_rate": RATE, "channels": 1, "codec": "aac", "bit_rate": 96_000},
        "made_with": f"espeak-ng voice {args.voice} at {args.speed} wpm",
        "script": " ".join(
            p["text"] + ("..." if p["kind"] == "false_start" else "") for p in phrases
        ),
        "phrases": [
            {**p, "start": round(p["start"], 4), "end": round(p["end"], 4)} for p in phrases
        ],
        "pauses": pauses,
        "false_starts": false_starts,
    }
    (args.out / "talk.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"wrote {mp4} ({mp4.stat().st_size / 1e3:.0f} kB, {duration:.1f} s)")


if __name__ == "__main__":
    main()

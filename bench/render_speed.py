"""Render speed and size: smart and exact against a full re-encode, and against earlier figures.

    .venv/bin/python bench/render_speed.py [--runs N] [--smart-only] [--save]

Generates (once, cached in bench/.cache/) a 10-minute 720p30 H.264/AAC talk (x264 veryfast
CRF 23, a keyframe every 2 s, B-frames) with 40 pauses, cuts every pause out (41
keep-segments, off the frame grid as an editor sends them) and prints, per renderer: best
wall time of N alternating runs, CPU seconds, x realtime (output seconds per wall second),
frames copied, and output size against ``source size x kept fraction``.

The baseline is a full ``ffmpeg``-style re-encode done with PyAV: decode the whole file and
encode every frame with the exact renderer's x264 settings (matched to the source) and its
audio with the same AAC settings, one pass, no cutting. ``ffmpeg`` itself is also timed on the
same cuts (trim+concat) when a binary is on PATH (the product never needs one).

The machine is shared: runs alternate between renderers and the best of N is kept; CPU
seconds (user+sys of this process, all threads) are the steadier figure. Earlier figures
live in bench/render_speed.json (``--save`` replaces its "current" entry and keeps the rest).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped

from sapari_server.media import render as R  # noqa: E402
from sapari_server.media.probe import coding  # noqa: E402
from sapari_server.media.render import Piece, RenderSettings, render  # noqa: E402
from sapari_testkit.generate import generate_talk  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
FIGURES = Path(__file__).resolve().parent / "render_speed.json"
# A keyframe every 2 s, as cameras and OBS record; smart render copies whole GOPs.
GOP = 60
TALK = CACHE / f"render_talk_10min_720p30_gop{GOP}.mp4"
PAUSES = 40
MINUTES = 10


def talk() -> list[Piece]:
    """The cached talk's keep-segments: each speech span plus 0.15 s of the pauses around it
    (off the frame grid, as the editor sends them)."""
    truth_file = TALK.with_suffix(".speech.json")
    if not (TALK.exists() and truth_file.exists()):
        rng = np.random.default_rng(40)
        pauses = [float(p) for p in rng.uniform(0.6, 2.5, PAUSES)]
        weights = rng.uniform(0.5, 1.5, PAUSES + 1)
        speech = [float(w) for w in weights / weights.sum() * (MINUTES * 60.0 - sum(pauses))]
        CACHE.mkdir(exist_ok=True)
        tmp = TALK.with_suffix(".part.mp4")
        t = time.perf_counter()
        truth = generate_talk(
            tmp,
            pauses=pauses,
            speech_lengths=speech,
            width=1280,
            height=720,
            fps=30,
            crf=23,
            preset="veryfast",
            gop=GOP,
        )
        tmp.rename(TALK)
        truth_file.write_text(json.dumps({"duration": truth.duration, "speech": truth.speech}))
        print(
            f"generated {TALK.name}: {TALK.stat().st_size / 1e6:.1f} MB in "
            f"{time.perf_counter() - t:.0f} s"
        )
    info = json.loads(truth_file.read_text())
    return [
        Piece(TALK, max(0.0, a - 0.15), min(info["duration"], b + 0.15)) for a, b in info["speech"]
    ]


def gop_stats(path: Path) -> tuple[float, bool]:
    """Mean frames per GOP and whether the file has B-frames."""
    keys = frames = 0
    reordered = False
    last_pts = -1
    with av.open(str(path)) as c:
        for pkt in c.demux(video=0):
            if pkt.size == 0:
                continue
            frames += 1
            keys += pkt.is_keyframe
            if pkt.pts is not None:
                reordered |= pkt.pts < last_pts
                last_pts = pkt.pts
    return frames / max(keys, 1), reordered


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Run:
    wall: float
    cpu: float
    out_seconds: float
    size: int
    copied: int = 0
    frames: int = 0


def ours(pieces: list[Piece], mode: str) -> Run:
    out = CACHE / f"out_{mode}.mp4"
    t, c = time.perf_counter(), cpu_seconds()
    result = render(pieces, out, RenderSettings(mode=mode))  # type: ignore[arg-type]
    return Run(
        time.perf_counter() - t,
        cpu_seconds() - c,
        result.duration,
        out.stat().st_size,
        result.copied_frames,
        result.video_frames,
    )


def full_reencode(_: list[Piece]) -> Run:
    """Decode the whole talk and re-encode every frame and sample (ffmpeg -i in.mp4 out.mp4
    with the exact renderer's x264 and AAC settings): the cost of a render that cuts nothing.
    Decoder and encoder use their own thread pools, as ffmpeg's do."""
    settings = RenderSettings(mode="exact")
    src = coding(TALK)
    out_path = CACHE / "out_full.mp4"
    t, c = time.perf_counter(), cpu_seconds()
    with av.open(str(TALK)) as inp, av.open(
        str(out_path), "w", options={"movflags": "+faststart"}
    ) as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vin.thread_type = "AUTO"
        fps = Fraction(vin.average_rate)
        vout = out.add_stream(settings.video_codec, rate=fps)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.options = R.encoder_options(settings, src.video, vin.width, vin.height, fps)
        vout.codec_context.thread_type = "FRAME"
        aout = out.add_stream("aac", rate=ain.rate, layout=ain.layout.name)
        aout.bit_rate = R.audio_bit_rate(settings, src.audio)
        aout.options = {"aac_coder": "fast"}
        frames = 0
        for pkt in inp.demux(vin, ain):
            for frame in pkt.decode():
                if isinstance(frame, av.VideoFrame):
                    frame.pict_type = av.video.frame.PictureType.NONE
                    out.mux(vout.encode(frame))
                    frames += 1
                else:
                    out.mux(aout.encode(frame))
        out.mux(vout.encode(None))
        out.mux(aout.encode(None))
    return Run(
        time.perf_counter() - t, cpu_seconds() - c, frames / float(fps), out_path.stat().st_size
    )


def ffmpeg(pieces: list[Piece]) -> Run | None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    parts, labels = [], []
    for i, p in enumerate(pieces):
        parts.append(f"[0:v]trim={p.start:.6f}:{p.end:.6f},setpts=PTS-STARTPTS[v{i}]")
        parts.append(f"[0:a]atrim={p.start:.6f}:{p.end:.6f},asetpts=PTS-STARTPTS[a{i}]")
        labels.append(f"[v{i}][a{i}]")
    graph = ";".join(parts) + ";" + "".join(labels) + f"concat=n={len(pieces)}:v=1:a=1[v][a]"
    script = CACHE / "concat.filter"
    script.write_text(graph)
    out = CACHE / "out_ffmpeg.mp4"
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-i", str(TALK),
           "-filter_complex_script", str(script), "-map", "[v]", "-map", "[a]",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
           "-c:a", "aac", "-b:a", "96k", str(out)]  # fmt: skip
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=True)
    del proc
    wall = time.perf_counter() - t
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    kept = sum(p.end - p.start for p in pieces)
    return Run(wall, ru.ru_utime + ru.ru_stime, kept, out.stat().st_size)


def best_of(
    runners: dict[str, Callable[[list[Piece]], Run | None]], pieces: list[Piece], runs: int
) -> dict[str, Run]:
    """Alternate the renderers `runs` times; keep each one's fastest run."""
    best: dict[str, Run] = {}
    for _ in range(runs):
        for name, fn in runners.items():
            r = fn(pieces)
            if r is not None and (name not in best or r.wall < best[name].wall):
                best[name] = r
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="alternating runs per renderer")
    ap.add_argument("--smart-only", action="store_true", help="time only the smart render")
    ap.add_argument("--save", action="store_true", help="store these figures as 'current'")
    args = ap.parse_args()
    pieces = talk()
    gop, bframes = gop_stats(TALK)
    source_size = TALK.stat().st_size
    duration = json.loads(TALK.with_suffix(".speech.json").read_text())["duration"]
    runners: dict[str, Callable[[list[Piece]], Run | None]] = {
        "smart": lambda p: ours(p, "smart")
    }
    if not args.smart_only:
        runners["exact"] = lambda p: ours(p, "exact")
        runners["full re-encode"] = full_reencode
        runners["ffmpeg trim+concat"] = ffmpeg
    best = best_of(runners, pieces, max(1, args.runs))
    smart = best["smart"]
    print(
        f"\n{TALK.name}: {duration:.0f} s 1280x720 30 fps, GOP {gop:.1f} frames, "
        f"B-frames {'yes' if bframes else 'no'}, {source_size / 1e6:.2f} MB; "
        f"{len(pieces)} keep-segments, {smart.out_seconds:.1f} s out; best of {args.runs}"
    )
    print(f"smart: {smart.copied} of {smart.frames} frames copied")
    head = f"{'renderer':<22}{'wall s':>8}{'cpu s':>8}{'x realtime':>12}{'size MB':>9}{'/target':>9}"
    print(head)
    figures: dict[str, dict[str, float]] = {}
    for name, r in best.items():
        target = source_size * r.out_seconds / duration
        print(
            f"{name:<22}{r.wall:>8.1f}{r.cpu:>8.1f}{r.out_seconds / r.wall:>12.1f}"
            f"{r.size / 1e6:>9.2f}{r.size / target:>9.3f}"
        )
        figures[name] = {"wall": round(r.wall, 2), "cpu": round(r.cpu, 2),
                         "size_ratio": round(r.size / target, 3)}  # fmt: skip
    if "exact" in best:
        full = best["full re-encode"]
        print(f"{'exact / full re-encode':<22}{best['exact'].wall / full.wall:>8.2f} (wall)")
        print(f"{'smart / exact':<22}{smart.wall / best['exact'].wall:>8.2f} (wall)")
    earlier = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    for label, entry in earlier.items():
        if label == "current" or not isinstance(entry, dict):
            continue
        note = entry.get("note", "")
        for name, old in entry.get("figures", {}).items():
            if name in figures:
                now = figures[name]
                print(
                    f"vs {label} ({note}): {name} wall {old['wall']:.1f} -> {now['wall']:.1f} s, "
                    f"cpu {old['cpu']:.1f} -> {now['cpu']:.1f} s, size/target "
                    f"{old['size_ratio']:.3f} -> {now['size_ratio']:.3f}"
                )
    if args.save:
        earlier["current"] = {"note": time.strftime("%Y-%m-%d"), "figures": figures}
        FIGURES.write_text(json.dumps(earlier, indent=2) + "\n")
    assert smart.frames and all(r.size for r in best.values())


if __name__ == "__main__":
    main()

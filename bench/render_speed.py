"""Render speed: smart (stream copy + re-encoded cut edges) vs exact vs ffmpeg re-encode.

    .venv/bin/python bench/render_speed.py [--smart-only]

``--smart-only`` times just the smart render (for iterating); the full table needs no flag.

Generates (once, cached in bench/.cache/) a 10-minute 720p30 H.264/AAC talk with 40 pauses,
cuts every pause out (41 keep-segments, off the frame grid as an editor would send them) and
prints one table in x realtime (source seconds rendered per wall second... of output, i.e.
output duration / wall time): our smart render, our exact render, their ratio, and
``ffmpeg`` re-encoding the same keep-segments (trim/atrim + concat, preset veryfast) when an
ffmpeg binary is on PATH (the product never needs one).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped

from sapari_server.media.render import Piece, RenderResult, RenderSettings, render  # noqa: E402
from sapari_testkit.generate import generate_talk  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
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


def ours(pieces: list[Piece], mode: str) -> tuple[float, RenderResult]:
    out = CACHE / f"out_{mode}.mp4"
    t = time.perf_counter()
    result = render(pieces, out, RenderSettings(mode=mode))  # type: ignore[arg-type]
    return time.perf_counter() - t, result


def ffmpeg(pieces: list[Piece]) -> float | None:
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
    cmd = [
        exe,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(TALK),
        "-filter_complex_script",
        str(script),
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "20",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        str(CACHE / "out_ffmpeg.mp4"),
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def main() -> None:
    smart_only = "--smart-only" in sys.argv[1:]
    pieces = talk()
    gop, bframes = gop_stats(TALK)
    smart_s, smart = ours(pieces, "smart")
    if smart_only:
        print(
            f"smart: {smart.copied_frames} copied, {smart.encoded_frames} re-encoded; "
            f"{smart_s:.1f} s wall, {smart.duration / smart_s:.1f}x realtime"
        )
        return
    exact_s, exact = ours(pieces, "exact")
    ff_s = ffmpeg(pieces)
    dur = smart.duration
    print(
        f"\n{TALK.name}: 600 s 1280x720 30 fps, GOP {gop:.1f} frames, "
        f"B-frames {'yes' if bframes else 'no'}; {len(pieces)} keep-segments, "
        f"{dur:.1f} s out"
    )
    print(f"smart: {smart.copied_frames} frames copied, {smart.encoded_frames} re-encoded")
    print(f"{'renderer':<28}{'wall s':>9}{'x realtime':>12}")
    rows = [("sapari smart", smart_s), ("sapari exact", exact_s)]
    if ff_s is not None:
        rows.append(("ffmpeg trim+concat veryfast", ff_s))
    for name, s in rows:
        print(f"{name:<28}{s:>9.1f}{dur / s:>12.1f}")
    print(f"{'smart / exact':<28}{'':>9}{exact_s / smart_s:>11.1f}x")
    if ff_s is not None:
        print(f"{'smart / ffmpeg':<28}{'':>9}{ff_s / smart_s:>11.1f}x")
    assert exact.video_frames == smart.video_frames


if __name__ == "__main__":
    main()

"""Silence analysis speed and memory, beside FFmpeg's silencedetect.

    .venv/bin/python bench/analysis_speed.py

Generates (once, cached in bench/.cache/) a 10-minute 720p30 H.264/AAC talk with pauses,
and a 60-minute one made by stream-copying it 6 times with shifted timestamps. Prints our
analysis (analyze_audio + detect_silences) in x realtime beside
``ffmpeg -i f -af silencedetect=n=-40dB:d=0.5 -f null -`` when an ffmpeg binary is on PATH
(the product never needs one), and the peak RSS of analysing the 60-minute file in a fresh
process.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped

from sapari_server.media.audio import analyze_audio  # noqa: E402
from sapari_server.media.silence import detect_silences_in  # noqa: E402
from sapari_testkit.concat import repeat_by_stream_copy  # noqa: E402
from sapari_testkit.generate import generate_talk  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
TEN = CACHE / "talk_10min_720p30.mp4"
SIXTY = CACHE / "talk_60min_720p30.mp4"
MINUTES = 10


def make_ten() -> None:
    rng = np.random.default_rng(10)
    pauses: list[float] = []
    speech: list[float] = []
    total = 0.0
    target = MINUTES * 60.0
    while True:
        s = float(rng.uniform(2.0, 8.0))
        speech.append(s)
        total += s
        if total > target - 3:
            break
        p = float(rng.uniform(0.3, 2.5))
        pauses.append(p)
        total += p
    speech[-1] += target - total
    t = time.perf_counter()
    tmp = TEN.with_suffix(".part.mp4")
    truth = generate_talk(
        tmp, pauses=pauses, speech_lengths=speech, width=1280, height=720, fps=30, crf=32
    )
    tmp.rename(TEN)
    long_pauses = sum(1 for a, b in truth.pauses if b - a >= 0.5)
    print(
        f"generated {TEN.name}: {truth.duration:.0f} s, {long_pauses} pauses >= 0.5 s, "
        f"{TEN.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.0f} s"
    )


def make_sixty(copies: int = 6) -> None:
    """Concatenate TEN ``copies`` times by stream copy: no decode, no re-encode."""
    t = time.perf_counter()
    tmp = SIXTY.with_suffix(".part.mp4")
    repeat_by_stream_copy(TEN, tmp, copies)
    tmp.rename(SIXTY)
    print(
        f"remuxed {SIXTY.name}: {SIXTY.stat().st_size / 1e6:.1f} MB in "
        f"{time.perf_counter() - t:.1f} s"
    )


def ours(path: Path, runs: int = 3) -> tuple[float, float, int]:
    """Best wall time of analyze_audio + detect_silences, media duration, cut count."""
    best = float("inf")
    duration, n = 0.0, 0
    for _ in range(runs):
        t = time.perf_counter()
        analysis = analyze_audio(path)
        cuts = detect_silences_in(analysis)
        best = min(best, time.perf_counter() - t)
        duration, n = analysis.duration, len(cuts)
    return best, duration, n


def ffmpeg_silencedetect(path: Path, audio_only: bool, runs: int = 2) -> tuple[float, int] | None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    cmd = [exe, "-hide_banner", "-nostats", "-i", str(path)]
    if audio_only:
        cmd.append("-vn")
    cmd += ["-af", "silencedetect=n=-40dB:d=0.5", "-f", "null", "-"]
    best = float("inf")
    found = 0
    for _ in range(runs):
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - t)
        found = res.stderr.count("silence_end")
    return best, found


_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {server!r})
from sapari_server.media.audio import analyze_audio
from sapari_server.media.silence import detect_silences_in
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
a = analyze_audio({path!r}, wav_out={wav!r})
cuts = detect_silences_in(a)
dt = time.perf_counter() - t
hwm = 0
try:  # Linux: the kernel's own high-water mark of this process's memory
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
except OSError:
    pass
print(json.dumps(dict(base_kb=base, peak_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      hwm_kb=hwm, seconds=dt, duration=a.duration, cuts=len(cuts))))
"""


def child_rss(path: Path, wav: Path | None) -> dict[str, float]:
    code = _CHILD.format(
        server=str(ROOT / "server"), path=str(path), wav=None if wav is None else str(wav)
    )
    # Through sh (with a trailing ":" so sh forks instead of exec'ing): Linux carries a
    # process's ru_maxrss across exec, so a child forked straight from this (big) bench
    # process would report our peak instead of its own.
    script = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}; :"
    res = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    if not TEN.exists():
        make_ten()
    if not SIXTY.exists():
        make_sixty()

    rows: list[tuple[str, str, str, str]] = []
    t_ours, dur, n_cuts = ours(TEN)
    x_ours = dur / t_ours
    rows.append(
        (
            "sapari-nb analyze_audio + detect_silences",
            f"{t_ours:.2f}",
            f"{x_ours:.0f}x",
            f"{n_cuts} cuts",
        )
    )
    ff_ratios: list[str] = []
    for audio_only, label in (
        (False, "ffmpeg silencedetect (as usually run)"),
        (True, "ffmpeg -vn silencedetect (audio only)"),
    ):
        ff = ffmpeg_silencedetect(TEN, audio_only)
        if ff is None:
            rows.append((label, "-", "ffmpeg not installed", "-"))
            continue
        t_ff, found = ff
        rows.append((label, f"{t_ff:.2f}", f"{dur / t_ff:.0f}x", f"{found} silences"))
        ff_ratios.append(f"ffmpeg time / our time = {t_ff / t_ours:.2f}  ({label})")

    print()
    print(f"10-minute 720p30 H.264/AAC talk ({TEN.stat().st_size / 1e6:.0f} MB, {dur:.0f} s)")
    print(f"{'tool (best of 3 / 2 runs)':<44} {'wall s':>8} {'realtime':>14}  result")
    print("-" * 84)
    for name, wall, x, res in rows:
        print(f"{name:<44} {wall:>8} {x:>14}  {res}")
    for line in ff_ratios:
        print(line)

    print()
    print("60-minute file (6 x stream copy), fresh process each:")
    print(f"{'run':<44} {'wall s':>8} {'realtime':>14} {'peak RSS MB':>12} {'after import':>13}")
    print("-" * 92)
    wav = CACHE / "speech16k.wav"
    for label, out in (
        ("analyze_audio + detect_silences", None),
        ("  same + 16 kHz WAV for speech-to-text", wav),
    ):
        r = child_rss(SIXTY, out)
        print(
            f"{label:<44} {r['seconds']:>8.2f} {r['duration'] / r['seconds']:>13.0f}x "
            f"{r['peak_kb'] / 1024:>12.0f} {r['base_kb'] / 1024:>13.0f}"
        )
        if r["hwm_kb"] and abs(r["hwm_kb"] - r["peak_kb"]) > 2048:
            print(f"  (kernel VmHWM says {r['hwm_kb'] / 1024:.0f} MB)")
    wav.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

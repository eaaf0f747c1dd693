"""Review artifacts speed and memory: proxy MP4, thumbnail sprite, audio analysis, peak pyramid.

    .venv/bin/python bench/artifacts_speed.py [--variants] [--sixty]

Uses the 10-minute 720p30 talk that bench/analysis_speed.py caches in bench/.cache/ (made
here the same way if missing). Prints each step alone (wall and CPU seconds, x realtime),
then all of them the way process_clip's DAG runs them (audio, proxy and sprite side by side
in threads, the pyramid after audio) in a fresh process, with its peak RSS. Target: all
artifacts in under 60 % of the input's duration (>= 1.67x realtime) on 2 cores.
``--variants`` also times cheaper proxy settings; ``--sixty`` runs the DAG-style pass on the
60-minute file too (about 4 minutes at the rates measured here).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped
sys.path.insert(0, str(ROOT / "bench"))

from analysis_speed import SIXTY, TEN, make_sixty, make_ten  # noqa: E402

from sapari_server.media.audio import analyze_audio  # noqa: E402
from sapari_server.media.peaks import build_peak_pyramid, write_pyramid  # noqa: E402
from sapari_server.media.probe import probe  # noqa: E402
from sapari_server.media.proxy import make_proxy  # noqa: E402
from sapari_server.media.thumbnails import make_thumbnail_sprite  # noqa: E402


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t, time.process_time() - c


def row(name: str, wall: float, cpu: float, duration: float, extra: str = "") -> None:
    print(f"  {name:<28} {wall:7.2f} s wall {cpu:7.2f} s cpu  {duration / wall:6.1f}x realtime"
          f"  {100 * wall / duration:5.1f} % of duration  {extra}")


_CHILD = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
sys.path.insert(0, {server!r})
from sapari_server.media.audio import analyze_audio
from sapari_server.media.peaks import build_peak_pyramid, write_pyramid
from sapari_server.media.probe import probe
from sapari_server.media.proxy import make_proxy
from sapari_server.media.thumbnails import make_thumbnail_sprite
src, work = Path({path!r}), Path({work!r})
t = time.perf_counter()
info = probe(src)
with ThreadPoolExecutor(3) as pool:
    audio = pool.submit(analyze_audio, src, wav_out=work / "a.wav")
    proxy = pool.submit(make_proxy, src, work / "proxy.mp4")
    sprite = pool.submit(make_thumbnail_sprite, src, work / "sprite.jpg")
    a = audio.result()
    write_pyramid(build_peak_pyramid(a.peaks, a.peaks_per_second), work / "peaks.pyr")
    proxy.result(), sprite.result()
dt = time.perf_counter() - t
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1])
print(json.dumps(dict(seconds=dt, duration=info.duration, hwm_kb=hwm)))
"""


def child(path: Path, work: Path) -> dict[str, float]:
    code = _CHILD.format(server=str(ROOT / "server"), path=str(path), work=str(work))
    # Via sh with a trailing ":" so sh forks: a direct exec would inherit our ru_maxrss.
    script = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}; :"
    res = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    variants = "--variants" in sys.argv
    sixty = "--sixty" in sys.argv
    if not TEN.exists():
        make_ten()
    if sixty and not SIXTY.exists():
        make_sixty()
    duration = probe(TEN).duration
    print(f"{TEN.name}: {duration:.0f} s 720p30, {TEN.stat().st_size / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory(prefix="sapari-bench-") as tmp:
        work = Path(tmp)
        print("each step alone:")
        px, w, c = timed(make_proxy, TEN, work / "proxy.mp4")
        total_w, total_c = w, c
        row("proxy 360p ultrafast", w, c, duration,
            f"{px.width}x{px.height} {px.size_bytes / 1e6:.1f} MB "
            f"({px.size_bytes * 8 / duration / 1e3:.0f} kbit/s)")
        sp, w, c = timed(make_thumbnail_sprite, TEN, work / "sprite.jpg")
        total_w, total_c = total_w + w, total_c + c
        row("sprite 100 tiles", w, c, duration, f"{sp.width}x{sp.height} {sp.size_bytes / 1e3:.0f} kB")
        a, w, c = timed(analyze_audio, TEN, wav_out=work / "a.wav")
        total_w, total_c = total_w + w, total_c + c
        row("analyze_audio (+16k wav)", w, c, duration)
        t, cp = time.perf_counter(), time.process_time()
        header = write_pyramid(build_peak_pyramid(a.peaks, a.peaks_per_second), work / "p.pyr")
        w, c = time.perf_counter() - t, time.process_time() - cp
        total_w, total_c = total_w + w, total_c + c
        row("peak pyramid", w, c, duration,
            f"{len(header['levels'])} levels {(work / 'p.pyr').stat().st_size / 1e3:.0f} kB")
        row("sum, one after another", total_w, total_c, duration)

        if variants:
            print("cheaper proxies (frame times stay identical except with fps_max=15):")
            for kw in (dict(height=270), dict(height=240), dict(tune=None),
                       dict(preset="superfast"), dict(fps_max=15.0)):
                v, w, c = timed(make_proxy, TEN, work / "v.mp4", **kw)  # type: ignore[arg-type]
                row(f"proxy {kw}", w, c, duration,
                    f"{v.width}x{v.height} {v.size_bytes / 1e6:.1f} MB")

        print("all artifacts as the DAG runs them (threads), fresh process:")
        for path in (TEN, SIXTY) if sixty else (TEN,):
            r = child(path, work)
            row(f"{path.name}", r["seconds"], float("nan"), r["duration"],
                f"peak RSS {r['hwm_kb'] / 1024:.0f} MB")


if __name__ == "__main__":
    main()

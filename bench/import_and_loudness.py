"""Import from URL and asset-edit speed on this machine (prints its numbers).

* import: a real job server (embedded, SQLite) fetching a long talk from a loopback HTTP
  server (allowed by SAPARI_IMPORT_ALLOW_NETWORKS): seconds from POST to ClipUploaded, MB/s.
* loudness: the streaming BS.1770 meter on 1 and N minutes of 48 kHz stereo (x realtime and
  the peak memory Python allocated while measuring: flat, whatever the length).
* gain pass: video copied, audio re-encoded with the gain (x realtime).

Run: .venv/bin/python bench/import_and_loudness.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import tracemalloc
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sapari_nb import Client  # noqa: E402
from sapari_server.embedded import EmbeddedServer  # noqa: E402
from sapari_server.media.loudness import apply_gain, measure  # noqa: E402
from sapari_server.settings import Settings  # noqa: E402
from sapari_testkit.concat import repeat_by_stream_copy  # noqa: E402
from sapari_testkit.generate import generate_talk  # noqa: E402


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def bench_import(work: Path, src: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.2", 0), partial(_Quiet, directory=str(work)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    srv = EmbeddedServer(Settings(data_dir=work / "server", transcriber="none",
                                  preview_artifacts=False,
                                  import_allow_networks=["127.0.0.2/32"])).start()
    try:
        with Client(srv.url, srv.token, progress=False) as c:
            project = c.create_project("bench")
            after = c.cursor()
            t0 = time.perf_counter()
            out = c.import_url(project.id, f"http://127.0.0.2:{httpd.server_address[1]}/"
                                           f"{src.name}")
            c.wait_for(lambda e: e.type in ("ClipUploaded", "ClipFailed")
                       and e.payload.get("clip_id") == out.clip.id,
                       project_id=project.id, after=after, timeout=600)
            took = time.perf_counter() - t0
        size = src.stat().st_size
        print(f"import {size / 1e6:.0f} MB over loopback: {took:.2f} s to ClipUploaded "
              f"({size / 1e6 / took:.0f} MB/s, fetched, sniffed, probed and stored)")
    finally:
        srv.stop()
        httpd.shutdown()
        httpd.server_close()


def bench_loudness(work: Path, minutes: int) -> None:
    for n in (1, minutes):
        path = work / f"talk{n}.mkv"
        base = work / "one.mkv"
        if not base.exists():
            generate_talk(base, pauses=[0.8, 1.5] * 12, seed=1, channels=2, voice="formant")
        repeat_by_stream_copy(base, path, max(1, round(n * 60 / _dur(base))))
        tracemalloc.start()
        t0 = time.perf_counter()
        m = measure(path)
        took = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"loudness of {m.duration / 60:.1f} min stereo {m.sample_rate} Hz: "
              f"{m.lufs:.2f} LUFS in {took:.2f} s ({m.duration / took:.0f}x realtime), "
              f"peak Python allocation {peak / 1e6:.1f} MB")
        t0 = time.perf_counter()
        apply_gain(path, work / f"gain{n}.mkv", -6.0)
        took = time.perf_counter() - t0
        print(f"gain pass (video copied, AAC re-encoded) on {m.duration / 60:.1f} min: "
              f"{took:.2f} s ({m.duration / took:.0f}x realtime)")


def _dur(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        return float(c.duration or 0) / av.time_base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--import-mb", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sapari-bench-") as tmp:
        work = Path(tmp)
        clip = work / "clip.mp4"
        generate_talk(clip, pauses=[0.8, 1.5] * 10, seed=2, width=640, height=360, crf=18)
        big = work / "big.mp4"
        repeat_by_stream_copy(clip, big, max(1, round(args.import_mb * 1e6
                                                      / clip.stat().st_size)))
        bench_import(work, big)
        bench_loudness(work, args.minutes)


if __name__ == "__main__":
    main()

"""ProjectView on a 60-minute project in headless Chromium, timed by the browser itself.

    .venv/bin/python bench/widget_speed.py [--minutes 60]      (or: make bench-widgets)

Generates (once, cached in bench/.cache/) 60 minutes of audio-only speech-like media (a
10-minute formant-voice talk with pauses, stream-copied six times), uploads and processes it
through a real embedded job server, runs the silence analysis (hundreds of edits), then opens
``sapari_nb.ProjectView`` in a real JupyterLab in Debian's headless Chromium and prints:

- first waveform draw: from the moment the widget's data (the peaks buffer) arrives on the
  kernel websocket to the moment the timeline marks its first waveform draw
  (``data-first-draw-ms`` set on the root); the widget's own figure (from its model read to
  the draw) is printed beside it;
- zoom and scroll frames per second from requestAnimationFrame timing, over a scripted
  zoom in (ctrl+wheel), scroll (wheel) and zoom out, one wheel event per frame;
- the overview peaks payload (bytes trait) size and resolution;
- event-to-widget latency of an edit toggled from code (``client.reject``/``accept`` from
  this process, a separate client): wall clock at the call to the moment a
  MutationObserver in the page sees the edit's ``data-status`` change; p50 and p99 over 20.

Targets from issue 12: first draw < 1 s, >= 30 fps, overview payload < 2 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped

from sapari_nb import Client  # noqa: E402
from sapari_server.embedded import EmbeddedServer  # noqa: E402
from sapari_server.settings import Settings  # noqa: E402
from sapari_testkit.browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    run_cells,
    start_jupyter_lab,
    wait_until,
)
from sapari_testkit.concat import repeat_by_stream_copy  # noqa: E402
from sapari_testkit.generate import generate_talk  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
PIECE_MINUTES = 10

# Installed before any page script: records big binary websocket messages (the widget's
# state with its peaks buffer) and every data-status / first-draw change, with timestamps.
INIT_SCRIPT = """
(() => {
  const rec = window.__bench = { msgs: [], firstDraw: null, watch: null };
  const Native = window.WebSocket;
  class Watched extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (ev) => {
        const d = ev.data;
        const size = d instanceof ArrayBuffer ? d.byteLength : d instanceof Blob ? d.size
          : (typeof d === "string" ? d.length : 0);
        if (size > 100000) rec.msgs.push({ size, at: performance.now() });
      });
    }
  }
  window.WebSocket = Watched;
  // The edit being watched (set by the benchmark before it changes the edit from code):
  // the first moment any element of it (block or row, changed or re-rendered) shows the
  // new status.
  new MutationObserver((records) => {
    const at = performance.now(), wall = Date.now();
    if (rec.firstDraw === null) {
      for (const r of records) {
        if (r.attributeName === "data-first-draw-ms") {
          rec.firstDraw = { at, own: parseFloat(r.target.getAttribute("data-first-draw-ms")) };
        }
      }
    }
    const w = rec.watch;
    if (w && w.seen === null && document.querySelector(
        `[data-edit-id="${w.id}"][data-status="${w.status}"]`)) {
      w.seen = wall;
    }
  }).observe(document, { subtree: true, childList: true, attributes: true,
                         attributeFilter: ["data-first-draw-ms", "data-status"] });
})();
"""

# One synthetic wheel event per animation frame on the waveform; frame intervals recorded.
ZOOM_SCROLL = """async (canvas, plan) => {
  const r = canvas.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const wheel = (dy, ctrl) => canvas.dispatchEvent(new WheelEvent("wheel", {
    deltaY: dy, deltaMode: 0, ctrlKey: ctrl, clientX: x, clientY: y,
    bubbles: true, cancelable: true }));
  return await new Promise((resolve) => {
    const gaps = [];
    let i = 0, last = 0, t0 = 0;
    const step = (now) => {
      if (i > 0) gaps.push(now - last);
      else t0 = now;
      last = now;
      if (i < plan.length) {
        wheel(plan[i][0], plan[i][1]);
        i++;
        requestAnimationFrame(step);
      } else {
        resolve({ gaps, total: now - t0 });
      }
    };
    requestAnimationFrame(() => requestAnimationFrame(step));
  });
}"""


# 60 frames zooming in (x0.94 each: an hour down to ~1.5 min), 120 frames scrolling (40 px
# each), 60 frames zooming back out: [deltaY, ctrlKey] per frame.
PHASES = {"zoom in": [[-6, True]] * 60, "scroll": [[40, False]] * 120,
          "zoom out": [[6, True]] * 60}
# What the waveform canvas shows (hashed): each phase must change it, or nothing was measured.
CANVAS_HASH = """(c) => { const s = c.toDataURL(); let h = 0;
  for (let i = 0; i < s.length; i += 7) h = (h * 31 + s.charCodeAt(i)) | 0; return h; }"""


def make_piece(path: Path) -> None:
    rng = np.random.default_rng(60)
    pauses: list[float] = []
    speech: list[float] = []
    total, target = 0.0, PIECE_MINUTES * 60.0
    while total < target - 8:
        s = float(rng.uniform(2.0, 8.0))
        speech.append(s)
        total += s
        p = float(rng.uniform(0.3, 2.5))
        pauses.append(p)
        total += p
    speech.append(max(1.0, target - total))
    generate_talk(path, pauses=pauses, speech_lengths=speech, video=False, sample_rate=16000,
                  voice="formant", audio_bitrate=32000)


def make_media(minutes: int) -> Path:
    """Audio-only AAC/MP4 of ``minutes``: one 10-minute piece stream-copied (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"speech_{minutes}min_audio.mp4"
    if out.exists():
        return out
    piece = CACHE / f"speech_{PIECE_MINUTES}min_audio.mp4"
    t = time.perf_counter()
    if not piece.exists():
        tmp = piece.with_suffix(".part.mp4")
        make_piece(tmp)
        tmp.rename(piece)
    copies = max(1, round(minutes / PIECE_MINUTES))
    tmp = out.with_suffix(".part.mp4")
    repeat_by_stream_copy(piece, tmp, copies)
    tmp.rename(out)
    print(f"generated {out.name} ({out.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - t:.0f} s")
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--toggles", type=int, default=20)
    ap.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    media = make_media(args.minutes)
    work = Path(tempfile.mkdtemp(prefix="sapari-widget-bench-"))
    server = EmbeddedServer(Settings(data_dir=work / "server", transcriber="none")).start()
    lab = None
    results: dict[str, object] = {}
    try:
        client = Client(server.url, server.token, progress=False)
        proj = client.create_project(f"widget bench {args.minutes} min")
        t = time.perf_counter()
        after = client.cursor()
        clip = client.wait_clip(client.upload(proj.id, media), after=after)
        t_proc = time.perf_counter() - t
        t = time.perf_counter()
        after = client.cursor()
        client.wait_analysis(client.analyze(proj.id), after=after)
        edits = client.edits(proj.id)
        print(f"{clip.duration / 60:.1f} min uploaded and processed in {t_proc:.1f} s; "
              f"analysed in {time.perf_counter() - t:.1f} s: {len(edits)} edits")

        # The payload the widget gets, measured on the kernel side too.
        from sapari_nb.widgets.state import ProjectState

        st = ProjectState(client, proj.id, lambda _c: None)
        vals = st.values()
        st.close()
        peaks, meta = vals["peaks"], vals["peaks_meta"]
        results["peaks_bytes"] = len(peaks)
        results["peaks_per_second"] = meta.get("per_second")

        lab = start_jupyter_lab(work / "jupyter")
        lab.write_notebook("bench.ipynb", [
            "import sapari_nb\n"
            f"client = sapari_nb.Client({server.url!r}, {server.token!r}, progress=False)",
            f"view = sapari_nb.ProjectView(client, {proj.id!r})\nview",
        ])
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.add_init_script(INIT_SCRIPT)
            page.goto(lab.notebook_url("bench.ipynb"))
            run_cells(page, 2, timeout=120)
            rec = wait_until(lambda: page.evaluate(
                "() => window.__bench.firstDraw && window.__bench"), 30,
                "the first waveform draw")
            arrival = max(rec["msgs"], key=lambda m: m["size"]) if rec["msgs"] else None
            if arrival is not None:
                results["first_draw_ms"] = round(rec["firstDraw"]["at"] - arrival["at"], 1)
                results["kernel_message_bytes"] = arrival["size"]
            results["first_draw_own_ms"] = rec["firstDraw"]["own"]

            canvas = page.locator("canvas.sapari-wave").first
            canvas.scroll_into_view_if_needed()
            gaps, total = [], 0.0
            for phase, plan in PHASES.items():
                before = canvas.evaluate(CANVAS_HASH)
                fr = canvas.evaluate(ZOOM_SCROLL, plan)
                if canvas.evaluate(CANVAS_HASH) == before:
                    raise SystemExit(f"the {phase} phase did not change the waveform: "
                                     "the timeline ignored the wheel events")
                gaps += fr["gaps"]
                total += fr["total"]
            results["fps"] = round(len(gaps) / (total / 1000), 1)
            results["frame_ms_p50"] = round(pct(gaps, 50), 1)
            results["frame_ms_p95"] = round(pct(gaps, 95), 1)
            results["frame_ms_max"] = round(max(gaps), 1)
            # Back to the whole hour.
            canvas.evaluate(ZOOM_SCROLL, [[20, True]] * 30)

            # Edits the page shows (timeline blocks in view, review rows): the observer sees
            # their data-status change.
            shown = page.eval_on_selector_all("[data-edit-id][data-status]",
                                              "els => els.map(e => e.dataset.editId)")
            by_id = {e.id: e for e in edits}
            pick = [i for i in dict.fromkeys(shown) if i in by_id][: args.toggles]
            if not pick:
                raise SystemExit(f"no edit on the page to toggle; so far: {results}")
            latencies, calls = [], []
            for n in range(args.toggles):
                eid = pick[n % len(pick)]
                status = "rejected" if n // len(pick) % 2 == 0 else "accepted"
                page.evaluate("([id, status]) => { window.__bench.watch = {id, status, "
                              "seen: null}; }", [eid, status])
                t0 = time.time() * 1000
                (client.reject if status == "rejected" else client.accept)(eid)
                calls.append(time.time() * 1000 - t0)
                seen = wait_until(lambda: page.evaluate("() => window.__bench.watch.seen"), 10,
                                  f"edit {eid} showing {status} in the page", interval=0.005)
                latencies.append(seen - t0)
                time.sleep(0.1)
            results["toggle_ms_p50"] = round(statistics.median(latencies), 1)
            results["toggle_ms_p99"] = round(pct(latencies, 99), 1)
            results["toggle_call_ms_p50"] = round(statistics.median(calls), 1)
            results["toggles"] = len(latencies)
            browser.close()
        client.close()
    finally:
        if lab is not None:
            lab.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    mb = results["peaks_bytes"] / 1e6  # type: ignore[operator]
    print(f"\nProjectView, {args.minutes}-minute project, JupyterLab + headless Chromium")
    print(f"  first waveform draw after the data arrives: {results.get('first_draw_ms')} ms "
          f"(widget's own model-to-draw: {results['first_draw_own_ms']} ms)   target < 1000")
    print(f"  zoom + scroll: {results['fps']} fps (frame p50 {results['frame_ms_p50']} ms, "
          f"p95 {results['frame_ms_p95']} ms, max {results['frame_ms_max']} ms)   target >= 30")
    print(f"  overview peaks payload: {mb:.2f} MB at {results['peaks_per_second']}/s "
          f"(kernel message {results.get('kernel_message_bytes')} B)   target < 2 MB")
    print(f"  edit toggled from code -> widget: p50 {results['toggle_ms_p50']} ms, "
          f"p99 {results['toggle_ms_p99']} ms over {results['toggles']} "
          f"(the HTTP call itself p50 {results['toggle_call_ms_p50']} ms)")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

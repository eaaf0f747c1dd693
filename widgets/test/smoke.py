"""Smoke test of the widget bundle without Python widgets: a fake model in a plain page.

Run from the repository root after `npm run build` in widgets/:

    .venv/bin/python widgets/test/smoke.py [--minutes 60] [--headed]

It serves the repository over HTTP (plus a fake job server under /fake-server: /health and
signed-URL PUTs), renders every view in headless Debian Chromium, checks the DOM hooks of the
widget contract, clicks/drag/zooms, and prints the first-draw time and the frame rate of a
scripted zoom/scroll at 60 minutes. The measuring helpers (`first_draw`, `zoom_scroll_fps`) are
meant to be reused by the benchmark in bench/.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import http.server
import json
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"

PUTS: list[dict[str, Any]] = []
MEDIA = Path(tempfile.mkdtemp(prefix="sapari-smoke-"))  # served under /media/
atexit.register(shutil.rmtree, MEDIA, True)  # it and the upload files below: nothing stays


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files from the repository, plus a fake job server under /fake-server."""

    def log_message(self, format: str, *args: Any) -> None:  # keep the output readable
        pass

    def end_headers(self) -> None:
        if self.path.startswith("/fake-server"):
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, PUT, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "*")
        super().end_headers()

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:
        if self.path.startswith("/media/"):
            self.send_media(MEDIA / Path(self.path.split("?")[0]).name)
            return
        if self.path.startswith("/fake-server/health"):
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def send_media(self, path: Path) -> None:
        """Files with Range support: the video element seeks with ranged GETs."""
        data = path.read_bytes()
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a or 0)
            end = min(int(b) if b else end, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        try:
            self.wfile.write(data[start:end + 1])
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        PUTS.append({"path": self.path, "size": len(data),
                     "type": self.headers.get("Content-Type")})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(Handler, directory=str(REPO))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # a free port
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


# ------------------------------------------------------------------ measuring (reusable)

def first_draw(page: Page) -> dict[str, float]:
    """ms from the peaks trait landing to the end of the first waveform draw."""
    return page.evaluate("window.sapari.firstDraw")


ZOOM_SCROLL_JS = """
async ({frames, selector}) => {
  const root = document.querySelector(selector);
  const stack = root.querySelector('.sapari-stack');
  const r = stack.getBoundingClientRect();
  const stats = root.sapariStats;
  const d0 = stats.draws, ms0 = stats.totalMs;
  stats.maxMs = 0;
  const times = [];
  const x = r.left + r.width * 0.5, y = r.top + 60;
  await new Promise((done) => {
    let i = 0;
    function step(ts) {
      times.push(ts);
      if (i >= frames) return done();
      const phase = i / frames;
      const init = {clientX: x, clientY: y, bubbles: true, cancelable: true};
      if (phase < 0.25) Object.assign(init, {deltaY: -8, ctrlKey: true});       // pinch in
      else if (phase < 0.5) Object.assign(init, {deltaX: 40});                  // trackpad
      else if (phase < 0.75) Object.assign(init, {deltaY: 8, ctrlKey: true});   // pinch out
      else Object.assign(init, {deltaY: -60});                                  // wheel scroll
      stack.dispatchEvent(new WheelEvent('wheel', init));
      i += 1;
      requestAnimationFrame(step);
    }
    requestAnimationFrame(step);
  });
  const iv = [];
  for (let i = 1; i < times.length; i++) iv.push(times[i] - times[i - 1]);
  const sorted = [...iv].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  const draws = stats.draws - d0;
  return {
    frames: iv.length,
    fps: iv.length / ((times[times.length - 1] - times[0]) / 1000),
    frame_p50_ms: q(0.5), frame_p95_ms: q(0.95), frame_max_ms: sorted[sorted.length - 1],
    draws, draw_avg_ms: draws ? (stats.totalMs - ms0) / draws : 0, draw_max_ms: stats.maxMs,
  };
}
"""


def zoom_scroll_fps(page: Page, frames: int = 240,
                    selector: str = ".sapari-root") -> dict[str, float]:
    """A scripted zoom/scroll, one wheel event per frame, timed by requestAnimationFrame."""
    return page.evaluate(ZOOM_SCROLL_JS, {"frames": frames, "selector": selector})


# ------------------------------------------------------------------ checks

class Failed(AssertionError):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)
    print(f"  ok  {what}")


def open_view(page: Page, base: str, view: str, **query: Any) -> None:
    q = "&".join(f"{k}={v}" for k, v in {"view": view, **query}.items())
    page.goto(f"{base}/widgets/test/harness.html?{q}")
    page.wait_for_function("window.sapariReady === true")
    page.wait_for_selector(f".sapari-root[data-view='{view}']")


def actions(page: Page, type_: str | None = None) -> list[dict[str, Any]]:
    acts = page.evaluate("window.sapari.model.actions")
    return [a for a in acts if type_ is None or a["type"] == type_]


def ink(page: Page) -> int:
    """Non-background pixels on the waveform canvas."""
    return page.evaluate("""() => {
      const c = document.querySelector('canvas.sapari-wave');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i+1] < 200) n++;
      return n;
    }""")


def zoom_in(page: Page, presses: int) -> None:
    page.focus(".sapari-timeline")
    for _ in range(presses):
        page.keyboard.press("+")
    page.wait_for_timeout(50)


def stack_point(page: Page, x_frac: float, y: float) -> tuple[float, float]:
    box = page.locator(".sapari-stack").bounding_box()
    assert box
    return box["x"] + box["width"] * x_frac, box["y"] + y


def run(base: str, minutes: float, headed: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=not headed,
                                     args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        print("timeline")
        open_view(page, base, "timeline", minutes=minutes)
        fd = first_draw(page)
        results["first_draw_ms"] = fd["ms"]
        results["first_draw_since_arrival_ms"] = fd["sinceArrival"]
        check(ink(page) > 2000, f"waveform drawn ({ink(page)} inked pixels)")
        check(page.locator(".sapari-edit").count() == 0,
              "fit view of 60 min: edits lane drawn on canvas, no DOM blocks (too many)")
        results["fps"] = zoom_scroll_fps(page)
        check(results["fps"]["fps"] >= 30, f"zoom/scroll at {results['fps']['fps']:.1f} fps")
        page.click("button[data-action='zoom-fit']")
        zoom_in(page, 12)
        blocks = page.locator(".sapari-edit[data-status='proposed']")
        check(blocks.count() > 0, f"edit blocks in view after zooming ({blocks.count()})")
        first = blocks.first
        eid = first.get_attribute("data-edit-id")
        first.click()
        sent = actions(page, "set_status")
        check(bool(sent) and sent[-1]["ids"] == [eid] and sent[-1]["status"] == "accepted",
              f"click on proposed {eid} sends set_status accepted: {sent[-1] if sent else None}")
        check(page.get_attribute(f".sapari-edit[data-edit-id='{eid}']", "data-status")
              == "accepted", "block shows accepted at once")
        page.click(f".sapari-edit[data-edit-id='{eid}']")
        check(actions(page, "set_status")[-1]["status"] == "rejected",
              "second click toggles to rejected")
        # drag-select on the waveform -> add_cut
        x0, y0 = stack_point(page, 0.30, 60)
        x1, _ = stack_point(page, 0.36, 60)
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, y0, steps=3)
        page.mouse.move(x1, y0, steps=3)
        page.mouse.up()
        cut = actions(page, "add_cut")
        check(bool(cut) and cut[-1]["t1"] > cut[-1]["t0"], f"drag-select sends {cut[-1:]}")
        # word range by drag in the transcript lane -> Cut words
        wx0, wy = stack_point(page, 0.50, 22 + 112 + 13)
        wx1, _ = stack_point(page, 0.60, 22 + 112 + 13)
        page.mouse.move(wx0, wy)
        page.mouse.down()
        page.mouse.move(wx1, wy, steps=4)
        page.mouse.up()
        page.click("button[data-action='cut-words']")
        cw = actions(page, "cut_words")
        check(bool(cw) and cw[-1]["to"] > cw[-1]["from"], f"word selection sends {cw[-1:]}")
        # drag an edge -> set_bounds
        blk = page.locator(".sapari-edit").nth(1)
        bb = blk.bounding_box()
        assert bb
        page.mouse.move(bb["x"] + bb["width"] - 2, bb["y"] + bb["height"] / 2)
        page.mouse.down()
        page.mouse.move(bb["x"] + bb["width"] + 30, bb["y"] + bb["height"] / 2, steps=4)
        page.mouse.up()
        sb = actions(page, "set_bounds")
        check(bool(sb) and sb[-1]["id"] == blk.get_attribute("data-edit-id"),
              f"edge drag sends {sb[-1:]}")
        # ruler click seeks
        rx, ry = stack_point(page, 0.25, 8)
        page.mouse.click(rx, ry)
        ph = float(page.get_attribute(".sapari-root", "data-playhead") or 0)
        check(ph > 0 and abs(page.evaluate("window.sapari.model.get('playhead')") - ph) < 1e-3,
              f"ruler click seeks (playhead {ph:.2f})")
        # play the cut (no proxy here: the silent clock): the playhead skips accepted edits
        samples = page.evaluate("""async () => {
          const root = document.querySelector('.sapari-root');
          document.querySelector("button[data-action='play-cut']").click();
          const out = [];
          const t0 = performance.now();
          while (performance.now() - t0 < 2500) {
            await new Promise(r => requestAnimationFrame(r));
            out.push(Number(root.dataset.playhead));
          }
          document.querySelector("button[data-action='play-cut']").click();
          return out;
        }""")
        acc = [(e["t0"], e["t1"]) for e in page.evaluate("window.sapari.model.get('edits')")
               if e["status"] == "accepted"]
        inside = [t for t in samples if any(a + 0.02 < t < b - 0.02 for a, b in acc)]
        jumps = sum(1 for a, b in zip(samples, samples[1:], strict=False) if b - a > 0.1)
        check(samples[-1] > samples[0] and not inside,
              f"play the cut: {len(samples)} samples, {jumps} jumps, none inside accepted edits")
        # cleanup removes every listener
        left = page.evaluate("() => { window.sapari.cleanup(); "
                             "return window.sapari.model.listenerCount(); }")
        check(left == 0, "cleanup removed every model listener")

        print("project (anywidget send)")
        open_view(page, base, "project", minutes=minutes)
        first_draw(page)
        check(ink(page) > 2000, "ProjectView draws the waveform without a click")
        for hook in ["canvas.sapari-wave", "video.sapari-video", "input.sapari-file",
                     "button[data-action='analyze']", "button[data-action='export']",
                     "button[data-action='play-cut']", "button[data-action='accept-all']",
                     "button[data-action='reject-all']", ".sapari-route", ".sapari-status",
                     "tr.sapari-row[data-edit-id][data-status]"]:
            check(page.locator(hook).count() > 0, f"hook {hook}")
        zoom_in(page, 12)
        blk = page.locator(".sapari-edit[data-status='accepted']").first
        eid = blk.get_attribute("data-edit-id")
        blk.click()
        page.wait_for_function(
            f"document.querySelector(\"tr.sapari-row[data-edit-id='{eid}']\")"
            ".dataset.status === 'rejected'", timeout=1000)
        check(True, f"timeline click on accepted {eid} -> table row rejected within 1 s")
        row = page.locator("tr.sapari-row").nth(500)
        rid = row.get_attribute("data-edit-id")
        row.locator("td").first.click()
        seek = actions(page, "seek")
        t_row = next(e["t0"] for e in page.evaluate("window.sapari.model.get('edits')")
                     if e["id"] == rid)
        check(bool(seek) and abs(seek[-1]["t"] - t_row) < 1e-6
              and abs(float(page.get_attribute(".sapari-root", "data-playhead") or -1)
                      - t_row) < 1e-3, f"row click seeks to {t_row}")
        page.select_option(".sapari-filter-kind", "filler")
        page.click("button[data-action='reject-all']")
        sa = actions(page, "set_all")
        check(sa[-1] == {**sa[-1], "status": "rejected", "kind": "filler"},
              f"reject all of a kind sends {sa[-1]}")
        page.evaluate("window.sapari.model.set('server', {url: 'x', proxy_port: null, "
                      "status: 'reconnecting', message: 'the job server at x cannot be "
                      "reached; retrying'})")
        check(page.locator(".sapari-status").is_visible()
              and "retrying" in page.inner_text(".sapari-status"), "status banner shows")

        print("review / export / upload")
        open_view(page, base, "review", minutes=minutes)
        check(page.locator("tr.sapari-row").count() == 2000, "review lists 2000 rows")
        page.locator("tr.sapari-row").first.locator("button[data-do='rejected']").click()
        check(actions(page, "set_status")[-1]["status"] == "rejected", "row reject button")

        open_view(page, base, "export", minutes=1)
        page.select_option(".sapari-set-container", "mkv")
        page.locator("input[value='edl']").check()
        page.click("button[data-action='export']")
        ex = actions(page, "export")
        check(ex[-1]["settings"]["container"] == "mkv"
              and ex[-1]["settings"]["timelines"] == ["edl"], f"export sends {ex[-1]}")
        page.wait_for_selector("a.sapari-download", timeout=2000)
        check(page.locator("a.sapari-timeline-file").count() == 1, "download + timeline link")

        tmp = MEDIA / "uploads"
        tmp.mkdir(exist_ok=True)
        small = tmp / "talk.mp4"
        small.write_bytes(b"\0" * 300_000)
        big = tmp / "big.mp4"
        big.write_bytes(b"\1" * 2_500_000)

        open_view(page, base, "upload", minutes=1)
        page.set_input_files("input.sapari-file", [str(small)])
        page.wait_for_selector(".sapari-upload-row[data-status='processing']", timeout=5000)
        check(page.inner_text(".sapari-route") == "route: direct", "route badge: direct")
        check(any(p["size"] == 300_000 for p in PUTS), f"direct PUT arrived ({PUTS[-1]})")
        types = [a["type"] for a in actions(page)]
        check(types[0] == "upload_request" and types[-1] == "upload_done",
              f"upload actions {types}")

        open_view(page, base, "upload", minutes=1, server="http://127.0.0.1:9/nowhere")
        page.set_input_files("input.sapari-file", [str(big)])
        page.wait_for_selector(".sapari-upload-row[data-status='processing']", timeout=15000)
        chunks = actions(page, "relay_chunk")
        check(page.inner_text(".sapari-route") == "route: relay"
              and [c["_buffers"][0] for c in chunks] == [1048576, 1048576, 402848]
              and chunks[-1]["last"], f"relay in 1 MiB chunks: {[c['offset'] for c in chunks]}")

        print("panel (no model.send: _outbox)")
        open_view(page, base, "timeline", minutes=minutes, nosend=1)
        zoom_in(page, 12)
        page.locator(".sapari-edit").first.click()
        page.locator(".sapari-edit").nth(1).click()
        via = actions(page, "set_status")
        check(len(via) == 2 and all(a.get("_via") == "outbox" for a in via)
              and via[1]["seq"] > via[0]["seq"], f"actions via _outbox: {via}")
        page.wait_for_timeout(50)
        check(page.evaluate("window.sapari.model.get('_acked')") == via[1]["seq"], "acked")

        print("video preview (a generated talk as the proxy of both clips)")
        from sapari_testkit.generate import generate_talk

        generate_talk(MEDIA / "talk.mp4", pauses=[1.0, 1.5, 1.0, 2.0], speech_lengths=None,
                      faststart=True, width=320, height=240)
        open_view(page, base, "timeline", minutes=0.33, edits=8, video="/media/talk.mp4")
        page.wait_for_function("document.querySelector('video.sapari-video').readyState >= 1"
                               " || document.querySelector('video.sapari-video').src === ''",
                               timeout=5000)
        play = page.evaluate("""async () => {
          const root = document.querySelector('.sapari-root');
          const video = document.querySelector('video.sapari-video');
          document.querySelector("button[data-action='play-cut']").click();
          const out = [];
          const t0 = performance.now();
          while (performance.now() - t0 < 9500) {  // crosses the clip join at 8.3 s
            await new Promise(r => requestAnimationFrame(r));
            out.push(Number(root.dataset.playhead));
          }
          const state = {fades: video.dataset.fades, paused: video.paused, src: video.currentSrc,
                         error: video.error && video.error.message};
          document.querySelector("button[data-action='play-cut']").click();
          return {out, state};
        }""")
        samples = play["out"]
        acc = [(e["t0"], e["t1"]) for e in page.evaluate("window.sapari.model.get('edits')")
               if e["status"] == "accepted" and e["t0"] < samples[-1]]
        inside = [t for t in samples if any(a + 0.05 < t < b - 0.05 for a, b in acc)]
        check(not play["state"]["error"] and samples[-1] > 8.6,
              f"video plays the cut: {samples[0]:.2f} -> {samples[-1]:.2f} s, {play['state']}")
        check(not inside, f"playhead skipped {len(acc)} accepted edits (inside: {inside[:5]})")
        results["video_fades"] = play["state"]["fades"]
        page.locator(".sapari-edit").nth(2).click()
        ba = page.locator("button[data-action='before-after']")
        ba.click()
        page.wait_for_function("document.querySelector('.sapari-phase').textContent === 'after'",
                               timeout=10000)
        check(True, "before/after plays the edit's surroundings, then the cut")
        ba.click()

        open_view(page, base, "project", minutes=0, edits=0)
        page.wait_for_timeout(200)
        check(not errors, "an empty project renders without errors")

        results["page_errors"] = errors
        check(not errors, f"no page errors {errors}")
        browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--headed", action="store_true")
    args = parser.parse_args()
    bundle = REPO / "sapari_nb" / "static" / "sapari.js"
    if not bundle.exists():
        print("no bundle: run `npm run build` in widgets/ first", file=sys.stderr)
        return 2
    httpd, base = serve()
    try:
        res = run(base, args.minutes, args.headed)
    except Failed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        httpd.shutdown()
    print(f"bundle: {bundle.stat().st_size / 1000:.1f} kB minified")
    print(f"first draw at {args.minutes:g} min: {res['first_draw_ms']:.1f} ms "
          f"(peaks landing -> drawn: {res['first_draw_since_arrival_ms']:.1f} ms)")
    f = res["fps"]
    print(f"zoom/scroll: {f['fps']:.1f} fps over {f['frames']} frames (frame p50 "
          f"{f['frame_p50_ms']:.1f} ms, p95 {f['frame_p95_ms']:.1f} ms); draw avg "
          f"{f['draw_avg_ms']:.2f} ms, max {f['draw_max_ms']:.2f} ms")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

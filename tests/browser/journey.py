"""The user's journey through ProjectView, the same in JupyterLab and in the Panel app.

Only the DOM hooks of the widget contract are used (``.sapari-root``, ``input.sapari-file``,
``canvas.sapari-wave``, ``.sapari-edit``, ``tr.sapari-row``, ``button[data-action]``,
``a.sapari-download``, ``[data-playhead]``); Playwright's CSS locators also reach into
Panel's shadow roots. The server is asked for the truth (edit times, statuses) directly.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx

from sapari_nb import Client
from sapari_testkit.browser import CANVAS_INK, wait_until


@dataclass
class JourneyTimes:
    marks: dict[str, float] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self.t0, 2)


def run_journey(page: Any, client: Client, project_id: str, sample: Path,
                shots: Callable[[Any, str], None]) -> JourneyTimes:
    times = JourneyTimes()
    root = page.locator(".sapari-root").first
    root.wait_for(timeout=30_000)
    shots(page, "opened")

    # 1. Choosing the file starts its upload: no other click.
    page.locator("input.sapari-file").first.set_input_files(str(sample))
    clip = wait_until(lambda: [c for c in client.clips(project_id) if c.status == "ready"],
                      90, "the uploaded clip becoming ready on the server")[0]
    times.mark("clip ready")
    route = page.locator(".sapari-route").first.text_content(timeout=5_000) or ""
    assert route.strip(), "the upload route badge is empty after an upload"

    # 2. The waveform is drawn by itself once the clip is ready (pixels, not an element).
    wave = page.locator("canvas.sapari-wave").first
    wait_until(lambda: wave.evaluate(CANVAS_INK) > 100, 15, "the waveform drawn on its canvas")
    times.mark("waveform drawn")
    shots(page, "waveform")

    # 3. Analysis from the widget; the proposed edits show on the timeline.
    page.locator('button[data-action="analyze"]').first.click()
    wait_until(lambda: page.locator(".sapari-edit").count() > 0, 90, "edits on the timeline")
    wait_until(lambda: page.locator("tr.sapari-row").count() > 0, 5, "rows in the review table")
    times.mark("edits shown")
    page.locator('button[data-action="accept-all"]').first.click()
    wait_until(lambda: client.edits(project_id) and all(
        e.status == "accepted" for e in client.edits(project_id)), 10, "accept-all on the server")
    wait_until(lambda: page.locator('.sapari-edit[data-status="accepted"]').count()
               == page.locator(".sapari-edit").count(), 5, "every edit block accepted")
    shots(page, "accepted")

    # 4. Clicking an accepted edit on the timeline rejects it; the table follows (< 1 s).
    # The one rejected is followed closely by another edit, so that a few seconds of the
    # cut from its start both play through it (now kept) and jump over the next (cut).
    edits = sorted(client.edits(project_id), key=lambda e: e.start)
    close = [e for e, nxt in zip(edits, edits[1:], strict=False) if nxt.start - e.end < 1.8]
    target = max(close or edits, key=lambda e: e.end - e.start)  # widest: easy to hit
    block = page.locator(f'.sapari-edit[data-edit-id="{target.id}"]').first
    block.scroll_into_view_if_needed()
    clicked = time.monotonic()
    block.click()
    row = page.locator(f'tr.sapari-row[data-edit-id="{target.id}"]').first
    wait_until(lambda: row.get_attribute("data-status") == "rejected", 3,
               "the review row following the timeline click", interval=0.02)
    times.marks["row followed click (s)"] = round(time.monotonic() - clicked, 3)
    # The view shows the click at once; the kernel's PATCH lands a moment later.
    wait_until(lambda: {e.id: e.status for e in client.edits(project_id)}[target.id]
               == "rejected", 5, "the rejection reaching the server")
    wait_until(lambda: block.get_attribute("data-status") == "rejected", 2, "the block rejected")
    shots(page, "rejected")

    # 5. Play the cut from the rejected edit (a row click seeks there): the playhead runs
    # through the rejected edit and never sits inside an accepted one.
    accepted = [(e.start, e.end) for e in client.edits(project_id)  # one clip: offset 0
                if e.status == "accepted"]
    row.locator("td").first.click()
    wait_until(lambda: abs(float(root.get_attribute("data-playhead") or -1) - target.start)
               < 0.05, 3, "the row click seeking the timeline to the edit")
    page.locator('button[data-action="play-cut"]').first.click()
    samples: list[float] = []
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        value = root.get_attribute("data-playhead")
        if value not in (None, ""):
            samples.append(float(value))
        time.sleep(0.02)
    page.locator('button[data-action="play-cut"]').first.click()  # stop
    shots(page, "played")
    assert samples and max(samples) - min(samples) > 1.0, \
        f"the playhead did not move while playing the cut: {samples[:5]}...{samples[-5:]}"
    # A jump lands at the first frame past an edit's start: allow a little slack.
    inside = [p for p in samples for t0, t1 in accepted if t0 + 0.1 < p < t1 - 0.02]
    assert not inside, f"the playhead sat inside accepted edits {accepted} at {inside}"
    assert any(target.start + 0.1 < p < target.end - 0.1 for p in samples), \
        f"the rejected edit {target.start:.2f}-{target.end:.2f} was not played: {samples}"
    jumped = [(t0, t1) for t0, t1 in accepted
              if any(p <= t0 + 0.1 for p in samples) and any(p >= t1 for p in samples)]
    if close:
        assert jumped, f"no accepted edit was jumped over in {samples} (accepted {accepted})"
    times.mark("played the cut")

    # 6. Export; the download link gives a valid video of the cut's length.
    page.locator('button[data-action="export"]').first.click()
    link = page.locator("a.sapari-download").first
    href = wait_until(lambda: link.get_attribute("href"), 120, "the download link")
    times.mark("exported")
    shots(page, "exported")
    url = href if href.startswith("http") else page.evaluate("(h) => new URL(h, location).href",
                                                             href)
    body = httpx.get(url, timeout=60).raise_for_status().content
    with av.open(io.BytesIO(body)) as media:
        kinds = {s.type for s in media.streams}
        duration = media.duration / 1e6 if media.duration else 0.0
    assert {"video", "audio"} <= kinds, f"the download is not a video with sound: {kinds}"
    expected = clip.duration - sum(t1 - t0 for t0, t1 in accepted)
    assert abs(duration - expected) < 0.3, \
        f"the cut lasts {duration:.2f} s; expected {expected:.2f} s"
    return times

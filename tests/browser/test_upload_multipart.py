"""The Upload widget sends a big file in parts, straight from the browser, in a real JupyterLab.

The job server here has a 1 MiB multipart threshold and 512 KiB parts, so a ~5.6 MB recording
goes as 11 parts: File.slice()s PUT to their own signed URLs (several at once), confirmed with
their ETags. Playwright's route interception drops part PUTs: once (the part is tried again
and the upload completes), and for good (the row fails with a readable error and a retry
button; the retry sends only the parts the server does not hold).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from sapari_nb import Client
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.browser import JupyterLab, run_cells, wait_until
from tests.conftest import stored_bytes
from tests.widgets.test_uploads import MP_PART, MP_THRESHOLD

from .conftest import Shots, need_bundle

pytestmark = pytest.mark.browser


def part_of(url: str) -> int | None:
    q = parse_qs(urlparse(url).query)
    return int(q["part_number"][0]) if "part_number" in q else None


def drop_puts(part: int, times: int | None = None) -> tuple[Callable[[Any], None], list[int]]:
    """A storage route handler that resets the connection under PUTs of ``part`` (the first
    ``times`` of them; every one when None), and the list of the PUTs it dropped."""
    dropped: list[int] = []

    def handle(route: Any) -> None:
        if (route.request.method == "PUT" and part_of(route.request.url) == part
                and (times is None or len(dropped) < times)):
            dropped.append(part)
            route.abort("connectionreset")
        else:
            route.continue_()

    return handle, dropped


class Puts:
    """Every PUT the page sends to storage: part numbers (None: a whole-file PUT)."""

    def __init__(self, page: Any) -> None:
        self.seen: list[int | None] = []
        page.on("request", self._on)

    def _on(self, request: Any) -> None:
        if request.method == "PUT" and "/storage/" in request.url:
            self.seen.append(part_of(request.url))


def open_upload(lab: JupyterLab, srv: EmbeddedServer, page: Any, shots: Shots,
                name: str, views: int = 1) -> tuple[Client, str]:
    """A notebook showing an Upload widget of a fresh project (``views`` views of it)."""
    client = Client(srv.url, srv.token, progress=False)
    proj = client.create_project(name)
    lab.write_notebook(f"{name}.ipynb", [
        "import sapari_nb\n"
        f"client = sapari_nb.Client({srv.url!r}, {srv.token!r}, progress=False)\n"
        f"w = sapari_nb.Upload(client, {proj.id!r})",
        *["w"] * views,
    ])
    need_bundle()
    page.goto(lab.notebook_url(f"{name}.ipynb"))
    run_cells(page, 1 + views)
    page.locator(".sapari-root").first.wait_for(timeout=30_000)
    badge = page.locator(".sapari-route").first
    wait_until(lambda: (badge.text_content() or "").strip() == "route: direct", 20,
               "the route badge saying 'route: direct'")
    shots(page, "opened")
    return client, proj.id


def ready_clip(client: Client, project_id: str, page: Any, timeout: float = 90) -> Any:
    def check() -> Any:
        # Waiting through the page: Playwright's sync API runs route handlers and request
        # listeners only while it is called.
        page.wait_for_timeout(100)
        return next((c for c in client.clips(project_id) if c.status in ("ready", "failed")),
                    None)

    try:
        return wait_until(check, timeout,
                          "the uploaded clip becoming ready (or failing) on the server")
    except AssertionError as e:
        rows = page.locator(".sapari-upload-row").all_text_contents()
        raise AssertionError(f"{e}; the widget's rows: {rows}") from None


def test_big_file_goes_in_parts_and_survives_a_dropped_part(
        jupyter_lab: JupyterLab, mp_server: EmbeddedServer, big_file: Path, page: Any,
        shots: Shots) -> None:
    data = big_file.read_bytes()
    count = -(-len(data) // MP_PART)
    assert len(data) >= MP_THRESHOLD and count >= 8
    client, pid = open_upload(jupyter_lab, mp_server, page, shots, "multipart-drop-once")
    puts = Puts(page)
    # A dropped connection under the first PUT of part 3; its retry goes through.
    drop_part_3_once, dropped = drop_puts(3, times=1)
    page.route("**/storage/**", drop_part_3_once)
    try:
        t0 = time.monotonic()
        page.locator("input.sapari-file").first.set_input_files(str(big_file))
        clip = ready_clip(client, pid, page)
        took = time.monotonic() - t0
        shots(page, "uploaded")
        assert clip.status == "ready", clip.error
        assert stored_bytes(mp_server, clip.id) == data
        assert dropped == [3]
        # Every part went on its own (part 3 twice); never one PUT of the whole file.
        assert None not in puts.seen, puts.seen
        assert sorted(puts.seen) == sorted([*range(1, count + 1), 3]), puts.seen
        row = page.locator(".sapari-upload-row").first
        wait_until(lambda: row.get_attribute("data-status") == "ready", 15,
                   "the upload row saying ready")
        state = row.locator(".sapari-upload-state").text_content() or ""
        assert state.endswith("via direct"), state
        assert not row.locator(".sapari-retry").is_visible()
        print(f"{len(data)} bytes in {count} parts, one dropped and retried: ready in "
              f"{took:.1f} s")
    finally:
        client.close()


def test_part_failing_for_good_then_retry_sends_only_the_missing(
        jupyter_lab: JupyterLab, mp_server: EmbeddedServer, big_file: Path, page: Any,
        shots: Shots) -> None:
    data = big_file.read_bytes()
    count = -(-len(data) // MP_PART)
    client, pid = open_upload(jupyter_lab, mp_server, page, shots, "multipart-resume")
    puts = Puts(page)
    part_2_always_drops, refused = drop_puts(2)
    page.route("**/storage/**", part_2_always_drops)
    try:
        page.locator("input.sapari-file").first.set_input_files(str(big_file))
        row = page.locator(".sapari-upload-row").first
        wait_until(lambda: row.get_attribute("data-status") == "failed", 60,
                   "the upload row failing after part 2's tries")
        shots(page, "failed")
        error = row.locator(".sapari-error").text_content() or ""
        assert error.startswith(f"part 2 of {count} failed after 4 tries: the browser could "
                                "not reach the upload URL"), error
        assert "retry sends only the rest" in error, error
        assert len(refused) == 4
        [clip] = client.clips(pid)
        assert clip.status == "pending_upload"
        held = {p.part_number for p in client.upload_parts(clip.id).uploaded}
        assert 2 not in held and 0 < len(held) < count
        retry = row.locator(".sapari-retry")
        assert retry.is_visible()

        page.unroute("**/storage/**")
        before = len(puts.seen)
        retry.click()
        clip = ready_clip(client, pid, page)
        shots(page, "resumed")
        assert clip.status == "ready", clip.error
        assert stored_bytes(mp_server, clip.id) == data
        # Only what the server lacked went again.
        again = puts.seen[before:]
        assert sorted(again) == sorted(set(range(1, count + 1)) - held), (again, held)
        wait_until(lambda: row.get_attribute("data-status") == "ready", 15,
                   "the upload row saying ready after the retry")
        assert not retry.is_visible()
        assert (row.locator(".sapari-error").text_content() or "") == ""
        print(f"failed with {len(held)} of {count} parts stored; the retry sent {len(again)}")
    finally:
        client.close()


def test_choosing_the_file_again_in_another_view_resumes(
        jupyter_lab: JupyterLab, mp_server: EmbeddedServer, big_file: Path, page: Any,
        shots: Shots) -> None:
    """After the view that held the file is gone (a page reload, the output re-shown), the
    row says to choose the file again; doing so resumes instead of starting over."""
    data = big_file.read_bytes()
    count = -(-len(data) // MP_PART)
    client, pid = open_upload(jupyter_lab, mp_server, page, shots, "multipart-rechoose",
                              views=2)
    puts = Puts(page)
    part_5_always_drops, _ = drop_puts(5)
    page.route("**/storage/**", part_5_always_drops)
    try:
        first, second = page.locator(".sapari-upload").nth(0), page.locator(".sapari-upload").nth(1)
        first.locator("input.sapari-file").set_input_files(str(big_file))
        rows = [v.locator(".sapari-upload-row").first for v in (first, second)]
        wait_until(lambda: all(r.get_attribute("data-status") == "failed" for r in rows), 60,
                   "both views showing the upload failed")
        # Only the view holding the file can retry; the other says what to do.
        assert rows[0].locator(".sapari-retry").is_visible()
        assert not rows[1].locator(".sapari-retry").is_visible()
        hint = rows[1].locator(".sapari-error").text_content() or ""
        assert hint.endswith("(choose the same file again to resume)"), hint
        [clip] = client.clips(pid)
        held = {p.part_number for p in client.upload_parts(clip.id).uploaded}
        assert 5 not in held

        page.unroute("**/storage/**")
        before = len(puts.seen)
        second.locator("input.sapari-file").set_input_files(str(big_file))
        clip = ready_clip(client, pid, page)
        shots(page, "resumed")
        assert clip.status == "ready", clip.error
        assert [c.id for c in client.clips(pid)] == [clip.id]  # the same clip, not a new one
        assert stored_bytes(mp_server, clip.id) == data
        again = puts.seen[before:]
        # Sent once, by the view that was asked (not by the other view holding the file too).
        assert sorted(again) == sorted(set(range(1, count + 1)) - held), (again, held)
        assert page.locator(".sapari-upload-row").count() == 2  # one row in each view
    finally:
        client.close()

"""The typed Python client of the job server: everything a notebook does goes through HTTP."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from tqdm.auto import tqdm

from sapari_server.api.schemas import (
    AnalysisOut,
    ArtifactOut,
    AssetEditOut,
    ClipOut,
    DownloadOut,
    EditOut,
    ExportOut,
    ImportOut,
    JobOut,
    MultipartOut,
    MultipartStatusOut,
    PartUrl,
    PartUrlsOut,
    PresignOut,
    ProjectOut,
    TokenOut,
    TranscriptOut,
    UserOut,
)
from sapari_server.keys import safe_suffix

from .errors import JobFailed, SapariError, ServerUnreachable, WaitTimeout
from .events import Event, EventStream, iter_events, transport_reason
from .outputs import atomic_output, write_bytes_atomic

if TYPE_CHECKING:
    from .widgets.project import ProjectView

CHUNK = 1 << 20
# Multipart uploads: parts in flight at once, tries per part, part URLs asked per request.
PART_WORKERS = 4
PART_ATTEMPTS = 5
URL_BATCH = 64
CONFIRM_TIMEOUT = httpx.Timeout(60.0, read=900.0)
_REQUEST_PARTS = ("body", "query", "path", "header", "cookie")


def readable_detail(detail: Any) -> str:
    """An error body's ``detail`` as one line; FastAPI's 422 list becomes "field: message"."""
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list):
        return str(detail)
    parts = []
    for d in detail:
        if not isinstance(d, dict):
            parts.append(str(d))
            continue
        loc = [str(x) for x in d.get("loc", [])]
        if loc and loc[0] in _REQUEST_PARTS:
            loc = loc[1:]
        msg = str(d.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts)


def raise_for_status(r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    try:
        body = r.json()
        detail = body.get("detail", r.text) if isinstance(body, dict) else body
    except ValueError:
        detail = r.text.strip() or r.reason_phrase
    raise SapariError(r.status_code, readable_detail(detail), r.request.method,
                      r.request.url.path)


def _origin(url: str | httpx.URL) -> str:
    u = httpx.URL(url)
    return f"{u.scheme}://{u.netloc.decode()}"


def _file_chunks(path: Path, bar: tqdm | None) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            if bar is not None:
                bar.update(len(data))
            yield data


def _slice_chunks(path: Path, offset: int, size: int,
                  sent: Callable[[int], None]) -> Iterator[bytes]:
    """``size`` bytes of the file from ``offset``, streamed (a part is never held whole)."""
    with open(path, "rb") as f:
        f.seek(offset)
        left = size
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                raise OSError(f"{path} shrank while it was uploading")
            left -= len(data)
            sent(len(data))
            yield data


# A part's ETag is the MD5 of its bytes on S3, R2 and the local store (not under SSE-KMS:
# such ETags simply do not look like one, and those parts are trusted).
_MD5 = re.compile(r"[0-9a-f]{32}")


def _slice_md5(path: Path, offset: int, size: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for data in _slice_chunks(path, offset, size, lambda n: None):
        digest.update(data)
    return digest.hexdigest()


class UploadIncomplete(SapariError):
    """A multipart upload stopped with parts missing; ``clip_id`` resumes it."""

    def __init__(self, clip_id: str, path: Path, missing: list[int], reason: str) -> None:
        Exception.__init__(self, f"upload of {path} stopped with {len(missing)} parts unsent "
                                 f"({reason}); resume it with client.upload(project_id, "
                                 f"{str(path)!r}, resume={clip_id!r})")
        self.status = 0
        self.detail = reason
        self.method = ""
        self.path = ""
        self.clip_id = clip_id
        self.missing = missing


class Client:
    """Use it as a context manager (or call ``close()``): its event streams stop with it, and
    so does the embedded server ``connect()`` started for it."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0,
                 progress: bool = True) -> None:
        self.url = url.rstrip("/")
        self.progress = progress
        self.http = httpx.Client(base_url=self.url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"})
        # Signed URLs carry their own authority: never send the token to storage.
        self._bare = httpx.Client(timeout=httpx.Timeout(timeout, read=300.0))
        self._streams: list[EventStream] = []
        # Run at close(): connect() stops the embedded server it started here.
        self._on_close: list[Callable[[], None]] = []
        # clip id -> (project id, the user's own path): errors name the user's file.
        self._local_files: dict[str, tuple[str, Path]] = {}
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in self._streams:
            stream.close()
        self.http.close()
        self._bare.close()
        for fn in reversed(self._on_close):
            fn()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _reaching(self, url: str | httpx.URL | None = None) -> Iterator[None]:
        """Connection failures become one line naming the URL (no httpx traceback)."""
        try:
            yield
        except httpx.TransportError as e:
            if url is None:
                raise ServerUnreachable(self.url, transport_reason(e)) from None
            origin = _origin(url)
            what = "the sapari-nb server" if origin == _origin(self.url) else "storage"
            raise ServerUnreachable(origin, transport_reason(e), what) from None

    def _req(self, method: str, path: str, **kw: Any) -> Any:
        with self._reaching():
            r = self.http.request(method, path, **kw)
        raise_for_status(r)
        return None if r.status_code == 204 else r.json()

    # -- account and projects -------------------------------------------------------------
    def me(self) -> UserOut:
        return UserOut.model_validate(self._req("GET", "/me"))

    def tokens(self) -> list[TokenOut]:
        """Your live API tokens (ids and names; a token itself is shown only once)."""
        return [TokenOut.model_validate(t) for t in self._req("GET", "/me/tokens")]

    def revoke_token(self, token_id: str) -> None:
        """Revoke one of your tokens: it stops working at once."""
        self._req("DELETE", f"/me/tokens/{token_id}")

    def create_project(self, name: str, settings: dict[str, Any] | None = None) -> ProjectOut:
        return ProjectOut.model_validate(
            self._req("POST", "/projects", json={"name": name, "settings": settings or {}}))

    def projects(self) -> list[ProjectOut]:
        return [ProjectOut.model_validate(p) for p in self._req("GET", "/projects")]

    def project(self, project_id: str) -> ProjectOut:
        return ProjectOut.model_validate(self._req("GET", f"/projects/{project_id}"))

    def delete_project(self, project_id: str, *, purge: bool = False) -> None:
        """Delete a project; ``purge=True`` also frees its stored bytes now (no retention)."""
        self._req("DELETE", f"/projects/{project_id}", params={"purge": "true"} if purge else None)

    # -- clips ---------------------------------------------------------------------------
    def presign(self, project_id: str, filename: str, size: int,
                content_type: str = "application/octet-stream",
                multipart: bool | None = None) -> PresignOut:
        """A clip waiting for its bytes. ``multipart``: in parts (None: the server decides by
        size; the ticket's ``multipart`` then says how)."""
        body: dict[str, Any] = {"filename": filename, "size": size, "content_type": content_type}
        if multipart is not None:
            body["multipart"] = multipart
        return PresignOut.model_validate(self._req(
            "POST", f"/projects/{project_id}/clips", json=body))

    def upload_parts(self, clip_id: str) -> MultipartStatusOut:
        """A multipart upload's parts: those the storage holds and those still missing."""
        return MultipartStatusOut.model_validate(self._req("GET", f"/clips/{clip_id}/parts"))

    def part_urls(self, clip_id: str, part_numbers: Iterable[int],
                  upload_id: str | None = None) -> PartUrlsOut:
        """Signed PUT URLs for some parts of a clip's multipart upload."""
        body: dict[str, Any] = {"part_numbers": list(part_numbers)}
        if upload_id is not None:
            body["upload_id"] = upload_id
        return PartUrlsOut.model_validate(self._req("POST", f"/clips/{clip_id}/parts",
                                                    json=body))

    def put_parts(self, clip_id: str, path: Path, upload: MultipartOut,
                  progress: bool | None = None, *, label: str | None = None,
                  verify: bool = False) -> list[dict[str, Any]]:
        """Send the parts the storage does not hold yet (all, on a fresh upload), several at
        once, each tried again on a dropped connection or a 5xx; returns every part with
        its ETag, as confirm takes them. Raises UploadIncomplete naming the parts left.

        ``verify`` (resuming): a part the storage holds is sent again when its ETag is not
        the MD5 of the file's slice, so a file changed since the first try is not spliced."""
        status = self.upload_parts(clip_id)
        if status.upload_id != upload.upload_id or status.part_count != upload.part_count:
            raise SapariError(409, f"clip {clip_id}'s upload is no longer {upload.upload_id}: "
                                   "presign again")
        size = path.stat().st_size
        held = status.uploaded
        if verify:
            held = [u for u in held
                    if not _MD5.fullmatch(u.etag)
                    or _slice_md5(path, (u.part_number - 1) * upload.part_size, u.size) == u.etag]
        done = {u.part_number: u.etag for u in held}
        show = self.progress if progress is None else progress
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"upload {label or path.name}",
                   disable=not show, leave=False,
                   initial=sum(u.size for u in held))
        lock = threading.Lock()

        def sent(n: int) -> None:
            with lock:
                bar.update(n)

        todo = [n for n in range(1, upload.part_count + 1) if n not in done]
        try:
            with ThreadPoolExecutor(PART_WORKERS, thread_name_prefix="sapari-part") as pool:
                for i in range(0, len(todo), URL_BATCH):
                    batch = self.part_urls(clip_id, todo[i:i + URL_BATCH], upload.upload_id)
                    for n, etag in pool.map(
                            lambda part: (part.part_number,
                                          self._put_part(clip_id, upload.upload_id, path,
                                                         part, sent)), batch.parts):
                        done[n] = etag
        except (SapariError, OSError) as e:
            missing = [n for n in range(1, upload.part_count + 1) if n not in done]
            raise UploadIncomplete(clip_id, path, missing, str(e)) from e
        finally:
            bar.close()
        return [{"part_number": n, "etag": done[n]} for n in sorted(done)]

    def _put_part(self, clip_id: str, upload_id: str, path: Path, part: PartUrl,
                  sent: Callable[[int], None]) -> str:
        """One part, tried up to PART_ATTEMPTS times; its ETag."""
        for attempt in range(PART_ATTEMPTS):
            moved = 0

            def count(n: int) -> None:
                nonlocal moved
                moved += n
                sent(n)

            last = attempt == PART_ATTEMPTS - 1
            try:
                with self._reaching(part.url):
                    r = self._bare.put(part.url, content=_slice_chunks(path, part.offset,
                                                                       part.size, count),
                                       headers={"Content-Length": str(part.size)})
            except ServerUnreachable:
                sent(-moved)  # those bytes go again
                if last:
                    raise
                time.sleep(min(0.25 * 2 ** attempt, 5.0))
                continue
            if r.status_code < 300:
                etag = r.headers.get("etag")
                if not etag:
                    raise SapariError(502, "storage accepted a part but sent no ETag header; "
                                           "the store's CORS rules must expose ETag")
                return etag.strip('"')
            sent(-moved)
            if last or r.status_code not in (403, 408, 429) and r.status_code < 500:
                raise_for_status(r)
            if r.status_code == 403:  # the URL expired under a slow upload: a fresh one
                part = self.part_urls(clip_id, [part.part_number], upload_id).parts[0]
            time.sleep(min(0.25 * 2 ** attempt, 5.0))
        raise AssertionError("unreachable")

    def put_bytes(self, ticket: PresignOut, path: Path, progress: bool | None = None) -> None:
        """PUT the file straight to storage at the signed URL (the API never sees the bytes).

        A ticket with ``multipart`` sends the file in parts; confirm then joins them."""
        if ticket.multipart is not None:
            self.put_parts(ticket.clip.id, path, ticket.multipart, progress)
            return
        size = path.stat().st_size
        show = self.progress if progress is None else progress
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"upload {path.name}",
                   disable=not show, leave=False)
        try:
            with self._reaching(ticket.upload_url):
                r = self._bare.request(ticket.method, ticket.upload_url,
                                       content=_file_chunks(path, bar),
                                       headers={**ticket.headers, "Content-Length": str(size)})
        finally:
            bar.close()
        raise_for_status(r)

    def confirm(self, clip_id: str, priority: str = "interactive",
                upload_id: str | None = None,
                parts: list[dict[str, Any]] | None = None) -> ClipOut:
        """The bytes are there: check them and start processing. A multipart upload is
        joined first (``parts``: every part's ETag; None: the parts the storage holds)."""
        body: dict[str, Any] = {"priority": priority}
        if upload_id is not None:
            body["upload_id"] = upload_id
        if parts is not None:
            body["parts"] = parts
        # Joining the parts of a big upload can take the store a while (minutes for many
        # gigabytes on some stores): wait for the answer longer than for other calls.
        return ClipOut.model_validate(self._req("POST", f"/clips/{clip_id}/confirm", json=body,
                                                timeout=CONFIRM_TIMEOUT))

    def upload(self, project_id: str, path: str | os.PathLike[str],
               progress: bool | None = None, priority: str = "interactive", *,
               resume: str | None = None, multipart: bool | None = None) -> ClipOut:
        """Presign, PUT the bytes, confirm: processing starts; wait for ClipReady to use it.

        Big files (the server's ``multipart_threshold``) go in parts, each retried on its
        own. ``resume``: the id of a clip whose multipart upload stopped (UploadIncomplete
        names it): only the parts the storage lacks are sent."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist or is not a file")
        size = p.stat().st_size
        if resume is not None:
            return self._resume(project_id, p, size, resume, progress, priority)
        ticket = self.presign(project_id, p.name, size, multipart=multipart)
        self._local_files[ticket.clip.id] = (project_id, p)
        if ticket.multipart is None:
            self.put_bytes(ticket, p, progress)
            return self.confirm(ticket.clip.id, priority=priority)
        parts = self.put_parts(ticket.clip.id, p, ticket.multipart, progress)
        return self.confirm(ticket.clip.id, priority=priority,
                            upload_id=ticket.multipart.upload_id, parts=parts)

    def _resume(self, project_id: str, p: Path, size: int, clip_id: str,
                progress: bool | None, priority: str) -> ClipOut:
        clip = self.clip(clip_id)
        if clip.project_id != project_id:
            raise SapariError(409, f"clip {clip_id} belongs to project {clip.project_id}, "
                                   f"not {project_id}")
        if clip.status != "pending_upload":
            return clip  # its upload completed already
        if clip.declared_size != size:
            raise SapariError(409, f"{p} is {size} bytes but clip {clip_id} was presigned for "
                                   f"{clip.declared_size}: resume with the same file")
        self._local_files[clip.id] = (project_id, p)
        status = self.upload_parts(clip.id)
        parts = self.put_parts(clip.id, p, status, progress, verify=True)
        return self.confirm(clip.id, priority=priority, upload_id=status.upload_id,
                            parts=parts)

    def clip(self, clip_id: str) -> ClipOut:
        return ClipOut.model_validate(self._req("GET", f"/clips/{clip_id}"))

    def move_clip(self, clip_id: str, position: int) -> ClipOut:
        """Put a clip at ``position`` (0-based) on its project's timeline."""
        return ClipOut.model_validate(
            self._req("PATCH", f"/clips/{clip_id}", json={"position": position}))

    def clips(self, project_id: str) -> list[ClipOut]:
        return [ClipOut.model_validate(c) for c in self._req("GET", f"/projects/{project_id}/clips")]

    # -- imports from URL, asset edits, export mail (issue 15) ---------------------------
    def import_url(self, project_id: str, url: str, *, filename: str | None = None,
                   priority: str = "interactive") -> ImportOut:
        """The server downloads ``url`` into a new clip, then processes it: wait_clip(out.clip)."""
        body: dict[str, Any] = {"url": url, "priority": priority}
        if filename is not None:
            body["filename"] = filename
        return ImportOut.model_validate(
            self._req("POST", f"/projects/{project_id}/clips/import", json=body))

    def edit_asset(self, clip_id: str, *, trim: tuple[float, float] | None = None,
                   loudness_lufs: float | None = None, filename: str | None = None,
                   priority: str = "interactive") -> AssetEditOut:
        """A new clip: ``clip_id`` trimmed to ``trim`` and/or normalised to ``loudness_lufs``
        (the source clip stays as it is). Wait for it with wait_clip(out.clip)."""
        body: dict[str, Any] = {"priority": priority}
        if trim is not None:
            body["trim"] = {"start": float(trim[0]), "end": float(trim[1])}
        if loudness_lufs is not None:
            body["loudness_lufs"] = float(loudness_lufs)
        if filename is not None:
            body["filename"] = filename
        return AssetEditOut.model_validate(self._req("POST", f"/clips/{clip_id}/edit-asset",
                                                     json=body))

    def set_email(self, email: str | None = None, *, notify: bool | None = None) -> UserOut:
        """Set the address for export mail and/or opt in (``notify=True``) or out."""
        body: dict[str, Any] = {}
        if email is not None:
            body["email"] = email
        if notify is not None:
            body["notify_email"] = notify
        return UserOut.model_validate(self._req("PATCH", "/me", json=body))

    def transcript(self, clip_id: str) -> TranscriptOut:
        return TranscriptOut.model_validate(self._req("GET", f"/clips/{clip_id}/transcript"))

    def artifacts(self, clip_id: str) -> list[ArtifactOut]:
        return [ArtifactOut.model_validate(a)
                for a in self._req("GET", f"/clips/{clip_id}/artifacts")]

    # -- analysis and review -------------------------------------------------------------
    def analyze(self, project_id: str, *, priority: str = "interactive",
                **settings: Any) -> AnalysisOut:
        return AnalysisOut.model_validate(self._req(
            "POST", f"/projects/{project_id}/analyze", json={"priority": priority, **settings}))

    def analysis(self, analysis_id: str) -> AnalysisOut:
        return AnalysisOut.model_validate(self._req("GET", f"/analysis/{analysis_id}"))

    def analyses(self, project_id: str) -> list[AnalysisOut]:
        """The project's analysis runs, oldest first."""
        return [AnalysisOut.model_validate(a)
                for a in self._req("GET", f"/projects/{project_id}/analyses")]

    def edits(self, project_id: str, status: str | None = None) -> list[EditOut]:
        params = {"status": status} if status else None
        return [EditOut.model_validate(e)
                for e in self._req("GET", f"/projects/{project_id}/edits", params=params)]

    def set_edit(self, edit_id: str, **changes: Any) -> EditOut:
        return EditOut.model_validate(self._req("PATCH", f"/edits/{edit_id}", json=changes))

    def accept(self, edit_id: str) -> EditOut:
        return self.set_edit(edit_id, status="accepted")

    def reject(self, edit_id: str) -> EditOut:
        return self.set_edit(edit_id, status="rejected")

    def set_edits_status(self, project_id: str, status: str, ids: Iterable[str] | None = None,
                         only_status: str | None = None) -> int:
        body: dict[str, Any] = {"status": status, "only_status": only_status}
        if ids is not None:
            body["ids"] = list(ids)
        return int(self._req("PATCH", f"/projects/{project_id}/edits", json=body)["updated"])

    def accept_all(self, project_id: str) -> int:
        return self.set_edits_status(project_id, "accepted", only_status="proposed")

    def add_edit(self, project_id: str, clip_id: str, start: float, end: float,
                 kind: str = "manual", reason: str = "", status: str = "accepted",
                 snap: bool = False) -> EditOut:
        """A manual cut; ``snap=True`` moves its edges out of speech, onto the audio."""
        body: dict[str, Any] = {"clip_id": clip_id, "start": start, "end": end, "kind": kind,
                                "reason": reason, "status": status}
        if snap:
            body["snap"] = True  # only sent when asked: older servers reject unknown fields
        return EditOut.model_validate(self._req("POST", f"/projects/{project_id}/edits",
                                                json=body))

    # -- export and download -------------------------------------------------------------
    def export(self, project_id: str, *, priority: str = "interactive",
               **settings: Any) -> ExportOut:
        return ExportOut.model_validate(self._req(
            "POST", f"/projects/{project_id}/exports", json={"priority": priority, **settings}))

    def export_status(self, export_id: str) -> ExportOut:
        return ExportOut.model_validate(self._req("GET", f"/exports/{export_id}"))

    def exports(self, project_id: str) -> list[ExportOut]:
        return [ExportOut.model_validate(e)
                for e in self._req("GET", f"/projects/{project_id}/exports")]

    def download_link(self, export_id: str) -> DownloadOut:
        """The signed URL of a finished export (a 409 SapariError while it is not done)."""
        return DownloadOut.model_validate(self._req("GET", f"/exports/{export_id}/download"))

    def signed_bytes(self, url: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes ``start..end`` (inclusive) of a signed URL, by an HTTP Range request.

        Without ``start`` the whole object. A server that ignores Range (200) is sliced here.
        """
        headers = {} if start is None else {"Range": f"bytes={start}-{'' if end is None else end}"}
        with self._reaching(url):
            r = self._bare.get(url, headers=headers)
        raise_for_status(r)
        if start is not None and r.status_code == 200:
            return r.content[start:None if end is None else end + 1]
        return r.content

    def download(self, export_id: str, dest: str | os.PathLike[str],
                 progress: bool | None = None, label: str | None = None) -> Path:
        """Fetch the rendered file from its signed URL into ``dest`` (written atomically).

        ``label`` names the file in the progress bar (default: ``dest``'s name)."""
        link = self._req("GET", f"/exports/{export_id}/download")
        out = Path(dest)
        show = self.progress if progress is None else progress
        with (atomic_output(out) as tmp, self._reaching(link["url"]),
              self._bare.stream("GET", link["url"]) as r):
            if r.status_code >= 400:
                r.read()
                raise_for_status(r)
            total = int(r.headers.get("content-length", 0)) or None
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True,
                                            desc=f"download {label or out.name}", disable=not show,
                                            leave=False) as bar:
                for chunk in r.iter_bytes(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
        return out

    def timeline(self, project_id: str, fmt: str, dest: str | os.PathLike[str] | None = None, *,
                 apply: str = "accepted", media_dir: str | None = None) -> bytes:
        """The cut as an NLE timeline or captions (fcpxml, premiere, edl, otio, srt, vtt)."""
        params = {"format": fmt, "apply": apply}
        if media_dir is not None:
            params["media_dir"] = media_dir
        with self._reaching():
            r = self.http.get(f"/projects/{project_id}/timeline", params=params)
        raise_for_status(r)
        if dest is not None:
            write_bytes_atomic(dest, r.content)
        return r.content

    def job(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._req("GET", f"/jobs/{job_id}"))

    def cancel(self, job_id: str) -> JobOut:
        """Cancel a queued or running job (a 409 SapariError when it already finished)."""
        return JobOut.model_validate(self._req("POST", f"/jobs/{job_id}/cancel"))

    # -- events --------------------------------------------------------------------------
    def cursor(self) -> int:
        """The newest event id now: wait for what happens after it."""
        return int(self._req("GET", "/events/cursor")["last_event_id"])

    def events(self, project_id: str | None = None, after: int | None = None) -> Iterator[Event]:
        return iter_events(self.http, project_id=project_id, after=after)

    def stream(self, project_id: str | None = None, after: int | None = None,
               on_status: Callable[[str, str], None] | None = None) -> EventStream:
        """A background reader of events that calls listeners (what widgets use).

        ``on_status(status, message)`` hears connected / reconnecting / gone from the very
        first connection on. It stops with ``close()`` (its own or this client's) and at
        interpreter exit.
        """
        stream = EventStream(self.http, project_id=project_id, after=after)
        if on_status is not None:
            stream.on_status(on_status)
        stream.start()
        self._streams = [s for s in self._streams if s.running]
        self._streams.append(stream)
        return stream

    def show(self, project_id: str) -> ProjectView:
        """The project's widget: upload, timeline, review and export in one view."""
        from .widgets.project import ProjectView

        return ProjectView(self, project_id)

    def wait_for(self, match: Callable[[Event], bool], *, project_id: str | None = None,
                 after: int | None = None, timeout: float = 3600.0,
                 on_event: Callable[[Event], None] | None = None) -> Event:
        """Block until an event matches; ``on_event`` sees every event on the way."""
        it = iter_events(self.http, project_id=project_id,
                         after=self.cursor() if after is None else after,
                         deadline=time.monotonic() + timeout)
        for ev in it:
            if on_event is not None:
                on_event(ev)
            if match(ev):
                return ev
        raise WaitTimeout(f"no matching event within {timeout:.0f} s")

    def name_user_files(self, project_id: str, text: str) -> str:
        """Say the user's own path where ``text`` names the server's copy of an upload.

        The server knows a clip only as ``source.mp4`` (and the file's bare name); this
        client knows the path it uploaded from.
        """
        mine = [(cid, p) for cid, (pid, p) in self._local_files.items() if pid == project_id]
        names: dict[str, str] = {}
        for _, path in mine:
            names[path.name] = str(path)
            copy = "source" + safe_suffix(path.name)
            # Only when one upload of this project has that suffix: otherwise it is ambiguous.
            if sum(1 for _, p in mine if safe_suffix(p.name) == safe_suffix(path.name)) == 1:
                names[copy] = str(path)
        if not names:
            return text
        alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        pattern = re.compile(rf"(?<![^\s'\"(])(?:[^\s'\"]*/)?({alts})(?![\w.-]*\w)")
        return pattern.sub(lambda m: names[m.group(1)], text)

    def _wait_job(self, project_id: str, after: int, ok: str, fail: str, key: str, value: str,
                  what: str, desc: str, progress: bool | None, timeout: float,
                  on_event: Callable[[Event], None] | None = None) -> Event:
        show = self.progress if progress is None else progress
        with tqdm(total=100, desc=desc, disable=not show, leave=False,
                  bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}]{postfix}") as bar:
            def see(ev: Event) -> None:
                if on_event is not None:
                    on_event(ev)
                if ev.type == "JobProgress" and ev.payload.get("target_id") == value:
                    bar.update(100 * ev.payload["progress"] - bar.n)
                    bar.set_postfix_str(ev.payload.get("message", ""))
            ev = self.wait_for(
                lambda e: e.type in (ok, fail) and e.payload.get(key) == value,
                project_id=project_id, after=after, timeout=timeout, on_event=see)
            if ev.type == ok:
                bar.update(100 - bar.n)
        if ev.type == fail:
            reason = ev.payload.get("error") or "unknown reason"
            raise JobFailed(what, reason, self.name_user_files(project_id, reason))
        return ev

    def wait_clip(self, clip: ClipOut, after: int = 0, progress: bool | None = None,
                  timeout: float = 3600.0,
                  on_event: Callable[[Event], None] | None = None) -> ClipOut:
        local = self._local_files.get(clip.id)
        name = str(local[1]) if local else clip.filename
        self._wait_job(clip.project_id, after, "ClipReady", "ClipFailed", "clip_id", clip.id,
                       f"processing {name}", "process", progress, timeout, on_event)
        return self.clip(clip.id)

    def wait_analysis(self, run: AnalysisOut, after: int = 0, progress: bool | None = None,
                      timeout: float = 3600.0,
                      on_event: Callable[[Event], None] | None = None) -> AnalysisOut:
        self._wait_job(run.project_id, after, "AnalysisComplete", "AnalysisFailed",
                       "analysis_id", run.id, "analysis", "analyze", progress, timeout, on_event)
        return self.analysis(run.id)

    def wait_export(self, exp: ExportOut, after: int = 0, progress: bool | None = None,
                    timeout: float = 3600.0,
                    on_event: Callable[[Event], None] | None = None) -> ExportOut:
        self._wait_job(exp.project_id, after, "ExportComplete", "ExportFailed", "export_id",
                       exp.id, "export", "render", progress, timeout, on_event)
        return self.export_status(exp.id)

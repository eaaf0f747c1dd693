"""The widgets' state, framework-free: loaded from the server, kept live by its event stream.

``ProjectState(client, project_id, sink)`` computes every synced trait value (names as in
the widget contract) and hands each change to ``sink({name: value, ...})`` (only the traits
that changed). The anywidget classes and the Panel component are thin adapters over it:
they apply what the sink gets and pass the browser's actions to ``handle``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import httpx

from sapari_server.api.schemas import PresignOut

from ..client import Client
from ..errors import SapariError
from ..events import Event, EventStream
from . import load

log = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], None]
DEFAULT_EXPORT_SETTINGS: dict[str, Any] = {"container": "mp4", "video_codec": "h264",
                                           "mode": "auto", "crf": 20, "preset": "veryfast",
                                           "timelines": []}
# Upload states a later, older piece of news must not undo.
_FINAL = ("ready", "failed")


@dataclass
class UploadJob:
    """The kernel's side of one browser upload: its ticket and, for relays, the temp file."""

    ticket: PresignOut | None = None
    tmp: Path | None = None
    handle: IO[bytes] | None = None
    written: int = 0


def _loopback_port(url: str) -> int | None:
    u = httpx.URL(url)
    if u.host in ("127.0.0.1", "localhost", "::1") and u.port:
        return u.port
    return None


class ProjectState:
    """Everything the widgets of one project show, for one view (see module docstring)."""

    # Every open state: a `seek` from one widget moves the playhead of the project's others.
    _open: ClassVar[weakref.WeakSet[ProjectState]] = weakref.WeakSet()

    def __init__(self, client: Client, project_id: str, sink: Sink) -> None:
        self.client = client
        self.project_id = project_id
        self._sink = sink
        self._lock = threading.RLock()
        self._values: dict[str, Any] = {}
        self._infos: list[load.ClipInfo] = []
        self._transcripts: dict[str, list[dict[str, Any]]] = {}
        self._peaks = load.PeakCache()
        self._jobs: dict[str, UploadJob] = {}
        self._acked = 0
        self._closed = False
        self._push_enabled = False
        project = client.project(project_id)
        # Events from this id on are replayed to us: nothing between load and listen is lost.
        after = client.cursor()
        self._values.update({
            "project": {"id": project.id, "name": project.name},
            "server": {"url": client.url, "proxy_port": _loopback_port(client.url),
                       "status": "connected", "message": ""},
            "clips": [], "peaks": b"", "peaks_meta": {"per_second": 100.0, "count": 0,
                                                       "clips": []},
            "words": [], "edits": [], "analysis": load.analysis_state(client, []),
            "export_state": load.idle_export(), "export_settings": dict(DEFAULT_EXPORT_SETTINGS),
            "uploads": [], "upload_route": "", "playhead": 0.0, "_outbox": [], "_acked": 0,
            "message": "",
        })
        self._refresh({"clips", "analysis", "export"})
        self._push_enabled = True
        self._stream: EventStream = client.stream(project_id=project_id, after=after,
                                                  on_status=self._on_status)
        self._off = self._stream.on(self._on_event)
        ProjectState._open.add(self)

    # -- values ----------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Every trait value now (``view`` excepted: it belongs to the widget class)."""
        with self._lock:
            return dict(self._values)

    def _set(self, **changes: Any) -> None:
        """Record new values; push those that differ from what the view has."""
        with self._lock:
            changed = {k: v for k, v in changes.items() if self._values.get(k) != v}
            if not changed:
                return
            self._values.update(changed)
            if self._push_enabled and not self._closed:
                try:
                    self._sink(changed)
                except Exception:  # a broken view must not break the state or the stream
                    log.exception("widget sink failed")

    def set_from_view(self, name: str, value: Any) -> None:
        """A value the browser set itself (playhead, upload_route, export_settings): kept
        so ``values()`` stays true, not pushed back."""
        if name in ("playhead", "upload_route", "export_settings", "_outbox"):
            with self._lock:
                self._values[name] = value

    def say(self, message: str) -> None:
        """A readable status line for the person (errors land here, not in the kernel log)."""
        self._set(message=message)

    # -- loading ---------------------------------------------------------------------------
    def _refresh(self, parts: set[str]) -> None:
        """Reload some parts from the server. Clips move offsets, so they redo the rest."""
        c, pid = self.client, self.project_id
        with self._lock:
            out: dict[str, Any] = {}
            if "clips" in parts:
                self._infos = load.clip_infos(c, c.clips(pid))
                out["clips"] = load.clip_rows(self._infos)
                out["peaks"], out["peaks_meta"] = load.build_peaks(c, self._infos, self._peaks)
                parts = parts | {"words", "edits"}
            if "words" in parts:
                out["words"] = load.words_of(c, self._infos, self._transcripts)
            if "edits" in parts:
                words = out.get("words", self._values["words"])
                out["edits"] = load.edit_rows(c.edits(pid), self._infos, words)
            if "analysis" in parts:
                out["analysis"] = load.analysis_state(c, c.analyses(pid))
            if "export" in parts:
                exports = c.exports(pid)
                out["export_state"] = load.export_state(
                    c, pid, exports[-1] if exports else None,
                    list(self._values["export_settings"].get("timelines") or []))
            self._set(**out)

    def refresh(self) -> None:
        """Reload everything (what a view does after a long outage, or on request)."""
        self._refresh({"clips", "analysis", "export"})

    # -- events ----------------------------------------------------------------------------
    def _on_status(self, status: str, message: str) -> None:
        if status == "connecting":
            return
        with self._lock:
            was = self._values["server"]["status"]
            self._set(server={**self._values["server"], "status": status, "message": message})
            if status != "connected" or was == "connected":
                return
            # Back after an outage: the stream replays what happened (Last-Event-ID); a reload
            # also mends what failed to load meanwhile, and the outage's message goes.
            if self._values["message"].startswith("cannot reach"):
                self.say("")
            try:
                self.refresh()
            except SapariError as e:
                self.say(str(e))

    def _on_event(self, ev: Event) -> None:
        try:
            self._apply_event(ev)
        except SapariError as e:
            self.say(str(e))

    def _apply_event(self, ev: Event) -> None:
        p, t = ev.payload, ev.type
        with self._lock:
            if t == "ClipUploaded":
                self._upload_status(p.get("clip_id"), "processing")
                self._refresh({"clips"})
            elif t in ("ClipReady", "ClipFailed"):
                self._transcripts.pop(str(p.get("clip_id")), None)
                self._upload_status(p.get("clip_id"), "ready" if t == "ClipReady" else "failed",
                                    p.get("error"))
                self._refresh({"clips"})
            elif t == "EditsChanged":
                self._refresh({"edits"})
            elif t == "AnalysisStarted":
                a = self._values["analysis"]
                if a.get("analysis_id") in (None, p.get("analysis_id")):
                    self._set(analysis={**a, "status": "running",
                                        "analysis_id": p.get("analysis_id")})
            elif t in ("AnalysisComplete", "AnalysisFailed"):
                self._transcripts.clear()  # the analysis may have made new transcripts
                self._refresh({"analysis", "words", "edits"})
            elif t in ("JobProgress", "ExportProgress"):
                self._progress(p)
            elif t in ("ExportComplete", "ExportFailed"):
                self._refresh({"export"})

    def _progress(self, p: dict[str, Any]) -> None:
        kind, target = p.get("kind"), p.get("target_id") or p.get("export_id")
        fraction, message = float(p.get("progress") or 0.0), str(p.get("message") or "")
        a, x = self._values["analysis"], self._values["export_state"]
        if kind == "analyze_project" and a.get("analysis_id") == target and \
                a["status"] in ("queued", "running"):
            self._set(analysis={**a, "status": "running", "progress": fraction,
                                "message": message})
        elif kind in ("render_export", None) and x.get("export_id") == target and \
                x["status"] in ("queued", "running"):
            self._set(export_state={**x, "status": "running", "progress": fraction,
                                    "message": message})

    # -- uploads bookkeeping ----------------------------------------------------------------
    def upload_row(self, upload_id: str) -> dict[str, Any] | None:
        with self._lock:
            return next((u for u in self._values["uploads"] if u["id"] == upload_id), None)

    def update_upload(self, upload_id: str, **changes: Any) -> None:
        with self._lock:
            rows = [({**u, **changes} if u["id"] == upload_id else u)
                    for u in self._values["uploads"]]
            self._set(uploads=rows)

    def add_upload(self, row: dict[str, Any]) -> None:
        with self._lock:
            rows = [u for u in self._values["uploads"] if u["id"] != row["id"]]
            self._set(uploads=[*rows, row])

    def _upload_status(self, clip_id: Any, status: str, error: Any = None) -> None:
        for u in self._values["uploads"]:
            if u.get("clip_id") == clip_id and clip_id and u["status"] not in _FINAL:
                self.update_upload(u["id"], status=status,
                                   error=str(error) if error else u.get("error"))

    def job(self, upload_id: str) -> UploadJob:
        with self._lock:
            return self._jobs.setdefault(upload_id, UploadJob())

    def drop_temp(self, upload_id: str) -> None:
        with self._lock:
            job = self._jobs.get(upload_id)
            if job is None:
                return
            if job.handle is not None:
                job.handle.close()
                job.handle = None
            if job.tmp is not None:
                job.tmp.unlink(missing_ok=True)
                job.tmp = None

    # -- actions -----------------------------------------------------------------------------
    def handle(self, action: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """Apply one browser action; a failure becomes ``message``, never an exception."""
        from .actions import dispatch

        kind = str(action.get("type", ""))
        try:
            dispatch(self, kind, action, [bytes(b) for b in buffers or []])
        except SapariError as e:
            self.say(str(e))
        except (KeyError, TypeError, ValueError) as e:
            self.say(f"the widget sent a {kind or 'typeless'} action the kernel cannot use "
                     f"({type(e).__name__}: {e}); reload the widget")
        except Exception as e:  # never an exception in the kernel log for a click
            log.exception("action %s failed", kind)
            self.say(f"{kind} failed: {e}")

    def handle_outbox(self, entries: list[dict[str, Any]]) -> None:
        """The trait route: run every entry newer than ``_acked`` once, then ack it.

        A merged change still carries the whole list, so older entries are skipped here.
        """
        todo = []
        with self._lock:
            self._values["_outbox"] = entries
            for a in sorted(entries, key=lambda a: int(a.get("seq", 0))):
                if int(a.get("seq", 0)) > self._acked:
                    self._acked = int(a["seq"])
                    todo.append(a)
        for a in todo:
            self.handle(a)
        if todo:
            self._set(_acked=self._acked)

    def seek(self, t: float) -> None:
        """Move this view's playhead and every other open view's of the same project."""
        for st in list(ProjectState._open) + [self]:
            if st.project_id == self.project_id and st.client.url == self.client.url:
                st._set(playhead=st._clamp(t))

    def _clamp(self, t: float) -> float:
        total = sum(i.duration for i in self._infos)
        return round(min(max(0.0, float(t)), total), 4)

    @property
    def infos(self) -> list[load.ClipInfo]:
        return self._infos

    @property
    def stream(self) -> EventStream:
        return self._stream

    def reload(self, *parts: str) -> None:
        self._refresh(set(parts))

    # -- cleanup -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening (the stream and its thread end) and remove relay temp files."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._off()
        self._stream.close()
        for upload_id in list(self._jobs):
            self.drop_temp(upload_id)
        ProjectState._open.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed


def temp_dir() -> str:
    """Where relayed chunks wait for their PUT: the kernel's own temp folder."""
    return tempfile.gettempdir()

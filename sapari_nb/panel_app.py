"""The widgets as a Panel web app (``sapari-nb app``): project list, create, and ProjectView.

``ProjectView`` here is a ``panel.custom.AnyWidgetComponent`` running the very ES module the
notebook widgets run (``sapari_nb/static/sapari.js``), with params named like the anywidget
traits. The state logic is the framework-free ``ProjectState``; this module only adapts it:

- server -> browser: ``ProjectState`` calls its sink from the event-stream thread; the changes
  are merged and applied on the Bokeh document's own thread (``add_next_tick_callback``, the
  one thread-safe Document method), so the browser sees them within a tick.
- browser -> server: Panel's front-end model has no ``send`` (WIDGETS.md), so the JS appends
  actions to the ``_outbox`` param; every entry with ``seq > _acked`` is handled once, in
  order, on a worker thread (HTTP calls never block the document), then ``_acked`` follows.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import panel as pn
import param
from panel.custom import AnyWidgetComponent

if TYPE_CHECKING:
    from bokeh.document import Document

    from .client import Client

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


def _project_state(client: Client, project_id: str, sink: Callable[[dict[str, Any]], None]) -> Any:
    # Imported late: the widgets package pulls anywidget in, which the app itself never needs
    # before a project is opened.
    from .widgets.state import ProjectState

    return ProjectState(client, project_id, sink)


class ProjectView(AnyWidgetComponent):
    """One project in the browser: timeline, preview, review, upload and export."""

    _esm = STATIC / "sapari.js"
    _stylesheets = [str(STATIC / "sapari.css")]

    # The contract's traits (widgets-contract.md), same names, same JSON shapes.
    view = param.String(default="project")
    project = param.Dict(default={})
    server = param.Dict(default={})
    clips = param.List(default=[])
    peaks = param.Bytes(default=b"")
    peaks_meta = param.Dict(default={})
    words = param.List(default=[])
    edits = param.List(default=[])
    analysis = param.Dict(default={})
    export_state = param.Dict(default={})
    export_settings = param.Dict(default={})
    uploads = param.List(default=[])
    upload_route = param.String(default="")
    playhead = param.Number(default=0.0)
    message = param.String(default="")
    _outbox = param.List(default=[])
    _acked = param.Integer(default=0)

    def __init__(self, client: Client, project_id: str, **params: Any) -> None:
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(**params)
        self._doc: Document | None = pn.state.curdoc
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._scheduled = False
        self._closed = False
        # One worker: actions stay in the order the browser sent them.
        self._actions = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sapari-panel")
        self._applying = False
        self.state = _project_state(client, project_id, self._sink)
        self._apply(self._known(self.state.values()))
        self.param.watch(self._on_outbox, ["_outbox"])
        # Values the browser sets itself: ProjectState keeps them true, never pushes back.
        self.param.watch(self._on_view_value, ["playhead", "upload_route", "export_settings"])

    def _known(self, changes: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in changes.items() if k in self.param and k != "name"}

    def _sink(self, changes: dict[str, Any]) -> None:
        """Called by ProjectState from any thread: apply on the document's thread."""
        changes = self._known(changes)
        if not changes or self._closed:
            return
        doc = self._doc
        if doc is None or doc.session_context is None:
            self._apply(changes)  # no server session (a script or a test): apply now
            return
        with self._lock:
            self._pending.update(changes)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            doc.add_next_tick_callback(self._flush)
        except Exception:  # the session has ended: nothing shows these changes any more
            with self._lock:
                self._scheduled = False

    def _flush(self) -> None:
        with self._lock:
            changes, self._pending, self._scheduled = self._pending, {}, False
        if changes and not self._closed:
            self._apply(changes)

    def _apply(self, changes: dict[str, Any]) -> None:
        self._applying = True
        try:
            self.param.update(**changes)
        finally:
            self._applying = False

    def _on_outbox(self, event: param.parameterized.Event) -> None:
        if self._applying:
            return
        # A merged browser change carries the whole list; ProjectState runs only the entries
        # newer than its ack, in order, and then moves `_acked` (through the sink).
        self._actions.submit(self._run_outbox, list(event.new or []))

    def _run_outbox(self, entries: list[dict[str, Any]]) -> None:
        try:
            self.state.handle_outbox(entries)
        except Exception:  # handle() turns failures into `message`; this is a last resort
            log.exception("the browser's actions failed")

    def _on_view_value(self, event: param.parameterized.Event) -> None:
        if not self._applying:
            self.state.set_from_view(event.name, event.new)

    def close(self) -> None:
        """Stop listening to the server (the session has ended)."""
        self._closed = True
        self._actions.shutdown(wait=False, cancel_futures=True)
        self.state.close()


def _projects(client: Client) -> dict[str, str]:
    """Label -> id, newest first (the one opened when the URL names none)."""
    projects = sorted(client.projects(), key=lambda p: p.created_at, reverse=True)
    return {f"{p.name} ({p.id[:8]})": p.id for p in projects}


def build_page(client: Client, project_id: str | None = None) -> pn.viewable.Viewable:
    """The app's page for one browser session: pick or create a project, then work on it."""
    options = _projects(client)
    pick = pn.widgets.Select(label="Project", options=options, css_classes=["sapari-pick"],
                             value=project_id if project_id in options.values() else None)
    name = pn.widgets.TextInput(label="New project", placeholder="name of the new project",
                                css_classes=["sapari-new-name"])
    create = pn.widgets.Button(label="Create", color="primary",
                               css_classes=["sapari-create"])
    message = pn.pane.Str("", css_classes=["sapari-app-message"])
    main = pn.Column(sizing_mode="stretch_width")
    current: list[ProjectView] = []

    def show(pid: str | None) -> None:
        for old in current:
            old.close()
        current.clear()
        if not pid:
            main[:] = [pn.pane.Markdown("Pick a project, or create one.")]
            return
        view = ProjectView(client, pid)
        current.append(view)
        main[:] = [view]

    def on_pick(event: param.parameterized.Event) -> None:
        show(event.new)

    def on_create(_: object) -> None:
        title = name.value.strip()
        if not title:
            message.object = "Give the new project a name first."
            return
        try:
            proj = client.create_project(title)
        except Exception as e:  # a readable sentence from the client, shown in the page
            message.object = f"Could not create the project: {e}"
            return
        message.object = ""
        name.value = ""
        pick.options = _projects(client)
        pick.value = proj.id  # fires on_pick

    pick.param.watch(on_pick, "value")
    create.on_click(on_create)
    pn.state.on_session_destroyed(lambda _ctx: [v.close() for v in current])
    show(pick.value)
    header = pn.Row(pick, name, create, message, sizing_mode="stretch_width")
    return pn.Column(pn.pane.Markdown("## sapari-nb"), header, main,
                     sizing_mode="stretch_width")


def serve(client: Client, *, port: int = 5006, address: str = "127.0.0.1",
          show: bool = False, ready: Callable[[int], None] | None = None) -> None:
    """Serve the app until interrupted. ``?project=ID`` in the URL opens that project."""

    def page() -> pn.viewable.Viewable:
        args = pn.state.session_args.get("project") or [b""]
        return build_page(client, args[0].decode() or None)

    if port == 0:  # any free port; chosen here because the websocket origins name it
        with socket.socket() as s:
            s.bind((address, 0))
            port = s.getsockname()[1]
    origins = [f"{h}:{port}" for h in sorted({address, "localhost", "127.0.0.1"})]
    server = pn.serve({"/": page}, port=port, address=address, show=show, start=False,
                      websocket_origin=origins, title="sapari-nb", threaded=False,
                      verbose=False)
    server.start()
    if ready is not None:
        ready(server.port)
    try:
        server.io_loop.start()
    finally:
        server.stop()

"""``SapariWidget``: the anywidget adapter over ``ProjectState`` that every widget class is.

The front end is one bundle (``sapari_nb/static/sapari.js`` and ``.css``, built from
``widgets/``); each class only fixes which ``view`` it draws.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..client import Client
from .state import ProjectState

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent.parent / "static"
BUNDLE, STYLES = STATIC / "sapari.js", STATIC / "sapari.css"
BUILD_HINT = ("the sapari-nb widget bundle is not built (sapari_nb/static/sapari.js is "
              "missing): run `cd widgets && npm install && npm run build` in the repository, "
              "or install a sapari-nb wheel, then run this cell again")
# Shown instead of the widgets when the bundle is missing: says what to do, in the page.
FALLBACK_ESM = """
export default {
  render({ model, el }) {
    const box = document.createElement("div");
    box.className = "sapari-root sapari-status";
    box.dataset.view = model.get("view");
    box.style.cssText = "padding:8px;border:1px solid #c33;color:#c33;font-family:sans-serif";
    box.textContent = %s;
    el.appendChild(box);
    return () => box.remove();
  },
};
""" % repr(BUILD_HINT).replace("'", '"')  # noqa: UP031 (JS source, not a Python string)


def _bundle_source() -> str | Path:
    return BUNDLE if BUNDLE.is_file() else FALLBACK_ESM


def _styles_source() -> str | Path:
    return STYLES if STYLES.is_file() else ""


class SapariWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """One project's widget; ``close()`` stops its event listener."""

    # A path when the bundle is built (anywidget reads it, and watches it in dev); the
    # message module otherwise, so the classes import with or without a build.
    _esm = _bundle_source()
    _css = _styles_source()

    view = t.Unicode("project").tag(sync=True)
    project = t.Dict().tag(sync=True)
    server = t.Dict().tag(sync=True)
    clips = t.List().tag(sync=True)
    peaks = t.Bytes(b"").tag(sync=True)
    peaks_meta = t.Dict().tag(sync=True)
    words = t.List().tag(sync=True)
    edits = t.List().tag(sync=True)
    analysis = t.Dict().tag(sync=True)
    export_state = t.Dict().tag(sync=True)
    export_settings = t.Dict().tag(sync=True)
    uploads = t.List().tag(sync=True)
    upload_route = t.Unicode("").tag(sync=True)
    playhead = t.Float(0.0).tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    _outbox = t.List().tag(sync=True)
    _acked = t.Int(0).tag(sync=True)

    VIEW = "project"

    def __init__(self, client: Client, project_id: str, **kwargs: Any) -> None:
        if not BUNDLE.is_file():
            log.warning(BUILD_HINT)
        elif isinstance(type(self)._esm, str):
            # Built after this module was imported: use it now.
            kwargs.setdefault("_esm", BUNDLE.read_text())
            if STYLES.is_file():
                kwargs.setdefault("_css", STYLES.read_text())
        self._apply_lock = threading.RLock()
        # The thread applying the state's changes: its own trait echoes are not the browser's.
        self._applying: int | None = None
        super().__init__(view=self.VIEW, **kwargs)
        self.state = ProjectState(client, project_id, self._apply)
        self._apply(self.state.values())
        self.on_msg(self._on_msg)
        self.observe(self._on_outbox, names=["_outbox"])
        self.observe(self._on_view_value, names=["playhead", "upload_route", "export_settings"])

    @property
    def client(self) -> Client:
        return self.state.client

    @property
    def project_id(self) -> str:
        return self.state.project_id

    def _apply(self, changes: dict[str, Any]) -> None:
        """The state's sink: one message per batch of changed traits."""
        with self._apply_lock, self.hold_sync():
            self._applying = threading.get_ident()
            try:
                for name, value in changes.items():
                    setattr(self, name, value)
            finally:
                self._applying = None

    def _on_msg(self, _widget: object, content: Any, buffers: list[Any] | None) -> None:
        if isinstance(content, dict) and "type" in content:
            self.state.handle(content, [bytes(b) for b in buffers or []])

    def _from_browser(self) -> bool:
        return self._applying != threading.get_ident()

    def _on_outbox(self, change: dict[str, Any]) -> None:
        if self._from_browser():
            self.state.handle_outbox(list(change["new"] or []))

    def _on_view_value(self, change: dict[str, Any]) -> None:
        if self._from_browser():
            self.state.set_from_view(change["name"], change["new"])

    def handle(self, action: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        """Run an action as if the browser sent it (what the tests and scripts use)."""
        self.state.handle(action, buffers)

    def close(self) -> None:
        state = getattr(self, "state", None)
        if state is not None:
            state.close()
        super().close()

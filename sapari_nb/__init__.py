"""sapari-nb: edit talking-head recordings from Jupyter through one job server."""

from typing import Any

from .client import Client
from .connect import connect, embedded_server
from .errors import (
    Interrupted,
    JobFailed,
    SapariError,
    ServerStartFailed,
    ServerUnreachable,
    WaitTimeout,
)
from .events import Event, EventStream
from .flow import EditResult, edit_file

# The widgets load on first use: `import sapari_nb` (the CLI, batch runs) never imports
# anywidget or ipywidgets.
_WIDGETS = ("EditReview", "Export", "ProjectView", "Timeline", "Upload")


def __getattr__(name: str) -> Any:
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Client", "EditResult", "EditReview", "Event", "EventStream", "Export",
           "Interrupted", "JobFailed", "ProjectView", "SapariError", "ServerStartFailed",
           "ServerUnreachable", "Timeline", "Upload", "WaitTimeout", "connect", "edit_file",
           "embedded_server"]
__version__ = "0.1.0"

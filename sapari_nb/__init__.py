"""sapari-nb: edit talking-head recordings from Jupyter through one job server."""

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

__all__ = ["Client", "EditResult", "Event", "EventStream", "Interrupted", "JobFailed",
           "SapariError", "ServerStartFailed", "ServerUnreachable", "WaitTimeout", "connect",
           "edit_file", "embedded_server"]
__version__ = "0.1.0"

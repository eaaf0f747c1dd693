"""``connect()``: a client for a server URL and token, or for an embedded server in this process."""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path

from .client import Client

_lock = threading.Lock()
_servers: dict[Path, object] = {}


def embedded_server(data_dir: str | os.PathLike[str] | None = None, **settings: object):  # noqa: ANN201
    """Start (once per data folder) the whole job server in a background thread and reuse it."""
    from sapari_server.embedded import EmbeddedServer
    from sapari_server.settings import Settings

    base = Settings(**({"data_dir": Path(data_dir)} if data_dir else {}), **settings)  # type: ignore[arg-type]
    key = base.data_dir.resolve()
    with _lock:
        server = _servers.get(key)
        if server is None:
            server = EmbeddedServer(base).start()
            _servers[key] = server
            atexit.register(server.stop)
    return server


def connect(url: str | None = None, token: str | None = None, *,
            data_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> Client:
    """Connect to ``url`` (or ``$SAPARI_URL``) with ``token`` (or ``$SAPARI_TOKEN``).

    With no URL at all, an embedded server (SQLite, a local folder, in-process workers)
    starts in the background under ``data_dir`` (default ``~/.sapari-nb``) and is reused.
    """
    url = url or os.environ.get("SAPARI_URL")
    if url:
        token = token or os.environ.get("SAPARI_TOKEN")
        if not token:
            raise ValueError(f"no token for {url}: pass token=... or set SAPARI_TOKEN")
        return Client(url, token, progress=progress)
    server = embedded_server(data_dir)
    return Client(server.url, server.token, progress=progress)  # type: ignore[attr-defined]

"""``connect()``: a client for a server URL and token, or for an embedded server in this process."""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .client import Client
from .errors import ServerStartFailed
from .events import close_all_streams

if TYPE_CHECKING:
    from sapari_server.embedded import EmbeddedServer

_lock = threading.Lock()
_servers: dict[Path, EmbeddedServer] = {}
# How many open clients use each embedded server: the last one to close stops it, unless
# someone asked for the server itself (``embedded_server()``): that one stays to the end.
_users: dict[Path, int] = {}
_pinned: set[Path] = set()


def server_url_from_env() -> str | None:
    """``$SAPARI_SERVER`` (or the older ``$SAPARI_URL``): the job server to use."""
    return os.environ.get("SAPARI_SERVER") or os.environ.get("SAPARI_URL") or None


def embedded_server(data_dir: str | os.PathLike[str] | None = None,
                    **settings: object) -> EmbeddedServer:
    """Start (once per data folder) the whole job server in a background thread and reuse it.

    Raises ``ServerStartFailed`` with the real reason (a backend URL that is not
    supported, a data folder that cannot be written, ...) when it cannot start. The
    server runs until ``stop()`` or interpreter exit.
    """
    server = _embedded(data_dir, **settings)
    with _lock:
        _pinned.add(server.settings.data_dir.expanduser().resolve())
    return server


def _embedded(data_dir: str | os.PathLike[str] | None, **settings: object) -> EmbeddedServer:
    from sapari_server.embedded import EmbeddedServer, StartupError
    from sapari_server.settings import Settings

    try:
        base = Settings(**({"data_dir": Path(data_dir)} if data_dir else {}), **settings)  # type: ignore[arg-type]
    except ValueError as e:
        raise ServerStartFailed(str(e)) from e
    key = base.data_dir.expanduser().resolve()
    with _lock:
        server = _servers.get(key)
        if server is None or not server.running:
            try:
                server = EmbeddedServer(base).start()
            except (StartupError, ValueError, OSError) as e:
                # Chain the startup's own exception: the real reason, not the wrapper.
                raise ServerStartFailed(str(e)) from (e.__cause__ or e)
            _servers[key] = server
    return server


def stop_embedded_servers() -> None:
    """Stop every embedded server of this process (event readers first: no stream is cut)."""
    close_all_streams()
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
        _users.clear()
        _pinned.clear()
    for server in servers:
        server.stop()


# Registered at import, so it runs after any atexit handler a user adds later (LIFO) and
# before the interpreter tears down the server's thread mid-request.
atexit.register(stop_embedded_servers)


def _release(key: Path) -> None:
    with _lock:
        _users[key] = _users.get(key, 1) - 1
        server = _servers.get(key) if _users[key] <= 0 and key not in _pinned else None
        if server is not None:
            del _servers[key]
            del _users[key]
    if server is not None:
        server.stop()


def connect(url: str | None = None, token: str | None = None, *,
            data_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> Client:
    """Connect to ``url`` (or ``$SAPARI_SERVER``) with ``token`` (or ``$SAPARI_TOKEN``).

    With no URL at all, an embedded server (SQLite, a local folder, in-process workers)
    starts in the background under ``data_dir`` (default ``~/.sapari-nb``) and is reused.
    It stops when the last client using it is closed (``with connect() as client:``) and
    at interpreter exit, quietly.
    """
    url = url or server_url_from_env()
    if url:
        token = token or os.environ.get("SAPARI_TOKEN")
        if not token:
            raise ValueError(f"no token for {url}: pass token=... or set SAPARI_TOKEN")
        return Client(url, token, progress=progress)
    server = _embedded(data_dir)
    key = server.settings.data_dir.expanduser().resolve()
    with _lock:
        _users[key] = _users.get(key, 0) + 1
    client = Client(server.url, server.token, progress=progress)
    client._on_close.append(lambda: _release(key))
    return client

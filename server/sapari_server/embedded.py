"""The embedded job server: the whole product in one process, on loopback, in the background."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from .auth import create_token, create_user, find_user, hash_token
from .db.models import ApiToken
from .runtime import Runtime
from .settings import Settings

log = logging.getLogger(__name__)
LOCAL_USER = "local"
# Connections on this path are Server-Sent Event streams: they end only when the client goes.
EVENT_STREAM_PATH = "/events"


class StartupError(RuntimeError):
    """The server's startup (runtime, migrations, workers) raised; the cause is chained."""


def token_path(settings: Settings) -> Path:
    return settings.data_dir / "token"


def ensure_local_user(rt: Runtime) -> str:
    """The local user's token, kept (mode 0600) in the data folder; made on first start."""
    path = token_path(rt.settings)
    with rt.sync_session() as s, s.begin():
        if path.exists():
            token = path.read_text().strip()
            tok = s.query(ApiToken).filter_by(token_hash=hash_token(token), is_deleted=False).first()
            if tok is not None:
                return token
        user = find_user(s, LOCAL_USER)
        token = create_token(s, user.id) if user else create_user(s, LOCAL_USER)[1]
    path.write_text(token)
    path.chmod(0o600)
    return token


class _StartupProbe:
    """ASGI wrapper that keeps the exception a failed lifespan startup raised.

    uvicorn only logs it (a long traceback) and returns; the caller of ``start()`` gets the
    exception itself instead, so the reason can be told in one line.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.error: BaseException | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def quiet_send(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                message = {**message, "message": ""}  # the traceback: raised to the caller
            await send(message)

        try:
            await self.app(scope, receive, quiet_send)
        except BaseException as e:
            self.error = e
            raise


class _QuietStartupLog(logging.Filter):
    """Drop uvicorn's own "startup failed" lines: ``start()`` raises the reason instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.getMessage().startswith(("Application startup failed",
                                                     "Exception in 'lifespan' protocol")))


class _Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # An event stream never completes by itself, so uvicorn would wait out the graceful
        # timeout and then cancel it with a CancelledError traceback. Closing its connection
        # ends it as a client disconnect: at once and quietly. Other requests still get the
        # graceful period.
        for conn in list(self.server_state.connections):
            cycle = getattr(conn, "cycle", None)
            scope = getattr(cycle, "scope", None) or {}
            if scope.get("path") == EVENT_STREAM_PATH and not cycle.response_complete:
                conn.transport.close()
        await super().shutdown(sockets)


class EmbeddedServer:
    """uvicorn in a daemon thread on a free loopback port."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0) -> None:
        from .app import create_app

        # The protocol given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it every keep-alive response waits ~40 ms for Nagle.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        # Signed URLs of the local storage must point at this very server.
        self.settings = settings.model_copy(update={"public_url": self.url})
        self.app = create_app(self.settings)
        self._probe = _StartupProbe(self.app)
        config = uvicorn.Config(self._probe, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=3)
        self.server = _Server(config)
        self.thread = threading.Thread(target=self._serve, name="sapari-embedded-server",
                                       daemon=True)
        self._stopped = False
        self._stop_lock = threading.Lock()

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except SystemExit:
            pass  # uvicorn's answer to a failed startup; start() raises the reason instead

    def start(self, timeout: float = 60.0) -> EmbeddedServer:
        """Start serving; raises ``StartupError`` with the real reason when startup fails."""
        quiet = _QuietStartupLog()
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(quiet)
        try:
            self.thread.start()
            deadline = time.monotonic() + timeout
            while not self.server.started:
                if not self.thread.is_alive():
                    self.sock.close()
                    self._stopped = True
                    raise self._startup_error()
                if time.monotonic() > deadline:
                    self.stop()
                    raise StartupError(f"the embedded server did not start within {timeout:.0f} s")
                time.sleep(0.02)
        finally:
            uvicorn_log.removeFilter(quiet)
        return self

    def _startup_error(self) -> StartupError:
        cause = self._probe.error
        if cause is None:
            return StartupError("the embedded sapari-nb server stopped while starting "
                                "(no error was raised; is the port free?)")
        err = StartupError(str(cause) or type(cause).__name__)
        err.__cause__ = cause
        return err

    @property
    def token(self) -> str:
        return token_path(self.settings).read_text().strip()

    @property
    def running(self) -> bool:
        return self.thread.is_alive() and not self._stopped

    def stop(self) -> None:
        """Stop serving (idempotent): streams closed, workers stopped, the port released."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=15)
        self.sock.close()

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

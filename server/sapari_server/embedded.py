"""The embedded job server: the whole product in one process, on loopback, in the background."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import uvicorn

from .auth import create_token, create_user, find_user, hash_token
from .db.models import ApiToken
from .runtime import Runtime
from .settings import Settings

log = logging.getLogger(__name__)
LOCAL_USER = "local"


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


class EmbeddedServer:
    """uvicorn in a daemon thread on a free loopback port."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0) -> None:
        from .app import create_app

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        # Signed URLs of the local storage must point at this very server.
        self.settings = settings.model_copy(update={"public_url": self.url})
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=3)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="sapari-embedded-server", daemon=True)

    def start(self, timeout: float = 60.0) -> EmbeddedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the embedded sapari-nb server failed to start; see the log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded server did not start within {timeout:.0f} s")
            time.sleep(0.02)
        return self

    @property
    def token(self) -> str:
        return token_path(self.settings).read_text().strip()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()

"""Shared fixtures: a real uvicorn job server on loopback, clients, generated media, services."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sapari_nb import Client
from sapari_server.auth import create_user
from sapari_server.db.models import Clip
from sapari_server.embedded import EmbeddedServer
from sapari_server.settings import Settings
from sapari_testkit.generate import TalkTruth, generate_talk

REQUIRE_SERVICES = os.environ.get("SAPARI_REQUIRE_SERVICES") == "1"
_RUN_DIR: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Everything a test run writes lands in one folder that is removed at the end: pytest's
    own tmp_path folders, every temporary file of the tests and of the processes they start
    (TMPDIR), and any default data folder (SAPARI_DATA_DIR, HOME). Nothing is left in /tmp or
    in the home folder."""
    global _RUN_DIR
    if _RUN_DIR is not None:
        return
    _RUN_DIR = Path(tempfile.mkdtemp(prefix="sapari-tests-"))
    for name in ("tmp", "home"):
        (_RUN_DIR / name).mkdir()
    os.environ["TMPDIR"] = str(_RUN_DIR / "tmp")
    tempfile.tempdir = None  # re-read TMPDIR
    os.environ["SAPARI_DATA_DIR"] = str(_RUN_DIR / "home" / ".sapari-nb")
    os.environ["HOME"] = str(_RUN_DIR / "home")
    if not config.option.basetemp:
        config.option.basetemp = str(_RUN_DIR / "pytest")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RUN_DIR is not None:
        shutil.rmtree(_RUN_DIR, ignore_errors=True)


def need_service(name: str, host: str, port: int) -> None:
    """Skip when a service is not listening, unless CI demands services (then fail)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as e:
        msg = f"{name} is not reachable on {host}:{port} ({e})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{msg}; SAPARI_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(msg)


def start_server(data_dir: Path, **overrides: object) -> EmbeddedServer:
    settings = Settings(data_dir=data_dir, sse_keepalive=0.5, **overrides)  # type: ignore[arg-type]
    return EmbeddedServer(settings).start()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    # Tone "speech" means nothing to Whisper: these tests pin the silence path; the
    # speech path has its own server in tests/api/test_speech_flow.py.
    srv = start_server(tmp_path_factory.mktemp("server"), transcriber="none")
    yield srv
    srv.stop()


@pytest.fixture
def client(server: EmbeddedServer) -> Iterator[Client]:
    with Client(server.url, server.token, progress=False) as c:
        yield c


def new_user_client(server: EmbeddedServer, name: str) -> Client:
    rt = server.app.state.runtime
    with rt.sync_session() as s, s.begin():
        _, token = create_user(s, name)
    return Client(server.url, token, progress=False)


def clip_key(server: EmbeddedServer, clip_id: str) -> str:
    """The storage key of a clip's source (in-process: the test owns the server)."""
    with server.app.state.runtime.sync_session() as s:
        clip = s.get(Clip, clip_id)
        assert clip is not None
        return clip.object_key


def stored_bytes(server: EmbeddedServer, clip_id: str) -> bytes:
    """The bytes the server stored as a clip's source."""
    with server.app.state.runtime.storage.open_read(clip_key(server, clip_id)) as f:
        return f.read()


@pytest.fixture
def other_client(server: EmbeddedServer, request: pytest.FixtureRequest) -> Iterator[Client]:
    c = new_user_client(server, f"user-b-{request.node.name}"[:190])
    yield c
    c.close()


PAUSES = [0.8, 1.5, 0.3, 2.0, 0.6, 1.1]


@pytest.fixture(scope="session")
def talk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TalkTruth]:
    path = tmp_path_factory.mktemp("media") / "talk.mp4"
    truth = generate_talk(path, pauses=PAUSES, seed=7, lead_silence=0.7, tail_silence=0.9)
    return path, truth

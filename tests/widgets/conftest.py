"""Fixtures of the widget tests: a project with a ready, analysed clip on the session server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sapari_nb import Client
from sapari_server.db.models import Clip, Transcript
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth


@dataclass
class Ready:
    project_id: str
    clip_id: str
    duration: float


def wait_until(check: Callable[[], Any], timeout: float = 30.0, step: float = 0.02) -> Any:
    """Poll a condition in the test (the widget itself never polls): its value when true."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def add_transcript(server: EmbeddedServer, clip_id: str, words: list[dict[str, Any]]) -> None:
    """The session server has no speech model: give the clip a transcript row directly, as
    an analysis with a transcriber would have."""
    rt = server.app.state.runtime
    with rt.sync_session() as s, s.begin():
        clip = s.get(Clip, clip_id)
        assert clip is not None
        s.add(Transcript(user_id=clip.user_id, clip_id=clip_id, backend="test",
                         language="en", words=words))


def make_ready(client: Client, server: EmbeddedServer, src: Path, name: str) -> Ready:
    project = client.create_project(name)
    after = client.cursor()
    clip = client.upload(project.id, src, progress=False)
    clip = client.wait_clip(clip, after=after, progress=False, timeout=120)
    run = client.analyze(project.id)
    client.wait_analysis(run, after=after, progress=False, timeout=120)
    words = [{"word": w, "start": 0.8 + i * 0.5, "end": 1.1 + i * 0.5, "probability": 0.9}
             for i, w in enumerate(["so", "today", "we", "talk", "about", "cuts"])]
    add_transcript(server, clip.id, words)
    assert clip.duration
    return Ready(project.id, clip.id, clip.duration)


@pytest.fixture(scope="module")
def wclient(server: EmbeddedServer) -> Iterator[Client]:
    with Client(server.url, server.token, progress=False) as c:
        yield c


@pytest.fixture(scope="module")
def ready(wclient: Client, server: EmbeddedServer, talk: tuple[Path, TalkTruth]) -> Ready:
    return make_ready(wclient, server, talk[0], "widgets")

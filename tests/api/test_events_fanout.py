"""Many streams of one user share their log reads (SharedReads): none may lose, repeat or
reorder an event, or sleep through its wake-up, whatever its project filter, its starting
point or when it connected."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from sapari_server.auth import find_user
from sapari_server.db.engine import transaction
from sapari_server.embedded import LOCAL_USER
from sapari_server.events.log import record_event

from ..conftest import start_server

STREAMS_PER_KIND = 12
BURSTS = 24
EVENTS = sum(1 + b % 4 for b in range(BURSTS))


def test_many_streams_of_one_user_each_get_exactly_their_events(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", embedded_workers=0)
    try:
        rt = srv.app.state.runtime
        # No safety-net polls: a stream that slept through its wake-up would hang, not
        # catch up a second later unnoticed.
        rt.bus.poll_interval = 60.0
        rt.settings.sse_keepalive = 60.0
        with httpx.Client(base_url=srv.url,
                          headers={"Authorization": f"Bearer {srv.token}"}) as h:
            projects = [h.post("/projects", json={"name": n}).json()["id"] for n in "ab"]
            cursor = h.get("/events/cursor").json()["last_event_id"]
        with rt.sync_session() as s:
            user = find_user(s, LOCAL_USER)
            assert user is not None
            user_id = user.id

        filters: list[str | None] = [f for f in (None, *projects)
                                     for _ in range(STREAMS_PER_KIND)]
        got: list[list[int]] = [[] for _ in filters]

        def mine(i: int, seq: int) -> bool:
            return filters[i] is None or projects[seq % 2] == filters[i]

        def caught_up(i: int, sent: int) -> bool:
            last = max((q for q in range(sent) if mine(i, q)), default=-1)
            return (got[i][-1] if got[i] else -1) == last

        failures: list[str] = []

        def emit() -> None:
            # As the embedded workers do: commit, then notify, from another thread. Bursts of
            # back-to-back commits (streams are caught waiting, reading, or joining a read in
            # flight), then every stream must have its last event of the burst.
            seq = 0
            for burst in range(BURSTS):
                for _ in range(1 + burst % 4):
                    with transaction(rt.sync_session) as s:
                        record_event(s, user_id=user_id, project_id=projects[seq % 2],
                                     type="JobProgress", payload={"seq": seq})
                    rt.bus.notify(user_id)
                    seq += 1
                deadline = time.monotonic() + 5
                while not all(caught_up(i, seq) for i in range(len(filters))):
                    if time.monotonic() > deadline:
                        failures.append(f"burst {burst}: streams slept through their wake-up: "
                                        f"{[i for i in range(len(filters)) if not caught_up(i, seq)]}")
                        return
                    time.sleep(0.002)

        async def stream(http: httpx.AsyncClient, i: int, delay: float) -> None:
            await asyncio.sleep(delay)
            want = sum(1 for q in range(EVENTS) if mine(i, q))
            params: dict[str, object] = {"after": cursor}
            if filters[i] is not None:
                params["project_id"] = filters[i]
            async with http.stream("GET", "/events", params=params) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        got[i].append(json.loads(line[5:])["payload"]["seq"])
                        if len(got[i]) == want:
                            break

        async def main() -> None:
            async with httpx.AsyncClient(
                    base_url=srv.url, timeout=httpx.Timeout(30.0),
                    limits=httpx.Limits(max_connections=100),
                    headers={"Authorization": f"Bearer {srv.token}"}) as http:
                tasks = [asyncio.create_task(stream(http, i, 0.02 * (i % 10)))
                         for i in range(len(filters))]
                await asyncio.sleep(0.3)  # every stream connected and waiting
                emitter = threading.Thread(target=emit)
                emitter.start()
                while emitter.is_alive():
                    await asyncio.sleep(0.01)
                if failures:
                    for t in tasks:
                        t.cancel()
                    return
                await asyncio.wait_for(asyncio.gather(*tasks), 15)

        asyncio.run(main())
        assert not failures, failures
        for i, seqs in enumerate(got):
            assert seqs == [q for q in range(EVENTS) if mine(i, q)], (filters[i], seqs)
    finally:
        srv.stop()


def test_a_read_started_before_a_wake_up_is_not_shared_with_the_woken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule that makes sharing safe, step by step: a stream woken by generation g may only
    join a read that started after g (else it would miss the event it was woken for)."""
    from sapari_server.api.routes import events as route
    from sapari_server.events.bus import LocalEventBus

    started: list[tuple[int, asyncio.Event]] = []

    async def fake_read_log(rt: object, user_id: str, project_id: str | None,
                            last: int) -> list[tuple[int, bytes]]:
        gate = asyncio.Event()
        started.append((rt.bus.generation(user_id), gate))  # type: ignore[attr-defined]
        which = len(started)
        await gate.wait()
        return [(which, b"")]

    monkeypatch.setattr(route, "_read_log", fake_read_log)
    rt = SimpleNamespace(bus=LocalEventBus())

    async def settle() -> None:
        for _ in range(5):  # the asker's task, then the read's own task, get to run
            await asyncio.sleep(0)

    async def main() -> None:
        reads = route.SharedReads()
        a = asyncio.create_task(reads.read(rt, "u", None, 0, seen=0))  # type: ignore[arg-type]
        await settle()
        b = asyncio.create_task(reads.read(rt, "u", None, 0, seen=0))  # type: ignore[arg-type]
        await settle()
        assert len(started) == 1  # same point, same generation: one read
        rt.bus.notify("u")  # an event committed while that read is in flight
        c = asyncio.create_task(reads.read(rt, "u", None, 0, seen=1))  # type: ignore[arg-type]
        d = asyncio.create_task(reads.read(rt, "u", "prj", 0, seen=0))  # type: ignore[arg-type]
        await settle()
        assert [g for g, _ in started] == [0, 1, 1]  # c and d read anew
        for _, gate in started:
            gate.set()
        assert [await t for t in (a, b, c, d)] == [[(1, b"")], [(1, b"")], [(2, b"")],
                                                   [(3, b"")]]
        # Finished reads are forgotten: the next asker reads again.
        e = asyncio.create_task(reads.read(rt, "u", None, 0, seen=1))  # type: ignore[arg-type]
        await settle()
        assert len(started) == 4
        started[-1][1].set()
        await e

    asyncio.run(main())

"""SSE fan-out: one event, N concurrent clients on loopback, delivery latency per client.

    .venv/bin/python bench/sse_fanout.py [--clients 500] [--events 20] [--interval 0.3]
                                         [--bus local redis] [--db postgres|sqlite]

Two set-ups, each with the job server in its own OS process and the clients (httpx async
streams, one asyncio loop) in this one:

- ``local``: the in-process bus. Events are committed by a thread inside the server process,
  as the embedded workers do (a worker in another process would only be seen at the next
  1 s poll of the log; tests/services/test_redis_events.py measures that case).
- ``redis``: SAPARI_EVENTS_URL=redis://…, events committed by a separate "worker" process:
  commit -> Redis pub/sub -> the server's listener -> every stream re-reads the log.

All clients belong to one user, so every event wakes every stream (the worst fan-out: each
stream then reads the log itself). Latency is the client's receive time minus the time taken
just before the commit; it includes this process's own parsing of N streams on one loop.
Prints p50/p99/max over all deliveries and over "the last of the N clients" per event.
Needs PostgreSQL on 127.0.0.1:5432 (``--db sqlite``: the embedded default instead) and,
for ``redis``, Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


# --- the server and emitter processes ------------------------------------------------------

def _emit_loop(rt, user_id: str) -> None:  # type: ignore[no-untyped-def]
    """Commands on stdin: ``emit N INTERVAL`` commits N events, ``quit`` ends."""
    from sapari_server.db.engine import transaction
    from sapari_server.events.log import record_event

    seq = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        count, interval = int(cmd[1]), float(cmd[2])
        for i in range(count):
            if i:
                time.sleep(interval)
            with transaction(rt.sync_session) as s:
                record_event(s, user_id=user_id, type="JobProgress",
                             payload={"seq": seq, "t": time.time()})
            rt.bus.notify(user_id)
            seq += 1
        print(f"sent {count}", flush=True)


def role_server(emit: bool) -> None:
    """An embedded server (no workers) on a free port; with ``emit``, also the emitter."""
    from sapari_server.auth import find_user
    from sapari_server.embedded import LOCAL_USER, EmbeddedServer
    from sapari_server.settings import Settings

    srv = EmbeddedServer(Settings(embedded_workers=0)).start()
    rt = srv.app.state.runtime
    with rt.sync_session() as s:
        user = find_user(s, LOCAL_USER)
        assert user is not None
        user_id = user.id
    print(json.dumps({"url": srv.url, "token": srv.token, "user_id": user_id}), flush=True)
    try:
        if emit:
            _emit_loop(rt, user_id)
        else:
            sys.stdin.read()  # until the parent closes it
    finally:
        srv.stop()


def role_emitter(user_id: str) -> None:
    from sapari_server.runtime import build_runtime
    from sapari_server.settings import Settings

    rt = build_runtime(Settings())
    print("ready", flush=True)
    try:
        _emit_loop(rt, user_id)
    finally:
        rt.close()


# --- the clients ---------------------------------------------------------------------------

class Proc:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.p = subprocess.Popen([sys.executable, __file__, *args], env=env, cwd=ROOT,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def line(self) -> str:
        assert self.p.stdout is not None
        out = self.p.stdout.readline()
        if not out:
            raise RuntimeError(f"{self.p.args[2:]} ended (exit {self.p.wait()})")
        return out.strip()

    def send(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def close(self) -> None:
        try:
            self.send("quit")
            assert self.p.stdin is not None
            self.p.stdin.close()
            self.p.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


async def run_clients(url: str, token: str, clients: int, events: int, interval: float,
                      emitter: Proc) -> tuple[list[float], list[float]]:
    got: list[dict[int, float]] = [{} for _ in range(clients)]
    connected = asyncio.Semaphore(0)
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    timeout = httpx.Timeout(30.0, read=None)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        cursor = (await http.get("/events/cursor")).json()["last_event_id"]

        async def one(i: int) -> None:
            async with http.stream("GET", "/events", params={"after": cursor}) as r:
                r.raise_for_status()
                said = False
                async for line in r.aiter_lines():
                    if not said:
                        said = True
                        connected.release()
                    if line.startswith("data:"):
                        now = time.time()
                        body = json.loads(line[5:])
                        got[i][body["payload"]["seq"]] = (now - body["payload"]["t"]) * 1000
                        if len(got[i]) == events:
                            return

        tasks = [asyncio.create_task(one(i)) for i in range(clients)]
        t0 = time.monotonic()
        for _ in range(clients):
            await asyncio.wait_for(connected.acquire(), 120)
        print(f"  {clients} streams connected in {time.monotonic() - t0:.1f} s", flush=True)
        await asyncio.sleep(1.0)  # let every stream settle into its wait
        emitter.send(f"emit {events} {interval}")
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), events * interval + 60)
        finally:
            done.set()
            for t in tasks:
                t.cancel()
    every = [ms for g in got for ms in g.values()]
    last = [max(g[s] for g in got) for s in range(events)]
    missing = clients * events - len(every)
    if missing:
        raise RuntimeError(f"{missing} deliveries missing")
    return every, last


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def bench(bus: str, db_url: str, clients: int, events: int, interval: float) -> dict:
    data = Path(tempfile.mkdtemp(prefix="sse-fanout-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAPARI_")}
    env.update(SAPARI_DATA_DIR=str(data), SAPARI_DATABASE_URL=db_url, PYTHONUNBUFFERED="1",
               SAPARI_SSE_KEEPALIVE="15")
    if bus == "redis":
        env["SAPARI_EVENTS_URL"] = (f"redis://127.0.0.1:6379/0?channel=sse-bench-"
                                    f"{secrets.token_hex(4)}")
    server = Proc(["--role", "server"] + (["--emit"] if bus == "local" else []), env)
    emitter: Proc | None = None
    try:
        info = json.loads(server.line())
        if bus == "local":
            emitter = server
        else:
            emitter = Proc(["--role", "emitter", "--user", info["user_id"]], env)
            assert emitter.line() == "ready"
        every, last = asyncio.run(run_clients(info["url"], info["token"], clients, events,
                                              interval, emitter))
        assert emitter.line().startswith("sent")
    finally:
        if emitter is not None and emitter is not server:
            emitter.close()
        server.close()
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    return {"bus": bus, "deliveries": len(every),
            "p50": statistics.median(every), "p99": pct(every, 99), "max": max(every),
            "last_p50": statistics.median(last), "last_p99": pct(last, 99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.3, help="seconds between events")
    ap.add_argument("--bus", nargs="+", choices=["local", "redis"], default=["local", "redis"])
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--role", choices=["server", "emitter"], help=argparse.SUPPRESS)
    ap.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--user", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "server":
        return role_server(args.emit)
    if args.role == "emitter":
        return role_emitter(args.user)

    rows = []
    name = f"sse_bench_{secrets.token_hex(4)}"
    if args.db == "postgres":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        for bus in args.bus:
            db_url = (f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                      if args.db == "postgres" else "")
            print(f"{bus} bus: {args.clients} clients, {args.events} events "
                  f"{args.interval} s apart, {args.db}", flush=True)
            rows.append(bench(bus, db_url, args.clients, args.events, args.interval))
    finally:
        if args.db == "postgres":
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\nSSE fan-out to {args.clients} clients on loopback ({os.cpu_count()} cores), "
          "delivery latency in ms (commit -> client)")
    print(f"{'bus':<7}{'deliveries':>11}{'p50':>8}{'p99':>8}{'max':>8}"
          f"{'all-N p50':>11}{'all-N p99':>11}")
    for r in rows:
        print(f"{r['bus']:<7}{r['deliveries']:>11}{r['p50']:>8.1f}{r['p99']:>8.1f}"
              f"{r['max']:>8.1f}{r['last_p50']:>11.1f}{r['last_p99']:>11.1f}")
    print("all-N: per event, until the last of the clients had it")


if __name__ == "__main__":
    main()

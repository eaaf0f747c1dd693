"""Presign + confirm latency under 50 concurrent clients, against the embedded server.

Each client is its own user (a quota decision locks the user, as it must: one user's
presigns queue behind each other by design) and loops: presign a small upload, PUT its
bytes to the signed URL (not timed: that is the storage's speed), confirm. Prints p50/p99
of presign, of confirm and of the two together (and of the untimed PUT, for reference),
and the rounds per second.

The server runs in a child process (the embedded default: SQLite, local folder storage,
``embedded_workers=0`` so processing does not compete with the API being measured); the
clients are asyncio tasks on httpx here. ``--s3`` puts storage on a moto_server instead
(confirm then HEADs the object over HTTP).

    .venv/bin/python bench/presign_confirm.py [--clients 50] [--rounds 10] [--s3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402

BODY = b"\x00" * 4096


def serve(settings_kw: dict[str, Any], users: int, out: Any, stop: Any) -> None:
    """Child process: the embedded server plus one token per simulated client."""
    from sapari_server.auth import create_user
    from sapari_server.embedded import EmbeddedServer
    from sapari_server.settings import Settings

    srv = EmbeddedServer(Settings(**settings_kw)).start()
    rt = srv.app.state.runtime
    tokens = []
    with rt.sync_session() as s, s.begin():
        for i in range(users):
            tokens.append(create_user(s, f"bench-{i}")[1])
    out.put((srv.url, tokens))
    stop.wait()
    srv.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def client(url: str, token: str, rounds: int, res: dict[str, list[float]]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as api, \
            httpx.AsyncClient(timeout=120) as bare:
        r = await api.post("/projects", json={"name": "bench"})
        r.raise_for_status()
        project = r.json()["id"]
        for i in range(rounds):
            t0 = time.perf_counter()
            r = await api.post(f"/projects/{project}/clips",
                               json={"filename": f"c{i}.mp4", "size": len(BODY)})
            t1 = time.perf_counter()
            r.raise_for_status()
            ticket = r.json()
            put = await bare.put(ticket["upload_url"], content=BODY, headers=ticket["headers"])
            put.raise_for_status()
            t2 = time.perf_counter()
            r = await api.post(f"/clips/{ticket['clip']['id']}/confirm", json={})
            t3 = time.perf_counter()
            r.raise_for_status()
            assert r.json()["status"] == "uploaded", r.text
            res["put"].append(t2 - t1)
            res["presign"].append(t1 - t0)
            res["confirm"].append(t3 - t2)
            res["both"].append((t1 - t0) + (t3 - t2))


async def run(url: str, tokens: list[str], rounds: int) -> tuple[dict[str, list[float]], float]:
    res: dict[str, list[float]] = {"presign": [], "confirm": [], "both": [], "put": []}
    t0 = time.perf_counter()
    await asyncio.gather(*(client(url, t, rounds, res) for t in tokens))
    return res, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10, help="presign+confirm per client")
    ap.add_argument("--s3", action="store_true", help="storage on a moto_server")
    ap.add_argument("--database-url", default="",
                    help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/bench (an empty "
                         "database you made; default: the embedded SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sapari-bench-presign-") as d:
        tmp = Path(d)
        settings: dict[str, Any] = {"data_dir": tmp / "data", "transcriber": "none",
                                    "embedded_workers": 0, "local_user": False,
                                    "database_url": args.database_url}
        moto = None
        if args.s3:
            import boto3
            from upload_multipart import start_moto

            os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
            moto, endpoint = start_moto(tmp)
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                Bucket="bench")
            settings["storage_url"] = (f"s3://bench?endpoint={endpoint}&region=us-east-1"
                                       "&path_style=1")
        ctx = mp.get_context("spawn")
        out, stop = ctx.Queue(), ctx.Event()
        proc = ctx.Process(target=serve, args=(settings, args.clients, out, stop))
        proc.start()
        try:
            url, tokens = out.get(timeout=120)
            res, wall = asyncio.run(run(url, tokens, args.rounds))
        finally:
            stop.set()
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
            if moto is not None:
                moto.terminate()
                moto.wait(10)
    n = len(res["both"])
    where = "moto S3" if args.s3 else "local folder"
    db = "PostgreSQL" if args.database_url.startswith("postgres") else "SQLite"
    print(f"{args.clients} concurrent clients x {args.rounds} rounds = {n} uploads "
          f"({db}, {where} storage), {n / wall:.0f} presign+confirm rounds/s")
    for name in ("presign", "confirm", "both", "put"):
        v = res[name]
        print(f"{name:8s} p50 {1000 * statistics.median(v):7.1f} ms   "
              f"p99 {1000 * pct(v, 0.99):7.1f} ms   max {1000 * max(v):7.1f} ms")


if __name__ == "__main__":
    main()

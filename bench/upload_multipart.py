"""Upload throughput of a big file through multipart presigned parts, against moto's S3 server.

The whole client path: presign (the API starts the multipart upload), ``Client.put_parts``
(part URLs from the API, parts PUT straight to the store, several at once), confirm (the
API checks the parts and completes the upload). Beside it, the peer baseline: boto3's own
managed ``upload_file`` with the same part size and concurrency, straight to the store.

moto runs as its own process (``moto_server``) so the store does not share this process's
GIL; the job server runs embedded here (it only signs and completes: no bytes pass it).
The file (2 GiB by default) is made in a temporary folder and deleted afterwards: sparse
(zeros, no disk) by default, ``--random`` writes random bytes.

    .venv/bin/python bench/upload_multipart.py [--size-mib 2048] [--part-mib 16] [--random]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))

from sapari_nb import Client  # noqa: E402
from sapari_nb import client as client_mod  # noqa: E402
from sapari_server.embedded import EmbeddedServer  # noqa: E402
from sapari_server.settings import Settings  # noqa: E402

MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "TMPDIR": str(tmp)}  # moto spools part bodies to disk here
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("moto_server exited at start: pip install 'moto[server]'") from None
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start within 30 s")


def make_file(path: Path, size: int, random: bool) -> None:
    with open(path, "wb") as f:
        if not random:
            f.truncate(size)  # sparse: reads as zeros, takes no disk
            return
        left = size
        block = os.urandom(8 * MiB)
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def boto3_baseline(s3, bucket: str, src: Path, size: int, part: int,  # type: ignore[no-untyped-def]
                   workers: int) -> tuple[float, float]:
    """The same multipart upload done by boto3 itself: (parts seconds, complete seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    key = "baseline.bin"
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    count = -(-size // part)

    def send(n: int) -> dict[str, object]:
        with open(src, "rb") as f:
            f.seek((n - 1) * part)
            body = f.read(part)
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=body)
        return {"PartNumber": n, "ETag": r["ETag"]}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(send, range(1, count + 1)))
    t1 = time.perf_counter()
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                 MultipartUpload={"Parts": parts})
    t2 = time.perf_counter()
    s3.delete_object(Bucket=bucket, Key=key)
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--part-mib", type=int, default=16)
    ap.add_argument("--workers", type=int, default=client_mod.PART_WORKERS)
    ap.add_argument("--random", action="store_true", help="random bytes, not a sparse file")
    ap.add_argument("--no-baseline", action="store_true", help="skip boto3's upload_file")
    args = ap.parse_args()
    size = args.size_mib * MiB
    client_mod.PART_WORKERS = args.workers
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

    with tempfile.TemporaryDirectory(prefix="sapari-bench-upload-") as d:
        tmp = Path(d)
        moto, endpoint = start_moto(tmp)
        srv = None
        try:
            import boto3
            from botocore.config import Config

            bucket = "bench"
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              config=Config(read_timeout=600, max_pool_connections=32,
                                            request_checksum_calculation="when_required"))
            s3.create_bucket(Bucket=bucket)
            src = tmp / "big.mp4"
            make_file(src, size, args.random)
            settings = Settings(
                data_dir=tmp / "data", transcriber="none", embedded_workers=0,
                storage_url=f"s3://{bucket}?endpoint={endpoint}&region=us-east-1&path_style=1",
                multipart_part_size=args.part_mib * MiB, max_upload_bytes=size + 1,
                quota_bytes=4 * size + MiB)
            srv = EmbeddedServer(settings).start()
            with Client(srv.url, srv.token, progress=False) as client:
                project = client.create_project("bench-upload")
                t0 = time.perf_counter()
                ticket = client.presign(project.id, src.name, size)
                assert ticket.multipart is not None
                t1 = time.perf_counter()
                parts = client.put_parts(ticket.clip.id, src, ticket.multipart)
                t2 = time.perf_counter()
                clip = client.confirm(ticket.clip.id, upload_id=ticket.multipart.upload_id,
                                      parts=parts)
                t3 = time.perf_counter()
                assert clip.size == size, clip
            print(f"file: {size / MiB:.0f} MiB ({'random' if args.random else 'sparse'}), "
                  f"{ticket.multipart.part_count} parts of {ticket.multipart.part_size // MiB} "
                  f"MiB, {args.workers} in flight, moto_server on loopback")
            ours = size / MiB / (t3 - t0)
            print(f"sapari-nb multipart: presign {1000 * (t1 - t0):.0f} ms, parts "
                  f"{t2 - t1:.1f} s ({size / MiB / (t2 - t1):.0f} MB/s), confirm (complete + "
                  f"HEAD) {t3 - t2:.1f} s; end to end {ours:.0f} MB/s")
            s3.delete_object(Bucket=bucket, Key=next(
                o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]))
            if not args.no_baseline:
                base_parts, base_complete = boto3_baseline(s3, bucket, src, size,
                                                           args.part_mib * MiB, args.workers)
                base = size / MiB / (base_parts + base_complete)
                print(f"boto3 (peer baseline: create/upload_part/complete, same parts and "
                      f"concurrency): parts {base_parts:.1f} s "
                      f"({size / MiB / base_parts:.0f} MB/s), complete {base_complete:.1f} s; "
                      f"end to end {base:.0f} MB/s")
                print(f"ratio sapari-nb / boto3: parts {base_parts / (t2 - t1):.2f}, "
                      f"end to end {ours / base:.2f}")
        finally:
            if srv is not None:
                srv.stop()
            moto.terminate()
            try:
                moto.wait(10)
            except subprocess.TimeoutExpired:
                moto.kill()
                moto.wait()


if __name__ == "__main__":
    main()

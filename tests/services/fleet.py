"""Test support for the fleet: real OS processes (``sapari-nb serve`` / ``worker``), a private
PostgreSQL database, a private redis-server that a test may kill, free ports.

Every process logs to a file (a full pipe would block it); failures quote the log's tail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sapari_nb.cli", *args]


@contextmanager
def pg_database(prefix: str = "sapari_fleet") -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Proc:
    """One OS process of the fleet, logging to ``log``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.name} log ---\n" + "\n".join(lines[-n:])

    def kill(self) -> None:
        """SIGKILL: a crash, nothing cleaned up."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT (a graceful stop), then SIGKILL if it does not end in ``timeout``."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Api(Proc):
    """``sapari-nb serve`` on its own port (no embedded workers unless asked)."""

    def __init__(self, name: str, env: dict[str, str], data_dir: Path, log: Path,
                 port: int | None = None, workers: int = 0) -> None:
        self.port = port or free_port()
        super().__init__(name, cli("serve", "--port", str(self.port), "--workers", str(workers),
                                   "--data-dir", str(data_dir)), env, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> Api:
        deadline = time.monotonic() + timeout
        while True:
            assert self.alive(), f"{self.name} exited\n{self.tail()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{self.name} did not come up\n{self.tail()}"
            time.sleep(0.1)


def worker(name: str, env: dict[str, str], data_dir: Path, log: Path, threads: int = 2,
           *extra: str) -> Proc:
    return Proc(name, cli("worker", "--workers", str(threads), "--data-dir", str(data_dir),
                          *extra), env, log)


def service_env(**settings: str) -> dict[str, str]:
    """This environment plus ``SAPARI_<NAME>`` for each setting; unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAPARI_")
           or k in ("SAPARI_REQUIRE_SERVICES",)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({f"SAPARI_{k.upper()}": v for k, v in settings.items()})
    return env


class RedisServer:
    """A private redis-server on a free port: a test can kill it and start it again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

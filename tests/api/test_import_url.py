"""Import from URL against real HTTP servers on loopback: the guard, size and type checks.

The media server listens on 127.0.0.2 (a loopback alias), which the job server is told to
allow (``import_allow_networks``); everything else on loopback stays forbidden, so a
redirect from the allowed server to 127.0.0.1 or to the metadata address is a real refusal.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import pytest

from sapari_nb import Client
from sapari_nb.errors import JobFailed, SapariError
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth

from ..conftest import need_service, new_user_client, start_server, stored_bytes

ALLOWED_HOST = "127.0.0.2"
WAIT = 120.0


class _Media(BaseHTTPRequestHandler):
    """Serves the talk and every kind of bad answer an import must refuse."""

    talk: bytes = b""
    limit: int = 0
    hits: list[str] = []

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, body: bytes, ctype: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        port = self.server.server_address[1]
        if self.path == "/talk.mp4":
            self._send(self.talk, "video/mp4")
        elif self.path == "/go/talk":
            self._redirect("/talk.mp4")
        elif self.path == "/go/loopback":
            self._redirect(f"http://127.0.0.1:{port}/talk.mp4")
        elif self.path == "/go/metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
        elif self.path.startswith("/go/loop"):
            n = int(self.path.rsplit("/", 1)[-1]) if self.path.count("/") == 3 else 0
            self._redirect(f"/go/loop/{n + 1}")
        elif self.path == "/big-chunked":
            # No Content-Length: only counting while streaming can catch it.
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = self.talk[:65536]
            sent = 0
            try:
                while sent < 4 * self.limit:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    sent += len(chunk)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the importer hung up once past its limit: what we want
        elif self.path == "/big-declared.mp4":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(10 * self.limit))
            self.end_headers()
        elif self.path == "/slow.mp4":
            # Real media, dribbled out: long enough to be cancelled mid-download.
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(self.talk)))
            self.end_headers()
            try:
                for i in range(0, len(self.talk), 8192):
                    self.wfile.write(self.talk[i:i + 8192])
                    self.wfile.flush()
                    time.sleep(0.1)
                self.hits.append("/slow.mp4 complete")
            except (BrokenPipeError, ConnectionResetError):
                self.hits.append("/slow.mp4 cut")
        elif self.path == "/page.html":
            self._send(b"<!DOCTYPE html><html><body>Watch my talk!</body></html>", "text/html")
        elif self.path == "/disguised.mp4":  # an error page sent as a binary download
            self._send(b"<html><body>403 Forbidden</body></html>" * 20,
                       "application/octet-stream")
        elif self.path == "/noise.mp4":  # binary, but no container PyAV can read
            self._send(os.urandom(200_000), "video/mp4")
        else:
            self._send(b"not found", "text/plain", 404)


def _serve(host: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer((host, 0), _Media)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    return httpd, t


@pytest.fixture(scope="module")
def media_servers(talk: tuple[Path, TalkTruth]) -> Iterator[dict[str, str]]:
    _Media.talk = talk[0].read_bytes()
    _Media.limit = len(_Media.talk) + 50_000
    servers = [_serve(ALLOWED_HOST), _serve("127.0.0.1")]
    yield {"allowed": f"http://{ALLOWED_HOST}:{servers[0][0].server_address[1]}",
           "loopback": f"http://127.0.0.1:{servers[1][0].server_address[1]}"}
    for httpd, t in servers:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory,
            media_servers: dict[str, str]) -> Iterator[EmbeddedServer]:
    srv = start_server(tmp_path_factory.mktemp("import"), transcriber="none",
                       preview_artifacts=False, import_allow_networks=[f"{ALLOWED_HOST}/32"],
                       max_upload_bytes=_Media.limit, import_timeout=10.0)
    yield srv
    srv.stop()


@pytest.fixture
def gc(guarded: EmbeddedServer) -> Iterator[Client]:
    with Client(guarded.url, guarded.token, progress=False) as c:
        yield c


def _failure(c: Client, url: str) -> str:
    """Import ``url``; it must fail in the worker; the ClipFailed reason is returned."""
    project = c.create_project("refused")
    after = c.cursor()
    out = c.import_url(project.id, url)
    assert out.clip.status == "importing"
    with pytest.raises(JobFailed) as e:
        c.wait_clip(out.clip, after=after, timeout=WAIT)
    clip = c.clip(out.clip.id)
    assert clip.status == "failed" and clip.error == e.value.detail
    assert c.job(out.job_id).status == "failed"
    return e.value.detail


def _duration(path: Path) -> float:
    with av.open(str(path)) as f:
        return float(f.duration or 0) / av.time_base


def test_import_follows_a_redirect_and_processes(gc: Client, media_servers: dict[str, str],
                                                 talk: tuple[Path, TalkTruth]) -> None:
    project = gc.create_project("imported")
    after = gc.cursor()
    out = gc.import_url(project.id, media_servers["allowed"] + "/go/talk")
    ready = gc.wait_clip(out.clip, after=after, timeout=WAIT)
    assert ready.status == "ready"
    assert ready.size == talk[0].stat().st_size
    assert abs((ready.duration or 0) - talk[1].duration) < 0.1
    assert ready.origin is not None and ready.origin["final_url"].endswith("/talk.mp4")
    assert ready.origin["redirects"] == 1
    assert ready.filename == "talk.mp4"  # the URL's last part, its type from the bytes
    kinds = {a.kind for a in gc.artifacts(ready.id)}
    assert {"peaks", "levels", "audio"} <= kinds
    assert gc.me().used_bytes >= ready.size


def test_request_time_refusals(gc: Client, media_servers: dict[str, str]) -> None:
    project = gc.create_project("static")
    port = media_servers["loopback"].rsplit(":", 1)[1]
    cases = {
        f"http://127.0.0.1:{port}/talk.mp4": "loopback",
        "http://169.254.169.254/latest/meta-data/": "metadata",
        "http://[::1]/x.mp4": "loopback",
        "http://[::ffff:127.0.0.1]/x.mp4": "loopback",
        "http://10.0.0.8/x.mp4": "private",
        "http://0.0.0.0/x.mp4": "unspecified",
        "http://224.0.0.1/x.mp4": "multicast",
        f"http://localhost:{port}/talk.mp4": "loopback",
        "ftp://example.org/x.mp4": "only http:// and https://",
        "file:///etc/passwd": "only http:// and https://",
        "http://user:pw@example.org/x.mp4": "password",
    }
    before = len(gc.clips(project.id))
    for url, word in cases.items():
        with pytest.raises(SapariError) as e:
            gc.import_url(project.id, url)
        assert e.value.status == 422, (url, e.value)
        assert word in e.value.detail, (url, e.value.detail)
    assert len(gc.clips(project.id)) == before  # nothing was created


@pytest.mark.parametrize(("name", "answers", "words"), [
    ("loop.test", ["127.0.0.1"], ["resolves to 127.0.0.1", "loopback"]),
    ("meta.test", ["169.254.169.254"], ["metadata"]),
    ("v6.test", ["::1"], ["resolves to ::1", "loopback"]),
    # One public and one private answer: refused, or a retry could land on the private one.
    ("mixed.test", ["93.184.216.34", "10.0.0.1"], ["10.0.0.1", "private"]),
])
def test_names_resolving_to_forbidden_addresses_fail_in_the_worker(
        gc: Client, media_servers: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        name: str, answers: list[str], words: list[str]) -> None:
    import socket

    real = socket.getaddrinfo

    def fake(host: str, port: object, *a: object, **k: object) -> list:  # type: ignore[type-arg]
        if host == name:  # the embedded worker runs in this process: it sees this resolver
            fam = {4: socket.AF_INET, 6: socket.AF_INET6}
            return [(fam[6 if ":" in ip else 4], socket.SOCK_STREAM, 6, "",
                     (ip, port) if ":" not in ip else (ip, port, 0, 0)) for ip in answers]
        return real(host, port, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    before = len(_Media.hits)
    reason = _failure(gc, f"http://{name}:{media_servers['allowed'].rsplit(':', 1)[1]}/talk.mp4")
    for w in words:
        assert w in reason, (name, reason)
    assert len(_Media.hits) == before  # no request was sent anywhere


def test_the_machines_own_name_is_refused(gc: Client, media_servers: dict[str, str]) -> None:
    """No fake resolver: the host's own name (loopback in /etc/hosts here) is refused."""
    import socket

    host = socket.gethostname()
    addr = socket.getaddrinfo(host, 80)[0][4][0]
    if not addr.startswith("127."):
        pytest.skip(f"{host} resolves to {addr}, not loopback, on this machine")
    port = media_servers["loopback"].rsplit(":", 1)[1]
    reason = _failure(gc, f"http://{host}:{port}/talk.mp4")
    assert f"resolves to {addr}" in reason and "loopback" in reason


@pytest.mark.parametrize(("path", "words"), [
    ("/go/loopback", ["redirect", "127.0.0.1", "loopback"]),
    ("/go/metadata", ["redirect", "169.254.169.254", "metadata"]),
    ("/go/loop", ["more than 5"]),
    ("/big-chunked", ["sent more than the largest upload accepted (0.5 MiB)", "stopped"]),
    ("/big-declared.mp4", ["is 4.7 MiB, larger than the largest upload accepted (0.5 MiB)"]),
    ("/page.html", ["text/html", "not a video or audio file"]),
    ("/disguised.mp4", ["text", "<html>", "not a video or audio file"]),
    ("/noise.mp4", ["not a video or audio file"]),
    ("/missing.mp4", ["404"]),
])
def test_worker_refusals(gc: Client, media_servers: dict[str, str], path: str,
                         words: list[str]) -> None:
    before = len(_Media.hits)
    reason = _failure(gc, media_servers["allowed"] + path)
    print(path, "->", reason)
    for w in words:
        assert w in reason, (path, reason)
    # Loopback was never asked: the refused hop is checked before it is requested.
    assert all(not h.startswith("/talk") for h in _Media.hits[before:]), _Media.hits[before:]


def test_quota_bounds_the_download(guarded: EmbeddedServer,
                                   media_servers: dict[str, str]) -> None:
    from sapari_server.db.models import User

    with new_user_client(guarded, "import-small-quota") as c:
        rt = guarded.app.state.runtime
        with rt.sync_session() as s, s.begin():
            user = s.get(User, c.me().id)
            assert user is not None
            user.quota_bytes = len(_Media.talk) // 2  # less than the file
        # Declared too big: refused before a byte is read.
        reason = _failure(c, media_servers["allowed"] + "/talk.mp4")
        assert "larger than what is left of your quota" in reason, reason
        # Not declared: counted while streaming and cut off at the quota.
        reason = _failure(c, media_servers["allowed"] + "/big-chunked")
        assert "sent more than what is left of your quota" in reason and "stopped" in reason
        assert c.me().used_bytes == 0  # nothing stored, nothing counted


def test_cancel_stops_the_download(gc: Client, media_servers: dict[str, str]) -> None:
    project = gc.create_project("cancelled")
    after = gc.cursor()
    out = gc.import_url(project.id, media_servers["allowed"] + "/slow.mp4")
    gc.wait_for(lambda e: e.type == "JobProgress" and e.payload.get("job_id") == out.job_id
                and e.payload.get("progress", 0) > 0, project_id=project.id, after=after,
                timeout=WAIT)
    assert gc.cancel(out.job_id).status == "cancelled"
    with pytest.raises(JobFailed, match="cancelled by the user"):
        gc.wait_clip(out.clip, after=after, timeout=WAIT)
    deadline = time.monotonic() + 30
    while "/slow.mp4 cut" not in _Media.hits and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "/slow.mp4 cut" in _Media.hits  # the worker hung up; it did not read on
    assert "/slow.mp4 complete" not in _Media.hits
    assert gc.clip(out.clip.id).size is None  # nothing stored, nothing counted


@pytest.mark.services
def test_import_on_postgresql(tmp_path: Path, media_servers: dict[str, str],
                              talk: tuple[Path, TalkTruth]) -> None:
    """The same job on PostgreSQL (the fleet's database): quota lock, fenced finish, FKs."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    from ..services.fleet import pg_database

    with pg_database("sapari_import") as url:
        srv = start_server(tmp_path / "pg", transcriber="none", preview_artifacts=False,
                           database_url=url, import_allow_networks=[f"{ALLOWED_HOST}/32"],
                           max_upload_bytes=_Media.limit)
        try:
            with Client(srv.url, srv.token, progress=False) as c:
                project = c.create_project("pg import")
                after = c.cursor()
                out = c.import_url(project.id, media_servers["allowed"] + "/talk.mp4")
                ready = c.wait_clip(out.clip, after=after, timeout=WAIT)
                assert ready.status == "ready" and ready.size == len(_Media.talk)
                reason = _failure(c, media_servers["allowed"] + "/go/metadata")
                assert "metadata" in reason
                edited = c.edit_asset(ready.id, trim=(0.5, 2.5), loudness_lufs=-20.0)
                new = c.wait_clip(edited.clip, timeout=WAIT)
                assert new.status == "ready" and abs((new.duration or 0) - 2.0) < 0.05
        finally:
            srv.stop()


def test_allow_private_setting_lets_loopback_through(
        tmp_path: Path, media_servers: dict[str, str], talk: tuple[Path, TalkTruth]) -> None:
    srv = start_server(tmp_path / "open", transcriber="none", preview_artifacts=False,
                       import_allow_private=True)
    try:
        with Client(srv.url, srv.token, progress=False) as c:
            project = c.create_project("open")
            after = c.cursor()
            out = c.import_url(project.id, media_servers["loopback"] + "/talk.mp4",
                               filename="talk from loopback.mp4")
            ready = c.wait_clip(out.clip, after=after, timeout=WAIT)
            assert ready.filename == "talk from loopback.mp4"
            dest = tmp_path / "back.mp4"
            # The stored source is byte-identical to what was served.
            dest.write_bytes(stored_bytes(srv, ready.id))
            assert dest.read_bytes() == talk[0].read_bytes()
            assert abs(_duration(dest) - talk[1].duration) < 0.1
    finally:
        srv.stop()


# -- the fetcher itself over TLS: connect to the vetted IP, verify the certificate by name ----


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "media.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("media.test"),
                x509.IPAddress(ipaddress.ip_address(ALLOWED_HOST))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _HostEcho(_Media):
    hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.hosts.append(self.headers.get("Host", ""))
        super().do_GET()


def test_https_connects_to_the_vetted_address_and_checks_the_name(
        tmp_path: Path, media_servers: dict[str, str], talk: tuple[Path, TalkTruth],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import ssl

    from sapari_server.net import ssrf
    from sapari_server.net.fetch import ImportRefused, fetch_to_file

    pytest.importorskip("cryptography")
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer((ALLOWED_HOST, 0), _HostEcho)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    port = httpd.server_address[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    policy = ssrf.Policy.from_settings(False, [f"{ALLOWED_HOST}/32"])
    # "media.test" resolves (once) to the allowed address; anything else resolves as usual.
    real = socket.getaddrinfo
    lookups: list[str] = []

    def fake(host: str, *a: object, **k: object) -> list:  # type: ignore[type-arg]
        if host == "media.test":
            lookups.append(host)
            return real(ALLOWED_HOST, *a, **k)  # type: ignore[arg-type]
        if host == "evil.test":  # a name that points at the metadata service
            return real("169.254.169.254", *a, **k)  # type: ignore[arg-type]
        return real(host, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    try:
        got = fetch_to_file(f"https://media.test:{port}/talk.mp4", tmp_path / "a.mp4",
                            limit=10**8, limit_reason="the test limit", policy=policy,
                            verify=client_ctx)
        assert (tmp_path / "a.mp4").read_bytes() == talk[0].read_bytes()
        assert got.sniffed == ".mp4" and got.size == len(_Media.talk)
        # One lookup, then the connection went to that address; the name travelled in the
        # Host header and the certificate was checked against it.
        assert lookups == ["media.test"]
        assert _HostEcho.hosts[-1] == f"media.test:{port}"
        # A certificate for another name is refused (the IP is right, the name is not).
        with pytest.raises(ImportRefused, match="could not download"):
            fetch_to_file(f"https://media.test:{port}/talk.mp4", tmp_path / "b.mp4",
                          limit=10**8, limit_reason="x", policy=policy,
                          verify=ssl.create_default_context())
        with pytest.raises(ImportRefused, match="metadata"):
            fetch_to_file("https://evil.test/x.mp4", tmp_path / "c.mp4", limit=10**8,
                          limit_reason="x", policy=policy, verify=client_ctx)
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)

"""Export mail through a real SMTP server on loopback (aiosmtpd): opt-in, completion, failure,
opted-out users, and an SMTP server that is down (the export must not care)."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from sapari_nb import Client
from sapari_nb.errors import JobFailed, SapariError
from sapari_server.db.models import Job
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth

from ..conftest import need_service, new_user_client, start_server

WAIT = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """What the SMTP server received, as parsed messages with their envelope recipients."""

    port: int
    mails: list[tuple[list[str], Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.mails.append((list(envelope.rcpt_tos),
                               email.message_from_bytes(envelope.content)))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for rcpt, m in self.mails if address in rcpt]

    def wait_for(self, address: str, count: int, timeout: float = 60.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.to(address)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{address} got {len(self.to(address))} mail(s), "
                             f"expected {count}")


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    box = Inbox(_free_port())
    ctl = Controller(box, hostname="127.0.0.1", port=box.port)
    ctl.start()
    yield box
    ctl.stop()


@pytest.fixture(scope="module")
def mail_srv(tmp_path_factory: pytest.TempPathFactory, inbox: Inbox) -> Iterator[EmbeddedServer]:
    srv = start_server(tmp_path_factory.mktemp("mail"), transcriber="none",
                       preview_artifacts=False, smtp_host="127.0.0.1", smtp_port=inbox.port,
                       smtp_tls="none", smtp_sender="sapari@test.example")
    yield srv
    srv.stop()


def _body(msg: Message) -> str:
    part = msg.get_body(("plain",)) if hasattr(msg, "get_body") else msg  # type: ignore[attr-defined]
    payload = (part or msg).get_payload(decode=True)
    return payload.decode() if isinstance(payload, bytes) else str(payload)


def _export_ok(c: Client, talk: Path) -> str:
    project = c.create_project("mailed talk")
    after = c.cursor()
    c.wait_clip(c.upload(project.id, talk), after=after, timeout=WAIT)
    after = c.cursor()
    exp = c.export(project.id)
    assert c.wait_export(exp, after=after, timeout=WAIT).status == "succeeded"
    return exp.id


def _export_failing(c: Client) -> str:
    project = c.create_project("empty")  # no clips: the render fails with a reason
    after = c.cursor()
    exp = c.export(project.id)
    with pytest.raises(JobFailed):
        c.wait_export(exp, after=after, timeout=WAIT)
    return exp.id


def _mail_jobs(srv: EmbeddedServer, export_id: str) -> list[Job]:
    rt = srv.app.state.runtime
    with rt.sync_session() as s:
        return list(s.scalars(select(Job).where(Job.kind == "send_email",
                                                Job.target_id == export_id)))


def test_opted_in_user_gets_mail_on_completion_and_on_failure(
        mail_srv: EmbeddedServer, inbox: Inbox, talk: tuple[Path, TalkTruth]) -> None:
    with new_user_client(mail_srv, "mail-in") as c:
        me = c.set_email("in@example.org", notify=True)
        assert me.email == "in@example.org" and me.notify_email is True

        ok = _export_ok(c, talk[0])
        [mail] = inbox.wait_for("in@example.org", 1)
        assert mail["From"] == "sapari@test.example" and mail["To"] == "in@example.org"
        assert "is ready" in mail["Subject"] and "mailed talk" in mail["Subject"]
        body = _body(mail)
        assert ok in body
        # The link in the mail downloads the export itself.
        url = next(w for w in body.split() if w.startswith("http"))
        r = httpx.get(url, timeout=30)
        assert r.status_code == 200 and len(r.content) == c.export_status(ok).size

        failed = _export_failing(c)
        mails = inbox.wait_for("in@example.org", 2)
        assert "failed" in mails[1]["Subject"]
        text = _body(mails[1])
        assert failed in text and "no clips to render" in text
        # One mail job per outcome, each succeeded; the exports' results are as they were.
        # (The mail is sent before its job commits "succeeded": give that commit a moment.)
        for exp_id in (ok, failed):
            deadline = time.monotonic() + 10
            while ([j.status for j in _mail_jobs(mail_srv, exp_id)] != ["succeeded"]
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            assert [j.status for j in _mail_jobs(mail_srv, exp_id)] == ["succeeded"]
        assert c.export_status(ok).status == "succeeded"
        assert c.export_status(failed).status == "failed"


def test_opted_out_users_get_no_mail(mail_srv: EmbeddedServer, inbox: Inbox,
                                     talk: tuple[Path, TalkTruth]) -> None:
    with new_user_client(mail_srv, "mail-out") as out, \
            new_user_client(mail_srv, "mail-witness") as witness:
        out.set_email("out@example.org")  # an address, but no opt-in
        ok = _export_ok(out, talk[0])
        failed = _export_failing(out)
        # A later opted-in export's mail arriving shows the queue has moved past them.
        witness.set_email("witness@example.org", notify=True)
        _export_failing(witness)
        inbox.wait_for("witness@example.org", 1)
        assert inbox.to("out@example.org") == []
        assert _mail_jobs(mail_srv, ok) == [] and _mail_jobs(mail_srv, failed) == []
        # Opting out again after opting in also stops it.
        witness.set_email(notify=False)
        _export_failing(witness)
        _export_failing(out)
        time.sleep(1.0)
        assert len(inbox.to("witness@example.org")) == 1


def test_me_patch_checks_its_input(mail_srv: EmbeddedServer, client: Client) -> None:
    with new_user_client(mail_srv, "mail-bad") as c:
        for bad in ("not-an-address", "a@b@c.org", "x@example.org\r\nBcc: all@example.org"):
            with pytest.raises(SapariError) as e:
                c.set_email(bad)
            assert e.value.status == 422, bad
        with pytest.raises(SapariError) as e:
            c.set_email(notify=True)  # no address yet
        assert e.value.status == 422 and "set an email address" in e.value.detail
        me = c.set_email("ok@example.org", notify=True)
        assert me.notify_email
        me = c.set_email("")  # removing the address also stops the mail
        assert me.email is None and me.notify_email is False
    # A server without SMTP says so instead of accepting an opt-in it cannot honour.
    with pytest.raises(SapariError) as e:
        client.set_email("someone@example.org", notify=True)
    assert e.value.status == 409 and "SAPARI_SMTP_HOST" in e.value.detail


def test_smtp_down_does_not_fail_the_export(tmp_path: Path,
                                            talk: tuple[Path, TalkTruth]) -> None:
    srv = start_server(tmp_path / "nosmtp", transcriber="none", preview_artifacts=False,
                       smtp_host="127.0.0.1", smtp_port=_free_port(), smtp_tls="none",
                       smtp_timeout=5.0)
    try:
        with Client(srv.url, srv.token, progress=False) as c:
            c.set_email("down@example.org", notify=True)
            ok = _export_ok(c, talk[0])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                jobs = _mail_jobs(srv, ok)
                if jobs and jobs[0].status == "failed":
                    break
                time.sleep(0.1)
            [job] = _mail_jobs(srv, ok)
            assert job.status == "failed"
            assert "could not send the mail" in (job.error or "") and "down@example.org" in \
                (job.error or "")
            exp = c.export_status(ok)
            assert exp.status == "succeeded" and exp.error is None
            assert len(c.signed_bytes(c.download_link(ok).url)) == exp.size
    finally:
        srv.stop()


@pytest.mark.services
def test_mail_on_postgresql(tmp_path: Path, inbox: Inbox) -> None:
    """The failure mail is queued after the failure commits on PostgreSQL too."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    from ..services.fleet import pg_database

    with pg_database("sapari_mail") as url:
        srv = start_server(tmp_path / "pg", transcriber="none", preview_artifacts=False,
                           database_url=url, smtp_host="127.0.0.1", smtp_port=inbox.port,
                           smtp_tls="none")
        try:
            with Client(srv.url, srv.token, progress=False) as c:
                c.set_email("pg@example.org", notify=True)
                failed = _export_failing(c)
                [mail] = inbox.wait_for("pg@example.org", 1)
                assert failed in _body(mail)
                assert [j.status for j in _mail_jobs(srv, failed)] == ["succeeded"]
        finally:
            srv.stop()


# -- the SMTP client itself: STARTTLS, implicit TLS, login ---------------------------------


def _cert(tmp: Path) -> tuple[Path, Path]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_smtp_client_tls_and_login(tmp_path: Path, tls: str) -> None:
    import smtplib
    import ssl

    from aiosmtpd.smtp import AuthResult, LoginPassword

    from sapari_server.notify import smtp
    from sapari_server.settings import Settings

    pytest.importorskip("cryptography")
    cert, key = _cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    def auth(server: Any, session: Any, envelope: Any, mechanism: str,
             data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"mailer" \
            and data.password == b"s3cret"
        return AuthResult(success=ok)

    box = Inbox(_free_port())
    tls_kw: dict[str, Any] = ({"tls_context": server_ctx, "require_starttls": True}
                              if tls == "starttls" else
                              # aiosmtpd counts only STARTTLS as TLS for AUTH; this socket
                              # is TLS from the first byte.
                              {"ssl_context": server_ctx, "auth_require_tls": False})
    ctl = Controller(box, hostname="127.0.0.1", port=box.port, authenticator=auth,
                     auth_required=True, **tls_kw)
    ctl.start()
    try:
        settings = Settings(data_dir=tmp_path / "d", smtp_host="127.0.0.1",
                            smtp_port=box.port, smtp_tls=tls, smtp_username="mailer",
                            smtp_password="s3cret", smtp_ca_file=str(cert),
                            smtp_sender="sapari@test.example", smtp_timeout=3.0)
        smtp.send(settings, smtp.build_message(settings, "tls@example.org", "hello", "body"))
        [mail] = box.wait_for("tls@example.org", 1, timeout=10)
        assert mail["Subject"] == "hello" and _body(mail).strip() == "body"
        # A wrong password, an untrusted certificate, no TLS where it is required: errors
        # smtplib/ssl raise (the send_email job turns them into its readable failure).
        # (aiosmtpd answers a failed login unevenly: refusal or hang-up; either is an error)
        with pytest.raises((smtplib.SMTPException, OSError)):
            smtp.send(settings.model_copy(update={"smtp_password": "wrong"}),
                      smtp.build_message(settings, "tls@example.org", "x", "x"))
        with pytest.raises(ssl.SSLError):
            smtp.send(settings.model_copy(update={"smtp_ca_file": ""}),
                      smtp.build_message(settings, "tls@example.org", "x", "x"))
        if tls == "starttls":
            with pytest.raises(smtplib.SMTPException):
                smtp.send(settings.model_copy(update={"smtp_tls": "none"}),
                          smtp.build_message(settings, "tls@example.org", "x", "x"))
        assert len(box.to("tls@example.org")) == 1
    finally:
        ctl.stop()

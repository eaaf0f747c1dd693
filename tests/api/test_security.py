"""Signed URLs refuse forgery, expiry and other keys; users never see each other's data."""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlparse, urlunparse

import httpx
import pytest

from sapari_nb import Client, SapariError
from sapari_server.db.models import Clip
from sapari_server.embedded import EmbeddedServer
from sapari_server.storage.base import StorageError
from sapari_server.storage.signing import sign
from sapari_testkit.generate import TalkTruth


def _with_params(url: str, **changes: str) -> str:
    u = urlparse(url)
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    q.update(changes)
    return urlunparse(u._replace(query=urlencode(q)))


def _with_key(url: str, key: str) -> str:
    u = urlparse(url)
    return urlunparse(u._replace(path=f"/storage/{key}"))


def test_signed_put_refuses_forged_expired_and_other_key(client: Client,
                                                         server: EmbeddedServer) -> None:
    project = client.create_project("sig")
    ticket = client.presign(project.id, "a.mp4", 5)
    other = client.presign(project.id, "b.mp4", 5)
    url = ticket.upload_url
    sig = parse_qs(urlparse(url).query)["signature"][0]
    forged = _with_params(url, signature=("0" if sig[0] != "0" else "1") + sig[1:])
    later = _with_params(url, expires=str(int(parse_qs(urlparse(url).query)["expires"][0]) + 999))
    bigger = _with_params(url, max_size="999999")
    other_key = _with_key(url, urlparse(other.upload_url).path.removeprefix("/storage/"))
    for bad in (forged, later, bigger, other_key):
        r = httpx.put(bad, content=b"hello")
        assert r.status_code == 403, (bad, r.text)
        assert "signature" in r.json()["detail"]
    storage = server.app.state.runtime.storage
    expired = storage.presign_put(storage_key(url), max_size=5, expires_in=-5)
    r = httpx.put(expired, content=b"hello")
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    # A GET URL cannot be used to PUT, nor the reverse.
    get_url = storage.presign_get(storage_key(url))
    assert httpx.put(get_url.replace("signature=", "max_size=5&signature="),
                     content=b"hello").status_code == 403
    assert httpx.get(url).status_code in (403, 422)
    # Nothing was written by any refused request; the genuine URL still works.
    assert storage.head(storage_key(url)) is None
    assert httpx.put(url, content=b"hello").status_code == 200
    r = httpx.get(get_url)
    assert r.status_code == 200 and r.content == b"hello"
    assert httpx.get(_with_params(get_url, signature="f" * 64)).status_code == 403


def storage_key(url: str) -> str:
    return urlparse(url).path.removeprefix("/storage/")


def _raw(port: int, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request with the target sent byte for byte (httpx would normalise ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _tree(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and skip not in p.parents and not p.name.startswith("sapari.db")
            and not p.name.startswith("queue.db")}


TRAVERSALS = ["../{n}", "..%2F{n}", "%2e%2e/{n}", "%2e%2e%2f{n}", "%2E%2E%2F{n}",
              "users/..%2F..%2F{n}", "users/%2e%2e/%2e%2e/{n}", "a/../../{n}", "./../{n}",
              "..%5C{n}", "%2F..%2F{n}", "a%00/../../{n}"]


def test_path_traversal_reads_and_writes_nothing_outside(client: Client,
                                                         server: EmbeddedServer) -> None:
    rt = server.app.state.runtime
    storage = rt.storage
    data_dir: Path = rt.settings.data_dir
    objects: Path = storage.root
    assert objects.parent == data_dir
    sentinel = data_dir / "sentinel.txt"
    sentinel.write_bytes(b"SENTINEL-do-not-serve")
    (data_dir / "victim.txt").write_bytes(b"VICTIM-original")
    # A clip waiting for its bytes whose key we point at each traversal in turn: the
    # signature and the "a live row owns this key" checks then pass, as they would if a
    # key were ever built wrongly, and only the storage path guard stands in the way.
    ticket = client.presign(client.create_project("traversal").id, "t.mp4", 9)
    before = _tree(data_dir, objects)
    expires = int(time.time()) + 600
    for form in TRAVERSALS:
        for name, method in (("sentinel.txt", "GET"), ("victim.txt", "PUT")):
            raw = form.format(n=name)
            key = unquote(raw)  # what the server sees once the path is decoded
            with rt.sync_session() as s, s.begin():
                s.get(Clip, ticket.clip.id).object_key = key
            size = 9
            sig = sign(storage.secret, method, key, expires, size if method == "PUT" else None)
            query = f"expires={expires}&signature={sig}" + (
                f"&max_size={size}" if method == "PUT" else "")
            status, body = _raw(server.port, method, f"/storage/{raw}?{query}",
                                b"OVERWRITE" if method == "PUT" else b"")
            assert status in (400, 403, 404, 409, 422), (method, raw, status, body[:200])
            assert b"SENTINEL" not in body and b"VICTIM" not in body, (method, raw)
    assert sentinel.read_bytes() == b"SENTINEL-do-not-serve"
    assert (data_dir / "victim.txt").read_bytes() == b"VICTIM-original"
    after = _tree(data_dir, objects)
    assert after == before, set(after) ^ set(before)
    assert not list(data_dir.parent.glob("*.part")) and not list(data_dir.glob("*.part"))


def test_storage_path_stays_inside_root(server: EmbeddedServer, tmp_path: Path) -> None:
    storage = server.app.state.runtime.storage
    outside = tmp_path / "outside"
    outside.mkdir()
    link = storage.root / "escape"
    link.symlink_to(outside, target_is_directory=True)
    try:
        for key in ("../x", "a/../../x", "escape/x", "", "/etc/passwd", "a\\..\\x", "a\0b"):
            with pytest.raises(StorageError):
                storage.path(key)
    finally:
        link.unlink()


def test_other_user_gets_404_everywhere(client: Client, other_client: Client,
                                        talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    project = client.create_project("mine")
    after = client.cursor()
    clip = client.wait_clip(client.upload(project.id, src), after=after)
    run = client.wait_analysis(client.analyze(project.id), after=after)
    edit = client.edits(project.id)[0]
    exp = client.wait_export(client.export(project.id, apply="accepted_and_proposed"),
                             after=after)
    b = other_client
    calls = [
        lambda: b.project(project.id),
        lambda: b.clip(clip.id),
        lambda: b.clips(project.id),
        lambda: b.artifacts(clip.id),
        lambda: b.analysis(run.id),
        lambda: b.edits(project.id),
        lambda: b.accept(edit.id),
        lambda: b.set_edits_status(project.id, "rejected"),
        lambda: b.add_edit(project.id, clip.id, 0.1, 0.2),
        lambda: b.export_status(exp.id),
        lambda: b.download(exp.id, "/tmp/never.mp4"),
        lambda: b.export(project.id),
        lambda: b.analyze(project.id),
        lambda: b.presign(project.id, "x.mp4", 10),
        lambda: b.confirm(clip.id),
        lambda: b.job(run.job_id),
        lambda: b.delete_project(project.id),
        lambda: next(b.events(project_id=project.id, after=0)),
    ]
    for call in calls:
        with pytest.raises(SapariError) as e:
            call()
        assert e.value.status == 404, e.value
    # B's own event stream carries none of A's events.
    assert client.cursor() > 0 and b.cursor() == 0
    assert client.edits(project.id)[0].status == edit.status
    assert b.projects() == []


def test_missing_or_bad_token_is_401(server: EmbeddedServer) -> None:
    assert httpx.get(server.url + "/projects").status_code == 401
    r = httpx.get(server.url + "/projects", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "invalid" in r.json()["detail"]

"""Signed storage URLs work only while a live row needs the object, and serve it safely."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import httpx

from sapari_nb import Client
from sapari_server.db.models import Clip
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth

from ..conftest import clip_key, new_user_client


def _key(url: str) -> str:
    return urlparse(url).path.removeprefix("/storage/")


def _with_params(url: str, **changes: str) -> str:
    u = urlparse(url)
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    q.update(changes)
    return urlunparse(u._replace(query=urlencode(q)))


def test_put_after_delete_is_refused(client: Client, server: EmbeddedServer) -> None:
    storage = server.app.state.runtime.storage
    project = client.create_project("put-after-delete")
    ticket = client.presign(project.id, "a.mp4", 1000)
    assert client.http.delete(f"/clips/{ticket.clip.id}").status_code == 204
    r = httpx.put(ticket.upload_url, content=b"x" * 1000)
    assert r.status_code == 409, r.text
    assert "presign" in r.json()["detail"]
    assert storage.head(_key(ticket.upload_url)) is None
    # The same after the whole project is deleted.
    ticket = client.presign(project.id, "b.mp4", 1000)
    client.delete_project(project.id)
    r = httpx.put(ticket.upload_url, content=b"x" * 1000)
    assert r.status_code == 409 and storage.head(_key(ticket.upload_url)) is None


def test_put_after_confirm_cannot_replace_source(client: Client, server: EmbeddedServer,
                                                 talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    storage = server.app.state.runtime.storage
    project = client.create_project("put-after-confirm")
    ticket = client.presign(project.id, src.name, src.stat().st_size)
    client.put_bytes(ticket, src)
    client.confirm(ticket.clip.id)
    r = httpx.put(ticket.upload_url, content=b"not the recording")
    assert r.status_code == 409, r.text
    assert "confirmed" in r.json()["detail"]
    with storage.open_read(_key(ticket.upload_url)) as f:
        assert f.read() == src.read_bytes()


def test_put_after_reservation_expired_is_refused(client: Client,
                                                  server: EmbeddedServer) -> None:
    rt = server.app.state.runtime
    project = client.create_project("put-expired")
    ticket = client.presign(project.id, "a.mp4", 1000)
    with rt.sync_session() as s, s.begin():
        clip = s.get(Clip, ticket.clip.id)
        clip.created_at -= timedelta(seconds=rt.settings.signed_url_ttl + 5)
    # Even a URL signed to live longer does not write past the reservation.
    url = rt.storage.presign_put(_key(ticket.upload_url), max_size=1000, expires_in=600)
    r = httpx.put(url, content=b"x" * 1000)
    assert r.status_code == 409, r.text
    assert rt.storage.head(_key(url)) is None


def test_landed_but_unconfirmed_bytes_count(server: EmbeddedServer) -> None:
    # A user of its own: the shared user's usage moves while other tests' jobs store files.
    with new_user_client(server, "landed") as client:
        project = client.create_project("landed")
        before = client.me().used_bytes
        ticket = client.presign(project.id, "a.mp4", 5000)
        assert client.me().used_bytes == before + 5000
        assert httpx.put(ticket.upload_url, content=b"x" * 3000).status_code == 200
        # Reserved 5000, 3000 landed: still 5000 while the reservation holds.
        assert client.me().used_bytes == before + 5000
        assert client.clip(ticket.clip.id).size == 3000


def test_get_signature_non_ascii_is_403(server: EmbeddedServer) -> None:
    for sig in ("%C3%A9", "%E2%82%AC" * 30, "%FF"):
        r = httpx.get(f"{server.url}/storage/a?expires=99999999999&signature={sig}")
        assert r.status_code == 403, (sig, r.status_code, r.text)
        assert "signature" in r.json()["detail"]
    r = httpx.put(f"{server.url}/storage/a?expires=99999999999&max_size=5&signature=%C3%A9",
                  content=b"hello")
    assert r.status_code == 403


def test_get_filename_is_signed_and_never_sets_type(client: Client,
                                                    server: EmbeddedServer) -> None:
    storage = server.app.state.runtime.storage
    project = client.create_project("filename")
    ticket = client.presign(project.id, "a.mp4", 5)
    assert httpx.put(ticket.upload_url, content=b"hello").status_code == 200
    key = _key(ticket.upload_url)
    url = storage.presign_get(key, filename="cut.mp4")
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"hello"
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["content-disposition"].startswith("attachment")
    assert "cut.mp4" in r.headers["content-disposition"]
    assert r.headers["x-content-type-options"] == "nosniff"
    # Swapping the name for one that would make a web page breaks the signature.
    r = httpx.get(_with_params(url, filename="evil.html"))
    assert r.status_code == 403 and "text/html" not in r.headers.get("content-type", "")
    # Even a name the server signed never picks the type: the key's extension does.
    r = httpx.get(storage.presign_get(key, filename="evil.html"))
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    # A source uploaded as .html is served as bytes, not as a page.
    page = client.presign(project.id, "page.html", 20)
    assert httpx.put(page.upload_url, content=b"<script>1</script>").status_code == 200
    r = httpx.get(storage.presign_get(_key(page.upload_url)))
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert "content-disposition" not in r.headers


def test_get_refused_once_rows_are_deleted(client: Client, server: EmbeddedServer,
                                           talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    storage = server.app.state.runtime.storage
    project = client.create_project("get-after-delete")
    after = client.cursor()
    clip = client.wait_clip(client.upload(project.id, src), after=after)
    arts = client.artifacts(clip.id)
    assert arts and all(httpx.get(a.url).status_code == 200 for a in arts[:2])
    source_url = storage.presign_get(clip_key(server, clip.id))
    assert httpx.get(source_url).status_code == 200
    assert client.http.delete(f"/clips/{clip.id}").status_code == 204
    for url in [source_url] + [a.url for a in arts]:
        r = httpx.get(url)
        assert r.status_code == 404, (url, r.status_code)
    # Restored: the same URLs work again (the bytes were never removed).
    assert client.http.post(f"/clips/{clip.id}/restore").status_code == 200
    assert httpx.get(source_url).status_code == 200
    assert all(httpx.get(a.url).status_code == 200 for a in arts)
    # A project delete stops them too.
    client.delete_project(project.id)
    assert httpx.get(source_url).status_code == 404
    assert all(httpx.get(a.url).status_code == 404 for a in arts)


"""Signed URLs refuse forgery, expiry and other keys; users never see each other's data."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import httpx
import pytest

from sapari_nb import Client, SapariError
from sapari_server.embedded import EmbeddedServer
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


def test_path_traversal_key_is_refused(client: Client, server: EmbeddedServer) -> None:
    storage = server.app.state.runtime.storage
    url = storage._url("GET", "../secret.key", 60)
    r = httpx.get(url.replace("/storage/..%2Fsecret.key", "/storage/../secret.key"))
    assert r.status_code in (400, 403, 404)
    assert "sap_" not in r.text and len(r.content) < 500


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

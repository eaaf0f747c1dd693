"""Multipart uploads on the local storage backend, through the real server and signed URLs.

Parts are small here (64 KiB) so a generated talk spans several of them; the S3 side of the
same flow runs against moto in tests/services/test_s3_storage.py.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import httpx
import pytest

from sapari_nb import Client
from sapari_nb.client import UploadIncomplete
from sapari_nb.errors import SapariError
from sapari_server.embedded import EmbeddedServer
from sapari_server.storage.local import STAGING
from sapari_testkit.generate import TalkTruth

from ..conftest import clip_key, start_server

PART = 64 * 1024


@pytest.fixture(scope="module")
def mp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    srv = start_server(tmp_path_factory.mktemp("multipart"), transcriber="none",
                       multipart_threshold=4 * PART, multipart_part_size=PART,
                       preview_artifacts=False)
    yield srv
    srv.stop()


@pytest.fixture
def mp_client(mp_server: EmbeddedServer) -> Iterator[Client]:
    with Client(mp_server.url, mp_server.token, progress=False) as c:
        yield c


def _with_params(url: str, **changes: str) -> str:
    u = urlparse(url)
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    q.update(changes)
    return urlunparse(u._replace(query=urlencode(q)))


def _blob(path: Path, size: int, seed: int = 1) -> Path:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    path.write_bytes(data[:size])
    return path


def _staging(srv: EmbeddedServer) -> Path:
    return srv.app.state.runtime.storage.root / STAGING


def _put_part(client: Client, clip_id: str, path: Path, n: int) -> str:
    part = client.part_urls(clip_id, [n]).parts[0]
    with open(path, "rb") as f:
        f.seek(part.offset)
        r = httpx.put(part.url, content=f.read(part.size))
    assert r.status_code == 200, r.text
    return r.headers["etag"].strip('"')


def test_big_upload_goes_in_parts_and_processes(
        mp_client: Client, mp_server: EmbeddedServer, talk: tuple[Path, TalkTruth]) -> None:
    src = talk[0]
    size = src.stat().st_size
    assert size > 4 * PART, "the talk must span several parts for this test to mean anything"
    project = mp_client.create_project("multipart-flow")
    ticket = mp_client.presign(project.id, src.name, size)
    assert ticket.multipart is not None
    assert ticket.multipart.part_size == PART
    assert ticket.multipart.part_count == -(-size // PART)
    mp_client.put_bytes(ticket, src)
    status = mp_client.upload_parts(ticket.clip.id)
    assert status.missing == [] and len(status.uploaded) == ticket.multipart.part_count
    # Each part's ETag is the MD5 of its slice, as S3 makes it.
    data = src.read_bytes()
    assert status.uploaded[0].etag == hashlib.md5(data[:PART]).hexdigest()
    after = mp_client.cursor()
    clip = mp_client.confirm(ticket.clip.id)
    assert clip.status == "uploaded" and clip.size == size
    storage = mp_server.app.state.runtime.storage
    assert storage.path(ticket.upload_url.split("/storage/")[1].split("?")[0]) \
        .read_bytes() == data
    ready = mp_client.wait_clip(clip, after=after, timeout=120)
    assert ready.status == "ready" and ready.duration and ready.duration > 5
    # The staged parts are gone once joined.
    assert not any((_staging(mp_server)).rglob("*.*"))


def test_client_upload_retries_a_dropped_part(mp_client: Client, tmp_path: Path) -> None:
    src = _blob(tmp_path / "drop.mp4", 5 * PART + 123)
    project = mp_client.create_project("multipart-retry")
    real = mp_client._bare

    class DropsOnce(httpx.BaseTransport):
        """The first PUT of part 3 loses its connection; everything else is real HTTP."""

        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()
            self.dropped = 0
            self.parts: list[int] = []

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            n = request.url.params.get("part_number")
            if n is not None:
                self.parts.append(int(n))
                if n == "3" and not self.dropped:
                    self.dropped += 1
                    raise httpx.WriteError("connection reset by peer", request=request)
            return self.inner.handle_request(request)

    transport = DropsOnce()
    mp_client._bare = httpx.Client(transport=transport)
    try:
        clip = mp_client.upload(project.id, src)
    finally:
        mp_client._bare.close()
        mp_client._bare = real
    assert transport.dropped == 1
    assert sorted(transport.parts) == [1, 2, 3, 3, 4, 5, 6]
    assert clip.status == "uploaded" and clip.size == src.stat().st_size


def test_resume_sends_only_missing_parts(mp_client: Client, tmp_path: Path) -> None:
    src = _blob(tmp_path / "resume.mp4", 6 * PART, seed=2)
    project = mp_client.create_project("multipart-resume")
    ticket = mp_client.presign(project.id, src.name, src.stat().st_size)
    assert ticket.multipart is not None and ticket.multipart.part_count == 6
    for n in (1, 2, 4):
        _put_part(mp_client, ticket.clip.id, src, n)
    status = mp_client.upload_parts(ticket.clip.id)
    assert [u.part_number for u in status.uploaded] == [1, 2, 4]
    assert status.missing == [3, 5, 6]
    # Confirming now names what is missing instead of joining a broken file.
    with pytest.raises(SapariError) as e:
        mp_client.confirm(ticket.clip.id)
    assert e.value.status == 409 and "3, 5, 6" in e.value.detail
    sent: list[int] = []
    real = mp_client._put_part

    def spy(clip_id, upload_id, path, part, count):  # type: ignore[no-untyped-def]
        sent.append(part.part_number)
        return real(clip_id, upload_id, path, part, count)

    mp_client._put_part = spy  # type: ignore[method-assign]
    clip = mp_client.upload(project.id, src, resume=ticket.clip.id)
    assert sorted(sent) == [3, 5, 6]
    assert clip.status == "uploaded" and clip.size == src.stat().st_size
    # Resuming a finished upload does nothing more.
    assert mp_client.upload(project.id, src, resume=ticket.clip.id).status != "pending_upload"


def test_upload_incomplete_names_the_clip_to_resume(mp_client: Client, tmp_path: Path) -> None:
    src = _blob(tmp_path / "down.mp4", 5 * PART, seed=3)
    project = mp_client.create_project("multipart-down")
    real = mp_client._bare

    class StorageDown(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.params.get("part_number") == "2":
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.HTTPTransport().handle_request(request)

    mp_client._bare = httpx.Client(transport=StorageDown())
    import sapari_nb.client as client_mod

    old_sleep = client_mod.time.sleep
    client_mod.time.sleep = lambda s: None  # type: ignore[assignment]
    try:
        with pytest.raises(UploadIncomplete) as e:
            mp_client.upload(project.id, src)
    finally:
        client_mod.time.sleep = old_sleep  # type: ignore[assignment]
        mp_client._bare.close()
        mp_client._bare = real
    assert 2 in e.value.missing and "resume=" in str(e.value)
    clip = mp_client.upload(project.id, src, resume=e.value.clip_id)
    assert clip.status == "uploaded" and clip.size == src.stat().st_size


def test_bad_multipart_inputs_are_clear_4xx(mp_client: Client, tmp_path: Path) -> None:
    src = _blob(tmp_path / "bad.mp4", 4 * PART + 10, seed=4)
    size = src.stat().st_size
    project = mp_client.create_project("multipart-bad")
    ticket = mp_client.presign(project.id, src.name, size)
    assert ticket.multipart is not None and ticket.multipart.part_count == 5
    cid = ticket.clip.id
    http = mp_client.http
    # Part numbers outside the plan.
    r = http.post(f"/clips/{cid}/parts", json={"part_numbers": [0, 6]})
    assert r.status_code == 422, r.text
    r = http.post(f"/clips/{cid}/parts", json={"part_numbers": [6]})
    assert r.status_code == 422 and "1..5" in r.json()["detail"]
    r = http.post(f"/clips/{cid}/parts", json={"part_numbers": []})
    assert r.status_code == 422
    # Another upload id.
    r = http.post(f"/clips/{cid}/parts", json={"part_numbers": [1], "upload_id": "f" * 32})
    assert r.status_code == 409 and "presign again" in r.json()["detail"]
    # Signature: a part URL is bound to its part number, upload id and size.
    url = mp_client.part_urls(cid, [1]).parts[0].url
    chunk = src.read_bytes()[:PART]
    for bad in (_with_params(url, part_number="2"), _with_params(url, upload_id="0" * 32),
                _with_params(url, max_size=str(10 * PART)),
                _with_params(url, signature="0" * 64)):
        r = httpx.put(bad, content=chunk)
        assert r.status_code == 403, (bad, r.text)
        assert "signature" in r.json()["detail"]
    r = httpx.put(_with_params(url, part_number="x"), content=chunk)
    assert r.status_code == 422
    # More bytes than the part holds.
    r = httpx.put(url, content=chunk + b"x")
    assert r.status_code == 413, r.text
    # Confirm before any part arrived: says which parts are missing.
    r = http.post(f"/clips/{cid}/confirm", json={})
    assert r.status_code == 409 and "5 of 5 parts" in r.json()["detail"]
    etags = {n: _put_part(mp_client, cid, src, n) for n in range(1, 6)}
    # A wrong part count, a duplicate, a wrong ETag: refused, the upload stays resumable.
    few = [{"part_number": n, "etag": etags[n]} for n in range(1, 5)]
    r = http.post(f"/clips/{cid}/confirm", json={"parts": few})
    assert r.status_code == 422 and "5" in r.json()["detail"]
    dup = few + [{"part_number": 4, "etag": etags[4]}]
    r = http.post(f"/clips/{cid}/confirm", json={"parts": dup})
    assert r.status_code == 422
    wrong = few + [{"part_number": 5, "etag": "0" * 32}]
    r = http.post(f"/clips/{cid}/confirm", json={"parts": wrong})
    assert r.status_code == 409 and "ETag" in r.json()["detail"]
    r = http.post(f"/clips/{cid}/confirm", json={"upload_id": "a" * 32})
    assert r.status_code == 409
    r = http.post(f"/clips/{cid}/confirm", json={"parts": [{"part_number": 0, "etag": "x"}]})
    assert r.status_code == 422
    # A short part (a cut-off PUT) is not whole: confirm names it.
    part = mp_client.part_urls(cid, [2]).parts[0]
    assert httpx.put(part.url, content=chunk[:100]).status_code == 200
    r = http.post(f"/clips/{cid}/confirm", json={})
    assert r.status_code == 409 and "parts 2" in r.json()["detail"]
    etags[2] = _put_part(mp_client, cid, src, 2)
    ok = [{"part_number": n, "etag": f'"{etags[n]}"'} for n in range(1, 6)]
    r = http.post(f"/clips/{cid}/confirm", json={"parts": ok, "upload_id": ticket.multipart.upload_id})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == size
    # After the confirm: no more parts, no status.
    assert http.post(f"/clips/{cid}/parts", json={"part_numbers": [1]}).status_code == 409
    assert http.get(f"/clips/{cid}/parts").status_code == 409


def test_single_put_still_works_beside_multipart(mp_client: Client, mp_server: EmbeddedServer,
                                                 tmp_path: Path) -> None:
    """An older client PUTs the whole file to upload_url: the staged upload is dropped."""
    src = _blob(tmp_path / "single.mp4", 5 * PART, seed=5)
    project = mp_client.create_project("multipart-single")
    ticket = mp_client.presign(project.id, src.name, src.stat().st_size)
    assert ticket.multipart is not None
    _put_part(mp_client, ticket.clip.id, src, 1)
    assert httpx.put(ticket.upload_url, content=src.read_bytes()).status_code == 200
    clip = mp_client.confirm(ticket.clip.id)
    assert clip.size == src.stat().st_size
    storage = mp_server.app.state.runtime.storage
    key = ticket.upload_url.split("/storage/")[1].split("?")[0]
    assert storage.pending_multipart(key) == []
    # A small file, or multipart=False, is one PUT; parts of it are a clear 409.
    small = mp_client.presign(project.id, "small.mp4", 100)
    assert small.multipart is None
    r = mp_client.http.get(f"/clips/{small.clip.id}/parts")
    assert r.status_code == 409 and "upload_url" in r.json()["detail"]
    forced = mp_client.presign(project.id, "forced.mp4", 100, multipart=True)
    assert forced.multipart is not None and forced.multipart.part_count == 1


def test_part_put_after_delete_is_refused(mp_client: Client, tmp_path: Path) -> None:
    src = _blob(tmp_path / "gone.mp4", 5 * PART, seed=6)
    project = mp_client.create_project("multipart-deleted")
    ticket = mp_client.presign(project.id, src.name, src.stat().st_size)
    url = mp_client.part_urls(ticket.clip.id, [1]).parts[0].url
    assert mp_client.http.delete(f"/clips/{ticket.clip.id}").status_code == 204
    r = httpx.put(url, content=src.read_bytes()[:PART])
    assert r.status_code == 409 and "presign" in r.json()["detail"]


def test_stale_staged_uploads_are_swept(mp_server: EmbeddedServer) -> None:
    storage = mp_server.app.state.runtime.storage
    old = storage.create_multipart("users/x/projects/p/clips/c/source.mp4")
    folder = storage._uploads_of("users/x/projects/p/clips/c/source.mp4") / old
    os.utime(folder, (1, 1))
    storage.create_multipart("users/x/projects/p/clips/d/source.mp4")
    assert not folder.exists()
    assert storage.pending_multipart("users/x/projects/p/clips/c/source.mp4") == []


def test_a_single_part_upload_lands_whole(mp_client: Client, mp_server: EmbeddedServer,
                                          tmp_path: Path) -> None:
    src = _blob(tmp_path / "one.mp4", PART - 7, seed=7)
    project = mp_client.create_project("multipart-one")
    clip = mp_client.upload(project.id, src, multipart=True)
    assert clip.status == "uploaded" and clip.size == PART - 7
    key = next(p for p in mp_server.app.state.runtime.storage.root.rglob("source.mp4")
               if clip.id in str(p))
    assert key.read_bytes() == src.read_bytes()


def test_resume_with_a_changed_file_resends_the_changed_parts(
        mp_client: Client, mp_server: EmbeddedServer, tmp_path: Path) -> None:
    """Parts the storage holds are checked against the file: a part that differs goes again,
    so a resumed upload never splices two versions of a file."""
    src = _blob(tmp_path / "edit.mp4", 4 * PART + 5, seed=8)
    project = mp_client.create_project("multipart-changed")
    ticket = mp_client.presign(project.id, src.name, src.stat().st_size)
    for n in (1, 2, 3):
        _put_part(mp_client, ticket.clip.id, src, n)
    data = bytearray(src.read_bytes())
    data[PART + 10] ^= 0xFF  # part 2 changes, same size
    src.write_bytes(bytes(data))
    sent: list[int] = []
    real = mp_client._put_part

    def spy(clip_id, upload_id, path, part, count):  # type: ignore[no-untyped-def]
        sent.append(part.part_number)
        return real(clip_id, upload_id, path, part, count)

    mp_client._put_part = spy  # type: ignore[method-assign]
    clip = mp_client.upload(project.id, src, resume=ticket.clip.id)
    assert sorted(sent) == [2, 4, 5]
    root = mp_server.app.state.runtime.storage.root
    key = next(p for p in root.rglob("source.mp4") if clip.id in str(p))
    assert key.read_bytes() == bytes(data)


def test_gc_drops_an_abandoned_multipart_upload(mp_client: Client, mp_server: EmbeddedServer,
                                                tmp_path: Path) -> None:
    """A presigned multipart upload never confirmed: once its URLs lapsed, the hourly sweep
    drops its parts (no object was ever made, so nothing else would)."""
    from datetime import timedelta

    from sapari_server.db.base import utcnow
    from sapari_server.db.models import Clip
    from sapari_server.lifecycle.gc import collect

    rt = mp_server.app.state.runtime
    src = _blob(tmp_path / "abandoned.mp4", 5 * PART, seed=9)
    project = mp_client.create_project("multipart-abandoned")
    ticket = mp_client.presign(project.id, src.name, src.stat().st_size)
    _put_part(mp_client, ticket.clip.id, src, 1)
    key = clip_key(mp_server, ticket.clip.id)
    assert rt.storage.pending_multipart(key) == [ticket.multipart.upload_id]
    later = utcnow() + timedelta(days=rt.settings.retention_days, hours=2)
    dry = collect(rt, dry_run=True, now=later)
    assert dry.multipart >= 1 and "would drop" in dry.describe()
    assert rt.storage.pending_multipart(key) == [ticket.multipart.upload_id]
    done = collect(rt, now=later)
    assert done.multipart == dry.multipart and "dropped" in done.describe()
    assert rt.storage.pending_multipart(key) == []
    with rt.sync_session() as s:
        assert s.get(Clip, ticket.clip.id).purged_at is not None

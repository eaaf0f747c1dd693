"""The S3 backend against moto's S3 server on loopback: real HTTP, real presigned URLs.

moto does not check signatures (signature refusal is tested on the local backend, in
tests/api/test_multipart.py and test_storage_guard.py); everything else here is the real
protocol: presigned PUT/GET/part URLs, multipart completion, ranged GETs, CORS rules.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

from moto.server import ThreadedMotoServer  # noqa: E402

from sapari_nb import Client  # noqa: E402
from sapari_nb.errors import SapariError  # noqa: E402
from sapari_nb.flow import edit_file  # noqa: E402
from sapari_server.settings import Settings  # noqa: E402
from sapari_server.storage.base import StorageError  # noqa: E402
from sapari_server.storage.factory import make_storage  # noqa: E402
from sapari_server.storage.s3 import (  # noqa: E402
    CORS_RULE_ID,
    LIFECYCLE_RULE_ID,
    RangeReader,
    S3Storage,
    parse_s3_url,
)
from sapari_testkit.generate import TalkTruth  # noqa: E402

from ..conftest import start_server  # noqa: E402

MiB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket per test, made by `storage setup`'s own code path."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"sapari-{secrets.token_hex(4)}"
    url = f"s3://{bucket}?endpoint={moto_endpoint}&region=us-east-1&path_style=1"
    storage = S3Storage(parse_s3_url(url))
    assert storage.ensure_bucket() is True
    assert storage.ensure_bucket() is False
    yield url
    # Leave moto empty: objects, then pending uploads, then the bucket.
    c = storage.client
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            c.delete_object(Bucket=bucket, Key=o["Key"])
    for u in c.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        c.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    c.delete_bucket(Bucket=bucket)


@pytest.fixture
def storage(s3_url: str, tmp_path: Path) -> S3Storage:
    s = make_storage(Settings(data_dir=tmp_path, storage_url=s3_url,
                              multipart_threshold=6 * MiB, multipart_part_size=5 * MiB))
    assert isinstance(s, S3Storage)
    return s


def _blob(path: Path, size: int, seed: int = 1) -> Path:
    block = b"".join(hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(2048))
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    return path


def test_url_options_are_checked() -> None:
    loc = parse_s3_url("s3://b?endpoint=http://h:9000&region=auto&path_style=1"
                       "&public_endpoint=http://localhost:9000")
    assert (loc.bucket, loc.endpoint, loc.region, loc.path_style, loc.public_endpoint) == (
        "b", "http://h:9000", "auto", True, "http://localhost:9000")
    for bad, says in [("s3://?endpoint=http://h", "bucket"), ("s3://b/sub", "bucket"),
                      ("s3://b?endpiont=http://h", "endpiont"),
                      ("s3://b?endpoint=h:9000", "http"), ("s3://b?path_style=maybe", "path_style")]:
        with pytest.raises(ValueError, match=says):
            parse_s3_url(bad)
    with pytest.raises(ValueError, match="not supported"):
        make_storage(Settings(storage_url="gs://bucket"))


def test_presigned_put_get_head_delete(storage: S3Storage) -> None:
    key = "users/u/projects/p/clips/c/source.mp4"
    body = b"\x00\x01video" * 1000
    url = storage.presign_put(key, max_size=len(body), content_type="video/mp4")
    assert "content-length" in url and "X-Amz-Expires=3600" in url  # bound to the size
    r = httpx.put(url, content=body, headers={"Content-Type": "video/mp4"})
    assert r.status_code == 200, r.text
    info = storage.head(key)
    assert info is not None and info.size == len(body)
    get = storage.presign_get(key, filename="My talk é.mp4")
    r = httpx.get(get)
    assert r.status_code == 200 and r.content == body
    assert r.headers["content-type"] == "video/mp4"
    assert "attachment" in r.headers["content-disposition"]
    assert "filename*=UTF-8''My%20talk%20%C3%A9.mp4" in r.headers["content-disposition"]
    r = httpx.get(get, headers={"Range": "bytes=2-6"})
    assert r.status_code == 206 and r.content == body[2:7]
    assert b"".join(storage.iter_bytes(key, chunk=4096)) == body
    storage.delete(key)
    assert storage.head(key) is None
    storage.delete(key)  # deleting twice is fine
    with pytest.raises(StorageError, match="does not exist"), storage.local_path(key):
        pass


def test_put_file_uses_managed_multipart_and_local_path_guards(storage: S3Storage,
                                                               tmp_path: Path) -> None:
    src = _blob(tmp_path / "render.mp4", 13 * MiB)
    key = "users/u/projects/p/exports/e/t/cut.mp4"
    info = storage.put_file(key, src)
    assert info.size == 13 * MiB
    head = storage.client.head_object(Bucket=storage.bucket, Key=key)
    # A managed multipart transfer leaves an ETag of the form "<md5 of md5s>-<parts>".
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentType"] == "video/mp4"
    with storage.local_path(key) as p:
        assert p.read_bytes() == src.read_bytes()
        scratch = p.parent
        assert scratch.is_relative_to(tmp_path / "scratch")
    assert not scratch.exists()  # the download is removed afterwards
    storage.scratch_max_bytes = 1 * MiB
    with pytest.raises(StorageError, match="scratch limit"), storage.local_path(key):
        pass


def test_ranged_reads_are_seekable_and_lazy(storage: S3Storage, tmp_path: Path) -> None:
    src = _blob(tmp_path / "big.bin", 9 * MiB + 17, seed=3)
    data = src.read_bytes()
    key = "users/u/projects/p/clips/c/big.bin"
    storage.put_file(key, src)
    raw = RangeReader(storage, key, len(data))
    with io.BufferedReader(raw, buffer_size=64 * 1024) as f:
        f.seek(-100, io.SEEK_END)
        assert f.read() == data[-100:]
        f.seek(12345)
        assert f.read(1000) == data[12345:13345]
        assert raw.requests == 2  # two small ranges, not a download
        f.seek(0)
        assert f.read() == data
        assert f.read() == b""
    # A sequential read grows its window: a few requests for the whole object.
    assert raw.requests <= 8
    with storage.open_read(key) as f:
        f.seek(5 * MiB)
        assert f.read(10) == data[5 * MiB:5 * MiB + 10]


def test_pyav_probes_through_ranged_reads(storage: S3Storage,
                                          talk: tuple[Path, TalkTruth]) -> None:
    import av

    key = "users/u/projects/p/clips/c/source.mp4"
    storage.put_file(key, talk[0])
    with storage.open_read(key) as f, av.open(f) as container:
        assert container.duration and container.duration / 1e6 > 5
        audio = container.streams.audio[0]
        frames = sum(1 for _ in container.decode(audio))
        assert frames > 100


def test_multipart_on_the_backend(storage: S3Storage, tmp_path: Path) -> None:
    src = _blob(tmp_path / "mp.bin", 11 * MiB, seed=4)
    data = src.read_bytes()
    key = "users/u/projects/p/clips/c/source.mp4"
    uid = storage.create_multipart(key, content_type="video/mp4")
    assert storage.pending_multipart(key) == [uid]
    assert storage.pending_multipart(key + ".other") == []
    sizes = [5 * MiB, 5 * MiB, MiB]
    etags = []
    for n, size in enumerate(sizes, 1):
        url = storage.presign_part(key, uid, n, size=size)
        assert "partNumber" in url and "content-length" in url
        r = httpx.put(url, content=data[(n - 1) * 5 * MiB:(n - 1) * 5 * MiB + size])
        assert r.status_code == 200, r.text
        etags.append(r.headers["etag"].strip('"'))
    parts = storage.list_parts(key, uid)
    assert [(p.part_number, p.size, p.etag) for p in parts] == list(
        zip([1, 2, 3], sizes, etags, strict=True))
    info = storage.complete_multipart(key, uid, list(enumerate(etags, 1)))
    assert info.size == len(data)
    assert storage.pending_multipart(key) == []
    assert httpx.get(storage.presign_get(key)).content == data
    from sapari_server.storage.base import MultipartError

    with pytest.raises(MultipartError, match="presign again"):
        storage.list_parts(key, uid)
    uid2 = storage.create_multipart(key)
    storage.abort_multipart(key, uid2)
    storage.abort_multipart(key, uid2)  # gone already: fine
    assert storage.pending_multipart(key) == []


def test_storage_setup_applies_cors(s3_url: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from sapari_nb.cli import main

    monkeypatch.setenv("SAPARI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SAPARI_STORAGE_URL", s3_url)
    monkeypatch.setenv("SAPARI_CORS_ORIGINS", '["https://hub.example.org"]')
    storage = S3Storage(parse_s3_url(s3_url))
    assert main(["storage", "setup"]) == 0
    # A browser's preflight from an allowed origin is answered with the rule (moto applies
    # every rule, not the first that matches: this runs while ours is the only one).
    r = httpx.options(storage.presign_put("k.mp4", max_size=1), headers={
        "Origin": "https://hub.example.org", "Access-Control-Request-Method": "PUT"})
    assert r.status_code == 200, r.text
    assert r.headers.get("access-control-allow-origin") == "https://hub.example.org"
    assert "ETag" in r.headers.get("access-control-expose-headers", "")
    # A rule of someone else's stays; ours is added beside it, and replaced when run again.
    storage.client.put_bucket_cors(Bucket=storage.bucket, CORSConfiguration={"CORSRules": [
        {"ID": "theirs", "AllowedMethods": ["GET"], "AllowedOrigins": ["https://x.org"]},
        *storage.client.get_bucket_cors(Bucket=storage.bucket)["CORSRules"]]})
    assert main(["storage", "setup"]) == 0
    out = capsys.readouterr().out
    assert "https://hub.example.org" in out and "ETag" in out
    rules = storage.client.get_bucket_cors(Bucket=storage.bucket)["CORSRules"]
    assert [r.get("ID") for r in rules] == ["theirs", CORS_RULE_ID]
    ours = rules[1]
    assert set(ours["AllowedMethods"]) == {"PUT", "GET", "HEAD"}
    assert "ETag" in ours["ExposeHeaders"]
    assert "https://hub.example.org" in ours["AllowedOrigins"]
    assert any("127.0.0.1" in o for o in ours["AllowedOrigins"])
    life = storage.client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]
    assert [r["ID"] for r in life] == [LIFECYCLE_RULE_ID]
    assert life[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1


def test_storage_setup_on_file_storage_says_nothing_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from sapari_nb.cli import main

    monkeypatch.setenv("SAPARI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SAPARI_STORAGE_URL", raising=False)
    assert main(["storage", "setup"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_whole_flow_on_s3_with_multipart_upload(s3_url: str, tmp_path: Path,
                                                talk: tuple[Path, TalkTruth]) -> None:
    """Upload (in parts) -> confirm -> process -> analyze -> render -> download, all on S3."""
    srv = start_server(tmp_path / "data", storage_url=s3_url, transcriber="none",
                       multipart_threshold=1, multipart_part_size=5 * MiB)
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            seen: list[int] = []
            real = client._put_part

            def spy(clip_id, upload_id, path, part, count):  # type: ignore[no-untyped-def]
                seen.append(part.part_number)
                assert part.url.startswith(s3_url.split("endpoint=")[1].split("&")[0])
                return real(clip_id, upload_id, path, part, count)

            client._put_part = spy  # type: ignore[method-assign]
            result = edit_file(client, talk[0], tmp_path / "out.mp4")
            assert seen == [1]  # the talk is one 5 MiB part: it went as a multipart upload
            assert len(result.cuts) == sum(1 for p in talk[1].pauses if p[1] - p[0] >= 0.5)
            assert result.output_duration < result.input_duration - 3
            link = client.download_link(result.export_id)
            assert link.url.startswith(s3_url.split("endpoint=")[1].split("&")[0])
            assert (tmp_path / "out.mp4").read_bytes() == httpx.get(link.url).content

            # Several parts, a dropped one resumed, and the bad inputs, on the same server.
            big = _blob(tmp_path / "big.mp4", 11 * MiB, seed=5)
            project = client.create_project("s3-parts")
            ticket = client.presign(project.id, big.name, big.stat().st_size)
            assert ticket.multipart is not None and ticket.multipart.part_count == 3
            cid = ticket.clip.id
            data = big.read_bytes()
            part2 = client.part_urls(cid, [2]).parts[0]
            r = httpx.put(part2.url, content=data[part2.offset:part2.offset + part2.size])
            assert r.status_code == 200
            status = client.upload_parts(cid)
            assert status.missing == [1, 3] and [u.part_number for u in status.uploaded] == [2]
            with pytest.raises(SapariError) as e:  # confirm before the upload is complete
                client.confirm(cid)
            assert e.value.status == 409 and "parts 1, 3" in e.value.detail
            r = client.http.post(f"/clips/{cid}/parts", json={"part_numbers": [4]})
            assert r.status_code == 422
            seen.clear()
            clip = client.upload(project.id, big, resume=cid)
            assert sorted(seen) == [1, 3]
            assert clip.status == "uploaded" and clip.size == len(data)
            rt = srv.app.state.runtime
            keys = [o["Key"] for o in rt.storage.client.list_objects_v2(
                Bucket=rt.storage.bucket)["Contents"]]
            source = next(k for k in keys if f"/clips/{cid}/source" in k)
            assert httpx.get(rt.storage.presign_get(source)).content == data
            assert rt.storage.pending_multipart(source) == []
            # Wrong part count and wrong ETags on a fresh upload.
            t2 = client.presign(project.id, "b.mp4", big.stat().st_size)
            parts = client.put_parts(t2.clip.id, big, t2.multipart)  # type: ignore[arg-type]
            r = client.http.post(f"/clips/{t2.clip.id}/confirm", json={"parts": parts[:2]})
            assert r.status_code == 422 and "3" in r.json()["detail"]
            bad = [dict(p, etag="0" * 32) for p in parts]
            r = client.http.post(f"/clips/{t2.clip.id}/confirm", json={"parts": bad})
            assert r.status_code == 409 and "ETag" in r.json()["detail"]
            r = client.http.post(f"/clips/{t2.clip.id}/confirm", json={"parts": parts})
            assert r.status_code == 200 and r.json()["size"] == len(data)
    finally:
        srv.stop()


def test_a_store_that_is_down_is_a_clear_503(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the client's fault and not a 500: the answer names the store and what failed."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    srv = start_server(tmp_path / "data", transcriber="none", multipart_threshold=MiB,
                       storage_url=f"s3://sapari-down?endpoint={down}&path_style=1")
    try:
        with Client(srv.url, srv.token, progress=False) as client:
            project = client.create_project("store-down")
            small = client.presign(project.id, "a.mp4", 100)  # signing needs no store
            assert small.upload_url.startswith(down)
            with pytest.raises(SapariError) as e:
                client.confirm(small.clip.id)
            assert e.value.status == 503 and "storage is unavailable" in e.value.detail
            assert down in e.value.detail
            with pytest.raises(SapariError) as e:
                client.presign(project.id, "big.mp4", 2 * MiB)  # starts a multipart upload
            assert e.value.status == 503
            # The clip it could not start is gone, with its reservation.
            assert [c.filename for c in client.clips(project.id)] == ["a.mp4"]
            assert client.me().used_bytes == 100
    finally:
        srv.stop()


def test_signed_urls_name_the_public_endpoint(s3_url: str, moto_endpoint: str) -> None:
    """The server talks to `endpoint`; people get URLs for `public_endpoint`."""
    public = moto_endpoint.replace("127.0.0.1", "localhost")
    storage = S3Storage(parse_s3_url(f"{s3_url}&public_endpoint={public}"))
    key = "users/u/projects/p/clips/c/source.mp4"
    put = storage.presign_put(key, max_size=3)
    assert put.startswith(f"{public}/") and "127.0.0.1" not in put
    assert httpx.put(put, content=b"abc").status_code == 200
    assert storage.head(key) is not None  # through the private endpoint
    get = storage.presign_get(key)
    assert get.startswith(f"{public}/") and httpx.get(get).content == b"abc"
    part = storage.presign_part(key, storage.create_multipart(key), 1, size=3)
    assert part.startswith(f"{public}/")

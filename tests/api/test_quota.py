"""Quota counts every byte a user's rows hold on disk, plus live reservations, and holds
under concurrent presigns."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from sapari_nb import Client, JobFailed
from sapari_server.db.models import Clip
from sapari_server.embedded import EmbeddedServer
from sapari_testkit.generate import TalkTruth

from ..conftest import new_user_client

GiB = 1024**3


@pytest.fixture
def fresh(server: EmbeddedServer, request: pytest.FixtureRequest) -> Iterator[Client]:
    c = new_user_client(server, f"quota-{request.node.name}"[:190])
    yield c
    c.close()


def test_concurrent_presigns_cannot_overbook(fresh: Client) -> None:
    project = fresh.create_project("race")
    assert fresh.me().quota_bytes == 20 * GiB

    def presign(i: int) -> int:
        r = fresh.http.post(f"/projects/{project.id}/clips",
                            json={"filename": f"{i}.mp4", "size": 8 * GiB})
        return r.status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(presign, range(10)))
    assert sorted(codes) == [201, 201] + [413] * 8, codes
    assert fresh.me().used_bytes == 16 * GiB


def test_failed_clip_keeps_counting(fresh: Client, tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(b"this is not a video " * 500)
    project = fresh.create_project("failed")
    after = fresh.cursor()
    clip = fresh.upload(project.id, bad)
    with pytest.raises(JobFailed):
        fresh.wait_clip(clip, after=after, timeout=60)
    assert fresh.clip(clip.id).status == "failed"
    # The bytes are still on disk: they still count.
    assert fresh.me().used_bytes == bad.stat().st_size


def test_artifacts_and_exports_count(fresh: Client, talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    project = fresh.create_project("derived")
    after = fresh.cursor()
    clip = fresh.wait_clip(fresh.upload(project.id, src), after=after)
    arts = fresh.artifacts(clip.id)
    assert arts
    expected = src.stat().st_size + sum(a.size for a in arts)
    assert fresh.me().used_bytes == expected
    exp = fresh.wait_export(fresh.export(project.id, apply="accepted_and_proposed"),
                            after=after)
    assert exp.size and fresh.me().used_bytes == expected + exp.size


def test_reservations_expire_and_leave_with_their_project(fresh: Client,
                                                          server: EmbeddedServer) -> None:
    rt = server.app.state.runtime
    project = fresh.create_project("reserve")
    tickets = [fresh.presign(project.id, f"{i}.mp4", GiB) for i in range(3)]
    assert fresh.me().used_bytes == 3 * GiB
    # Once its upload URL has expired, a presign holds nothing.
    with rt.sync_session() as s, s.begin():
        clip = s.get(Clip, tickets[0].clip.id)
        clip.created_at -= timedelta(seconds=rt.settings.signed_url_ttl + 1)
    assert fresh.me().used_bytes == 2 * GiB
    # Deleting one clip, then the project, releases the rest.
    assert fresh.http.delete(f"/clips/{tickets[1].clip.id}").status_code == 204
    assert fresh.me().used_bytes == GiB
    fresh.delete_project(project.id)
    assert fresh.me().used_bytes == 0
    # Twenty presigns never uploaded no longer lock a user out for good.
    other = fresh.create_project("again")
    for name in ("a.mp4", "b.mp4"):
        assert fresh.presign(other.id, name, 9 * GiB).clip.declared_size == 9 * GiB


def test_deleted_bytes_count_until_purged(fresh: Client, server: EmbeddedServer,
                                          talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    storage = server.app.state.runtime.storage
    project = fresh.create_project("purge")
    after = fresh.cursor()
    clip = fresh.wait_clip(fresh.upload(project.id, src), after=after)
    used = fresh.me().used_bytes
    assert used > src.stat().st_size
    urls = [a.url for a in fresh.artifacts(clip.id)]
    # A soft delete is restorable: the bytes stay, and so does their weight.
    assert fresh.http.delete(f"/clips/{clip.id}").status_code == 204
    assert fresh.me().used_bytes == used
    folder = storage.root / "users"
    owned_files = [p for p in folder.rglob("*") if p.is_file() and project.id in str(p)]
    assert owned_files
    r = fresh.http.delete(f"/projects/{project.id}", params={"purge": "true"})
    assert r.status_code == 204
    assert fresh.me().used_bytes == 0
    assert not any(p.exists() for p in owned_files)
    assert not (folder / fresh.me().id / "projects" / project.id).exists()
    assert all(httpx.get(u).status_code == 404 for u in urls)
    r = fresh.http.post(f"/projects/{project.id}/restore")
    assert r.status_code == 410 and "purged" in r.json()["detail"]

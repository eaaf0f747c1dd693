"""Deletes cascade and can be undone for a while; gc then frees the bytes; tokens revoke."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from sapari_nb import Client
from sapari_server.auth import create_token
from sapari_server.db.base import utcnow
from sapari_server.db.models import (
    AnalysisRun,
    Artifact,
    Clip,
    Edit,
    Export,
    Project,
    Transcript,
)
from sapari_server.embedded import EmbeddedServer
from sapari_server.lifecycle.gc import GcReport, collect
from sapari_testkit.generate import TalkTruth

from ..conftest import new_user_client, start_server


def _by_id_routes(c: Client, clip_id: str, run_id: str, edit_id: str,
                  export_id: str) -> list[httpx.Response]:
    h = c.http
    return [h.get(f"/clips/{clip_id}"), h.get(f"/clips/{clip_id}/artifacts"),
            h.get(f"/clips/{clip_id}/transcript"), h.patch(f"/clips/{clip_id}", json={
                "position": 0}),
            h.get(f"/exports/{export_id}"), h.get(f"/exports/{export_id}/download"),
            h.patch(f"/edits/{edit_id}", json={"status": "rejected"}),
            h.get(f"/analysis/{run_id}")]


def test_project_delete_cascades_and_restores(client: Client, server: EmbeddedServer,
                                              talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    project = client.create_project("cascade")
    after = client.cursor()
    clip = client.wait_clip(client.upload(project.id, src), after=after)
    run = client.wait_analysis(client.analyze(project.id), after=after)
    edits = client.edits(project.id)
    exp = client.wait_export(client.export(project.id, apply="accepted_and_proposed"),
                             after=after)
    download = client.http.get(f"/exports/{exp.id}/download").json()["url"]
    ids = (clip.id, run.id, edits[0].id, exp.id)
    assert [r.status_code for r in _by_id_routes(client, *ids)][:2] == [200, 200]

    client.delete_project(project.id)
    answers = _by_id_routes(client, *ids)
    assert [r.status_code for r in answers] == [404] * len(answers), \
        [(r.request.url.path, r.status_code) for r in answers]
    assert httpx.get(download).status_code == 404
    rt = server.app.state.runtime
    with rt.sync_session() as s:
        when = s.get(Project, project.id).deleted_at
        rows = [s.get(Clip, clip.id), s.get(AnalysisRun, run.id), s.get(Export, exp.id),
                *s.scalars(select(Edit).where(Edit.project_id == project.id)),
                *s.scalars(select(Artifact).where(Artifact.clip_id == clip.id,
                                                  Artifact.deleted_at == when))]
        assert len(rows) > 5 and all(r.is_deleted and r.deleted_at == when for r in rows)

    r = client.http.post(f"/projects/{project.id}/restore")
    assert r.status_code == 200 and r.json()["id"] == project.id
    answers = _by_id_routes(client, *ids)
    assert [r.status_code for r in answers] == [200, 200, 404, 200, 200, 200, 200, 200]
    assert len(client.edits(project.id)) == len(edits)
    assert httpx.get(download).status_code == 200


def test_clip_delete_cascades_and_restores(client: Client, server: EmbeddedServer,
                                           talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    rt = server.app.state.runtime
    project = client.create_project("clip-cascade")
    after = client.cursor()
    clip = client.wait_clip(client.upload(project.id, src), after=after)
    client.wait_analysis(client.analyze(project.id), after=after)
    n_edits, n_arts = len(client.edits(project.id)), len(client.artifacts(clip.id))
    with rt.sync_session() as s, s.begin():  # a transcript, as a speech analysis leaves one
        s.add(Transcript(user_id=clip_user(server, clip.id), clip_id=clip.id, backend="x",
                         words=[]))
    assert client.http.delete(f"/clips/{clip.id}").status_code == 204
    with rt.sync_session() as s:
        when = s.get(Clip, clip.id).deleted_at
        for model in (Artifact, Transcript, Edit):
            live = s.scalars(select(model).where(model.clip_id == clip.id,
                                                 model.is_deleted.is_(False))).all()
            assert live == [], model
        assert s.scalars(select(Artifact).where(Artifact.deleted_at == when)).all()
    assert client.edits(project.id) == []
    r = client.http.post(f"/clips/{clip.id}/restore")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert len(client.edits(project.id)) == n_edits
    assert len(client.artifacts(clip.id)) == n_arts
    assert client.transcript(clip.id).backend == "x"
    # Past the retention period a delete is final.
    assert client.http.delete(f"/clips/{clip.id}").status_code == 204
    with rt.sync_session() as s, s.begin():
        s.get(Clip, clip.id).deleted_at -= timedelta(days=rt.settings.retention_days + 1)
    r = client.http.post(f"/clips/{clip.id}/restore")
    assert r.status_code == 410 and "no longer be restored" in r.json()["detail"]


def clip_user(server: EmbeddedServer, clip_id: str) -> str:
    with server.app.state.runtime.sync_session() as s:
        return s.get(Clip, clip_id).user_id


def test_tokens_list_and_revoke(server: EmbeddedServer, other_client: Client) -> None:
    c = new_user_client(server, "tokens-owner")
    me = c.me()
    with server.app.state.runtime.sync_session() as s, s.begin():
        second = create_token(s, me.id, name="laptop")
    tokens = c.http.get("/me/tokens").json()
    assert sorted(t["name"] for t in tokens) == ["default", "laptop"]
    assert "token_hash" not in tokens[0]
    laptop = next(t for t in tokens if t["name"] == "laptop")
    # Another user cannot see or revoke it.
    assert other_client.http.delete(f"/me/tokens/{laptop['id']}").status_code == 404
    with Client(server.url, second, progress=False) as c2:
        assert c2.me().id == me.id
        assert c.http.delete(f"/me/tokens/{laptop['id']}").status_code == 204
        r = c2.http.get("/me")
        assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert [t["name"] for t in c.http.get("/me/tokens").json()] == ["default"]
    c.close()


@pytest.fixture(scope="module")
def gc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    # Its own server: gc with a clock moved forward purges every old delete it can see.
    srv = start_server(tmp_path_factory.mktemp("gc"), transcriber="none",
                       preview_artifacts=False)
    yield srv
    srv.stop()


def test_gc_purges_only_what_only_old_deletes_own(gc_server: EmbeddedServer,
                                                  talk: tuple[Path, TalkTruth]) -> None:
    src, _ = talk
    rt = gc_server.app.state.runtime
    storage = rt.storage
    c = Client(gc_server.url, gc_server.token, progress=False)
    after = c.cursor()
    gone = c.create_project("gone")
    gclip = c.wait_clip(c.upload(gone.id, src), after=after)
    gexp = c.wait_export(c.export(gone.id, apply="accepted_and_proposed"), after=after)
    kept = c.create_project("kept")
    kclip = c.wait_clip(c.upload(kept.id, src), after=after)
    # A presign whose bytes landed but was never confirmed; its URL has expired.
    stray = c.presign(kept.id, "stray.mp4", 4000)
    assert httpx.put(stray.upload_url, content=b"s" * 4000).status_code == 200
    with rt.sync_session() as s, s.begin():
        s.get(Clip, stray.clip.id).created_at -= timedelta(
            seconds=rt.settings.signed_url_ttl + 60)
        gone_keys = [s.get(Clip, gclip.id).object_key, s.get(Export, gexp.id).object_key,
                     *s.scalars(select(Artifact.object_key).where(Artifact.clip_id == gclip.id))]
        stray_key = s.get(Clip, stray.clip.id).object_key
        kept_arts = list(s.scalars(select(Artifact).where(Artifact.clip_id == kclip.id)))
        kept_keys = [s.get(Clip, kclip.id).object_key, *(a.object_key for a in kept_arts)]
        # Re-processing replaced one artifact under a new key (the old object must go)...
        replaced = kept_arts[0]
        old_key = replaced.object_key.replace(replaced.object_key.rsplit("/", 1)[1], "old.bin")
        storage.path(old_key).write_bytes(b"o" * 777)
        s.add(Artifact(user_id=replaced.user_id, clip_id=kclip.id, kind=replaced.kind,
                       object_key=old_key, size=777, is_deleted=True, deleted_at=utcnow()))
        # ...and a replaced row that names the same object as a live one (it must stay).
        s.add(Artifact(user_id=replaced.user_id, clip_id=kclip.id, kind=replaced.kind,
                       object_key=replaced.object_key, size=replaced.size, is_deleted=True,
                       deleted_at=utcnow()))
    c.delete_project(gone.id)
    used = c.me().used_bytes

    report = collect(rt)  # nothing is old enough yet
    assert isinstance(report, GcReport) and report.objects == 0 and report.bytes == 0
    assert report.describe() == "freed 0 objects, 0 B"

    later = utcnow() + timedelta(days=rt.settings.retention_days, hours=1)
    dry = collect(rt, dry_run=True, now=later)
    expected = set(gone_keys) | {stray_key, old_key}
    assert {i["key"] for i in dry.items} == expected
    assert dry.objects == len(expected)
    assert dry.bytes == sum(storage.head(k).size for k in expected)
    assert dry.describe().startswith(f"would free {dry.objects} objects, ")
    assert all(storage.head(k) is not None for k in expected)
    assert c.me().used_bytes == used
    assert {i["kind"] for i in dry.items} == {"clip", "artifact", "export"}

    done = collect(rt, now=later)
    assert (done.objects, done.bytes) == (dry.objects, dry.bytes)
    assert done.describe().startswith(f"freed {done.objects} objects, ")
    assert all(storage.head(k) is None for k in expected)
    assert all(storage.head(k) is not None for k in kept_keys)
    assert c.me().used_bytes == used - done.bytes
    with rt.sync_session() as s:
        assert s.get(Clip, gclip.id).purged_at is not None  # rows stay, marked
        assert s.get(Export, gexp.id).purged_at is not None
        assert s.get(Clip, kclip.id).purged_at is None
    assert collect(rt, now=later).objects == 0
    r = c.http.post(f"/projects/{gone.id}/restore")
    assert r.status_code == 410
    # The kept clip's files still serve, the shared object included.
    urls = [a.url for a in c.artifacts(kclip.id)]
    assert urls and all(httpx.get(u).status_code == 200 for u in urls)
    c.close()

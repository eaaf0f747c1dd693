"""Browser actions -> server calls. One function per action type of the widget contract.

Each takes the ``ProjectState``, the action dict and its binary buffers. Server refusals
raise ``SapariError`` and become the view's ``message`` in ``ProjectState.handle``.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from ..errors import SapariError
from .state import ProjectState, temp_dir

log = logging.getLogger(__name__)

Action = dict[str, Any]
Handler = Callable[[ProjectState, Action, list[bytes]], None]
STATUSES = ("proposed", "accepted", "rejected")
EXPORT_FIELDS = ("container", "video_codec", "mode", "crf", "preset", "width", "height",
                 "apply", "allow_upscale")
MIN_CUT = 0.001  # a piece of a cut shorter than this is a rounding leftover, not a cut


def _status(a: Action) -> str:
    status = str(a.get("status"))
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return status


def set_status(st: ProjectState, a: Action, _: list[bytes]) -> None:
    ids = [str(i) for i in a.get("ids") or []]
    if ids:
        st.client.set_edits_status(st.project_id, _status(a), ids=ids)
    st.reload("edits")
    st.say("")


def set_all(st: ProjectState, a: Action, _: list[bytes]) -> None:
    status, kind = _status(a), a.get("kind")
    if kind:
        ids = [e["id"] for e in st.values()["edits"] if e["kind"] == kind]
        if ids:
            st.client.set_edits_status(st.project_id, status, ids=ids)
    else:
        st.client.set_edits_status(st.project_id, status)
    st.reload("edits")
    st.say("")


def _clip_at(st: ProjectState, clip_id: str) -> tuple[float, float]:
    for info in st.infos:
        if info.clip.id == clip_id:
            return info.offset, info.duration
    raise SapariError(404, f"clip {clip_id} is not on this project's timeline (deleted or "
                           "not processed yet)")


def set_bounds(st: ProjectState, a: Action, _: list[bytes]) -> None:
    edit = next((e for e in st.values()["edits"] if e["id"] == a["id"]), None)
    if edit is None:
        raise SapariError(404, f"edit {a['id']} is no longer in this project: it was "
                               "deleted or replaced by a new analysis")
    offset, duration = _clip_at(st, edit["clip_id"])
    # An edge dragged past the clip stops at its end: an edit never spans two clips.
    start = round(min(max(float(a["t0"]) - offset, 0.0), duration), 4)
    end = round(min(max(float(a["t1"]) - offset, 0.0), duration), 4)
    if end - start < MIN_CUT:
        raise SapariError(422, "an edit must keep some length: drag its edges apart")
    st.client.set_edit(edit["id"], start=start, end=end)
    st.reload("edits")
    st.say("")


def _cut(st: ProjectState, t0: float, t1: float, reason: str) -> int:
    """Accepted manual cuts covering [t0, t1) on the project axis, one per clip it spans."""
    if t1 < t0:
        t0, t1 = t1, t0
    made = 0
    for info in st.infos:
        lo, hi = max(t0, info.offset), min(t1, info.offset + info.duration)
        if info.duration <= 0 or hi - lo < MIN_CUT:
            continue
        start = round(lo - info.offset, 4)
        end = round(min(hi - info.offset, info.duration), 4)
        st.client.add_edit(st.project_id, info.clip.id, start, end, kind="manual",
                           reason=reason, status="accepted")
        made += 1
    if not made:
        raise SapariError(422, f"nothing to cut between {t0:.2f} s and {t1:.2f} s: select a "
                               "range over a ready clip")
    st.reload("edits")
    st.say("")
    return made


def add_cut(st: ProjectState, a: Action, _: list[bytes]) -> None:
    _cut(st, float(a["t0"]), float(a["t1"]), "cut on the timeline")


def cut_words(st: ProjectState, a: Action, _: list[bytes]) -> None:
    words = st.values()["words"]
    first, last = sorted((int(a["from"]), int(a["to"])))
    if first < 0 or last >= len(words):
        raise SapariError(422, f"words {first}..{last} are not in the transcript "
                               f"({len(words)} words): select words again")
    chosen = words[first:last + 1]
    text = " ".join(w[2] for w in chosen)
    # Per clip: from its first chosen word's start to its last one's end (the server cuts
    # by clip; a selection across a join becomes one cut on each side).
    by_clip: dict[str, list[list[Any]]] = {}
    for w in chosen:
        by_clip.setdefault(w[3], []).append(w)
    for ws in by_clip.values():
        _cut(st, ws[0][0], ws[-1][1], f'cut words: "{text}"'[:2000])


def analyze(st: ProjectState, a: Action, _: list[bytes]) -> None:
    run = st.client.analyze(st.project_id, **dict(a.get("settings") or {}))
    st._set(analysis={"status": run.status, "progress": 0.0, "message": "", "error": None,
                      "summary": None, "analysis_id": run.id})
    st.say("")


def _start_export(st: ProjectState, settings: dict[str, Any]) -> None:
    request = {k: v for k, v in settings.items() if k in EXPORT_FIELDS and v is not None}
    try:
        exp = st.client.export(st.project_id, **request)
    except SapariError as e:
        x = st.values()["export_state"]
        st._set(export_state={**x, "error": str(e)})
        raise
    st._set(export_state={"status": exp.status, "progress": 0.0, "message": "", "error": None,
                          "export_id": exp.id, "download_url": None, "filename": None,
                          "timelines": []})
    st.say("")


def export(st: ProjectState, a: Action, _: list[bytes]) -> None:
    settings = {**st.values()["export_settings"], **dict(a.get("settings") or {})}
    st._set(export_settings=settings)
    _start_export(st, settings)


def retry_export(st: ProjectState, a: Action, _: list[bytes]) -> None:
    _start_export(st, st.values()["export_settings"])


def seek(st: ProjectState, a: Action, _: list[bytes]) -> None:
    st.seek(float(a["t"]))


# -- uploads ---------------------------------------------------------------------------------
def upload_request(st: ProjectState, a: Action, _: list[bytes]) -> None:
    uid, name, size = str(a["id"]), str(a.get("name") or "upload"), int(a.get("size") or 0)
    ctype = str(a.get("content_type") or "application/octet-stream")
    st.add_upload({"id": uid, "name": name, "size": size, "sent": 0,
                   "status": "waiting_ticket", "route": str(a.get("route") or ""),
                   "error": None, "clip_id": None, "put_url": None, "headers": {}})
    if size <= 0:
        st.update_upload(uid, status="failed",
                         error=f"{name} is empty (0 bytes): choose the recording itself")
        return
    try:
        ticket = st.client.presign(st.project_id, name, size, ctype)
    except SapariError as e:
        # Quota and size refusals: the upload row says why, in the server's words.
        st.update_upload(uid, status="failed", error=f"{name}: {e}")
        return
    st.job(uid).ticket = ticket
    changes: dict[str, Any] = {}
    if ticket.multipart is not None:
        # Big file: the browser PUTs parts (URLs from upload_part_urls); `held` lists the
        # parts the storage already has (none yet), `attempt` counts resumes.
        mp = ticket.multipart
        changes = {"multipart": {"upload_id": mp.upload_id, "part_size": mp.part_size,
                                 "part_count": mp.part_count},
                   "held": [], "attempt": 1, "part_urls": None, "resumable": False}
    st.update_upload(uid, clip_id=ticket.clip.id, put_url=ticket.upload_url,
                     headers=dict(ticket.headers), status="uploading", **changes)


def _row(st: ProjectState, uid: str) -> dict[str, Any]:
    row = st.upload_row(uid)
    if row is None:
        raise SapariError(404, f"upload {uid} is unknown to the kernel: choose the file again")
    return row


def upload_progress(st: ProjectState, a: Action, _: list[bytes]) -> None:
    uid = str(a["id"])
    changes: dict[str, Any] = {"sent": int(a.get("sent") or 0)}
    if a.get("route"):
        changes["route"] = str(a["route"])
    if _row(st, uid)["status"] == "uploading":
        st.update_upload(uid, **changes)


def _confirm(st: ProjectState, uid: str, parts: list[dict[str, Any]] | None = None) -> None:
    row = _row(st, uid)
    mp = row.get("multipart")
    try:
        if mp:
            # Joins the parts first; without ETags (a store whose CORS rules hide them) the
            # server joins the parts it holds, each checked whole.
            st.client.confirm(row["clip_id"], upload_id=mp["upload_id"], parts=parts)
        else:
            st.client.confirm(row["clip_id"])
    except SapariError as e:
        # A multipart upload keeps the parts that arrived: a retry sends only the rest.
        st.update_upload(uid, status="failed", error=f"{row['name']}: {e}",
                         resumable=bool(mp))
        return
    row = _row(st, uid)
    if row["status"] not in ("ready", "failed"):  # an event may have been quicker
        st.update_upload(uid, status="processing", sent=row["size"])


def upload_done(st: ProjectState, a: Action, _: list[bytes]) -> None:
    uid = str(a["id"])
    row = _row(st, uid)
    if not row.get("clip_id"):
        raise SapariError(409, "this upload has no ticket yet: wait for it before confirming")
    parts = None
    if row.get("multipart") and a.get("parts"):
        parts = [{"part_number": int(p["part_number"]), "etag": str(p["etag"])}
                 for p in a["parts"]]
    _confirm(st, uid, parts)


def upload_failed(st: ProjectState, a: Action, _: list[bytes]) -> None:
    uid = str(a["id"])
    st.drop_temp(uid)
    row = _row(st, uid)
    st.update_upload(uid, status="failed", error=str(a.get("error") or "the upload failed"),
                     resumable=bool(row.get("multipart") and row.get("clip_id")))


def upload_part_urls(st: ProjectState, a: Action, _: list[bytes]) -> None:
    """Signed PUT URLs for a batch of a multipart upload's parts, into the row's
    ``part_urls`` ({req, parts: [{part_number, url, size, offset}]}) for the browser."""
    uid, req = str(a["id"]), str(a.get("req") or "")
    row = _row(st, uid)
    mp = row.get("multipart")
    if not mp or row["status"] != "uploading":
        raise SapariError(409, f"{row['name']} is not sending parts ({row['status']}): "
                               "choose the file again")
    numbers = [int(n) for n in a.get("parts") or []]
    try:
        batch = st.client.part_urls(row["clip_id"], numbers, mp["upload_id"])
    except SapariError as e:
        st.update_upload(uid, status="failed", error=f"{row['name']}: {e}", resumable=True)
        return
    st.update_upload(uid, part_urls={"req": req, "parts": [
        {"part_number": p.part_number, "url": p.url, "size": p.size, "offset": p.offset}
        for p in batch.parts]})


def upload_resume(st: ProjectState, a: Action, _: list[bytes]) -> None:
    """Retry a multipart upload that stopped: ask the server which parts it holds; the
    browser then sends only the others (a fresh ``attempt`` starts it)."""
    uid = str(a["id"])
    row = _row(st, uid)
    mp = row.get("multipart")
    if not mp or not row.get("clip_id"):
        raise SapariError(409, f"{row['name']} cannot resume (it was not sent in parts): "
                               "choose the file again")
    if row["status"] != "failed":
        return  # resumed already (a second click, or another view's)
    try:
        clip = st.client.clip(row["clip_id"])
        if clip.status != "pending_upload":
            # Its upload completed after all (a confirm that answered late): nothing to send.
            if clip.status == "failed":
                st.update_upload(uid, error=f"{row['name']}: {clip.error or 'processing failed'}",
                                 resumable=False)
                return
            st.update_upload(uid, status="ready" if clip.status == "ready" else "processing",
                             error=None, resumable=False, sent=row["size"])
            return
        status = st.client.upload_parts(row["clip_id"])
    except SapariError as e:
        st.update_upload(uid, error=f"{row['name']}: {e}")
        return
    st.update_upload(uid, status="uploading", error=None, resumable=False,
                     multipart={"upload_id": status.upload_id, "part_size": status.part_size,
                                "part_count": status.part_count},
                     held=[p.part_number for p in status.uploaded],
                     sent=sum(p.size for p in status.uploaded), part_urls=None,
                     attempt=int(row.get("attempt") or 1) + 1)


def relay_chunk(st: ProjectState, a: Action, buffers: list[bytes]) -> None:
    """Append one chunk to the upload's temp file; on the last, PUT it and confirm."""
    uid, offset, last = str(a["id"]), int(a.get("offset") or 0), bool(a.get("last"))
    row, job = _row(st, uid), st.job(uid)
    if job.ticket is None or row["status"] != "uploading":
        raise SapariError(409, f"{row['name']} is not waiting for bytes ({row['status']}): "
                               "choose the file again")
    data = buffers[0] if buffers else base64.b64decode(a.get("data") or "")
    if job.handle is None:
        fd, name = tempfile.mkstemp(prefix="sapari-relay-", dir=temp_dir(),
                                    suffix=PurePath(row["name"]).suffix[:16])
        job.tmp, job.handle = Path(name), open(fd, "wb")  # noqa: SIM115 (kept open by design)
    if offset + len(data) <= job.written and data:
        pass  # a chunk sent twice (a retried send): already written
    elif offset != job.written:
        st.drop_temp(uid)
        st.update_upload(uid, status="failed",
                         error=f"{row['name']}: chunk at byte {offset} arrived but the kernel "
                               f"had {job.written} bytes; upload the file again")
        return
    else:
        job.handle.write(data)
        job.written += len(data)
    st.update_upload(uid, sent=job.written, route="relay")
    if not last:
        return
    job.handle.close()
    job.handle = None
    if job.written != row["size"]:
        st.drop_temp(uid)
        st.update_upload(uid, status="failed",
                         error=f"{row['name']}: the kernel received {job.written} of "
                               f"{row['size']} bytes; upload the file again")
        return
    # The PUT of a big file takes a while: off the kernel's message loop.
    threading.Thread(target=_put_relayed, args=(st, uid), name="sapari-relay",
                     daemon=True).start()


def _put_relayed(st: ProjectState, uid: str) -> None:
    job = st.job(uid)
    try:
        assert job.ticket is not None and job.tmp is not None
        st.client.put_bytes(job.ticket, job.tmp, progress=False)
    except SapariError as e:
        st.update_upload(uid, status="failed", error=f"{_row(st, uid)['name']}: {e}")
        return
    except Exception as e:
        log.exception("relayed upload %s failed", uid)
        st.update_upload(uid, status="failed", error=f"the relayed upload failed: {e}")
        return
    finally:
        st.drop_temp(uid)
    _confirm(st, uid)


HANDLERS: dict[str, Handler] = {
    "set_status": set_status, "set_all": set_all, "set_bounds": set_bounds,
    "add_cut": add_cut, "cut_words": cut_words, "analyze": analyze, "export": export,
    "retry_export": retry_export, "seek": seek, "upload_request": upload_request,
    "upload_progress": upload_progress, "upload_done": upload_done,
    "upload_failed": upload_failed, "relay_chunk": relay_chunk,
    "upload_part_urls": upload_part_urls, "upload_resume": upload_resume,
}


def dispatch(st: ProjectState, kind: str, action: Action, buffers: list[bytes]) -> None:
    fn = HANDLERS.get(kind)
    if fn is None:
        raise SapariError(400, f"unknown widget action {kind!r}: the widget bundle and the "
                               "sapari-nb package differ in version; rebuild the bundle")
    fn(st, action, buffers)

"""Server rows -> trait values: the project axis, peaks, words and edits as the widgets see them.

Pure functions over the client's answers (plus the client itself for signed-URL fetches):
no widget framework here, so the anywidget classes and the Panel app share them.
"""

from __future__ import annotations

import base64
import bisect
import json
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from sapari_server.api.schemas import AnalysisOut, ArtifactOut, ClipOut, EditOut, ExportOut

from ..client import Client
from ..errors import SapariError

log = logging.getLogger(__name__)

# The peaks trait stays under this: 2 MB arrive in JS in well under 0.1 s (WIDGETS.md).
PEAKS_BUDGET = 2 * 1024 * 1024
PAIR_BYTES = 4  # int16 min + int16 max
_MAGIC = b"SPKPYR1\0"
TIMELINE_FORMATS = {"fcpxml": "fcpxml", "premiere": "xml", "edl": "edl", "otio": "otio",
                    "srt": "srt", "vtt": "vtt"}
TIMELINE_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


@dataclass
class ClipInfo:
    """One clip with what its artifacts say, cached between reloads by artifact id."""

    clip: ClipOut
    offset: float
    proxy_url: str | None = None
    pyramid_url: str | None = None
    pyramid_id: str | None = None
    pyramid: dict[str, Any] | None = None  # the pyramid's JSON header
    width: int | None = None
    height: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return float(self.clip.duration or 0.0) if self.clip.status == "ready" else 0.0


def clip_infos(client: Client, clips: list[ClipOut]) -> list[ClipInfo]:
    """Clips in project order with their offsets on the project axis and signed URLs.

    Only ready clips take time on the axis: the others have no known length yet.
    """
    out: list[ClipInfo] = []
    offset = 0.0
    for c in clips:
        info = ClipInfo(clip=c, offset=offset)
        video = (c.media_info or {}).get("video") or {}
        info.width, info.height = video.get("width"), video.get("height")
        if c.status == "ready":
            _attach_artifacts(info, client.artifacts(c.id))
        out.append(info)
        offset += info.duration
    return out


def _attach_artifacts(info: ClipInfo, artifacts: list[ArtifactOut]) -> None:
    for a in artifacts:
        if a.kind == "proxy":
            info.proxy_url = a.url
            # The proxy's own display size: upright, square pixels (what the video shows).
            if a.meta.get("width") and a.meta.get("height"):
                info.width, info.height = int(a.meta["width"]), int(a.meta["height"])
        elif a.kind == "peak_pyramid":
            info.pyramid_url, info.pyramid_id = a.url, a.id
            info.pyramid = a.meta if a.meta.get("levels") else None


def clip_rows(infos: list[ClipInfo]) -> list[dict[str, Any]]:
    return [{"id": i.clip.id, "filename": i.clip.filename, "status": i.clip.status,
             "error": i.clip.error, "duration": i.clip.duration, "offset": round(i.offset, 6),
             "proxy_url": i.proxy_url, "width": i.width, "height": i.height} for i in infos]


def pyramid_header(client: Client, info: ClipInfo) -> dict[str, Any] | None:
    """The pyramid's JSON header: from the artifact's meta, else its first bytes."""
    if info.pyramid is not None or info.pyramid_url is None:
        return info.pyramid
    head = client.signed_bytes(info.pyramid_url, 0, 4095)
    if head[:len(_MAGIC)] != _MAGIC:
        raise ValueError("the peak artifact is not a peak pyramid")
    (n,) = struct.unpack("<I", head[len(_MAGIC):len(_MAGIC) + 4])
    start = len(_MAGIC) + 4
    if start + n > len(head):
        head = client.signed_bytes(info.pyramid_url, 0, start + n - 1)
    info.pyramid = json.loads(head[start:start + n])
    return info.pyramid


def choose_level(headers: list[dict[str, Any]]) -> int:
    """The finest level whose pairs, over all clips, fit the peaks budget."""
    if not headers:
        return 0
    depth = min(len(h["levels"]) for h in headers)
    for level in range(depth):
        total = sum(h["levels"][level]["count"] for h in headers) * PAIR_BYTES
        if total <= PEAKS_BUDGET:
            return level
    return depth - 1


class PeakCache:
    """Level bytes by (artifact id, level): a reload after an edit fetches nothing again."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, int], bytes] = {}

    def level(self, client: Client, info: ClipInfo, header: dict[str, Any], level: int) -> bytes:
        key = (info.pyramid_id or "", level)
        if key not in self._data:
            entry = header["levels"][level]
            assert info.pyramid_url is not None
            raw = client.signed_bytes(info.pyramid_url, int(entry["offset"]),
                                      int(entry["offset"]) + int(entry["bytes"]) - 1)
            self._data[key] = raw[:int(entry["bytes"])]
        return self._data[key]


def build_peaks(client: Client, infos: list[ClipInfo], cache: PeakCache,
                ) -> tuple[bytes, dict[str, Any]]:
    """int16le min,max pairs of every ready clip on the project axis, and their meta.

    Clip k's pairs start at index round(offset_k * per_second); a clip's pairs are cut or
    padded with silence to its duration, so rounding never shifts the clips after it.
    """
    ready = [(i, h) for i in infos if i.duration > 0 and i.pyramid_url
             for h in [_header_or_none(client, i)] if h is not None]
    if not ready:
        return b"", {"per_second": 100.0, "count": 0, "clips": []}
    level = choose_level([h for _, h in ready])
    per_second = float(ready[0][1]["levels"][level]["per_second"])
    parts: list[bytes] = []
    clips_meta: list[dict[str, Any]] = []
    index = 0
    for info, header in ready:
        lv = min(level, len(header["levels"]) - 1)
        data = cache.level(client, info, header, lv)
        start = round(info.offset * per_second)
        if start > index:  # a gap (should not happen: offsets are sums of durations)
            parts.append(b"\0" * ((start - index) * PAIR_BYTES))
            index = start
        count = max(0, round((info.offset + info.duration) * per_second) - index)
        data = data[:count * PAIR_BYTES].ljust(count * PAIR_BYTES, b"\0")
        parts.append(data)
        clips_meta.append({"id": info.clip.id, "offset": round(info.offset, 6),
                           "index": index, "count": count})
        index += count
    return b"".join(parts), {"per_second": per_second, "count": index, "level": level,
                             "clips": clips_meta}


def _header_or_none(client: Client, info: ClipInfo) -> dict[str, Any] | None:
    try:
        return pyramid_header(client, info)
    except (SapariError, ValueError) as e:
        log.warning("no peaks for clip %s: %s", info.clip.id, e)
        return None


def words_of(client: Client, infos: list[ClipInfo],
             cache: dict[str, list[dict[str, Any]]]) -> list[list[Any]]:
    """``[t0, t1, word, clip_id]`` on the project axis from each ready clip's transcript."""
    out: list[list[Any]] = []
    for info in infos:
        if info.duration <= 0:
            continue
        cid = info.clip.id
        if cid not in cache:
            try:
                cache[cid] = client.transcript(cid).words
            except SapariError as e:
                if e.status != 404:  # 404: no transcript yet, nothing to say
                    raise
                cache[cid] = []
        for w in cache[cid]:
            t0, t1 = float(w["start"]), float(w["end"])
            out.append([round(info.offset + t0, 4), round(info.offset + t1, 4),
                        str(w["word"]).strip(), cid])
    return out


def edit_rows(edits: list[EditOut], infos: list[ClipInfo],
              words: list[list[Any]]) -> list[dict[str, Any]]:
    """Edits on the project axis, in time order, with the words they cut."""
    offsets = {i.clip.id: i.offset for i in infos}
    # Word middles per clip, sorted: each edit finds its words by bisection, so an hour's
    # transcript and hundreds of edits still reload in milliseconds.
    by_clip: dict[str, tuple[list[float], list[str]]] = {}
    for w in sorted(words, key=lambda w: (w[3], (w[0] + w[1]) / 2)):
        mids, texts = by_clip.setdefault(w[3], ([], []))
        mids.append((w[0] + w[1]) / 2)
        texts.append(w[2])
    rows = []
    for e in edits:
        off = offsets.get(e.clip_id, 0.0)
        t0, t1 = off + e.start, off + e.end
        mids, texts = by_clip.get(e.clip_id, ([], []))
        inside = texts[bisect.bisect_left(mids, t0):bisect.bisect_left(mids, t1)]
        conf = e.meta.get("confidence") if isinstance(e.meta, dict) else None
        rows.append({"id": e.id, "clip_id": e.clip_id, "kind": e.kind, "status": e.status,
                     "t0": round(t0, 4), "t1": round(t1, 4), "start": e.start, "end": e.end,
                     "reason": e.reason, "source": e.source,
                     "confidence": float(conf) if isinstance(conf, int | float) else None,
                     "words": " ".join(inside)})
    rows.sort(key=lambda r: (r["t0"], r["t1"], r["id"]))
    return rows


def analysis_state(client: Client, runs: list[AnalysisOut]) -> dict[str, Any]:
    if not runs:
        return {"status": "idle", "progress": 0.0, "message": "", "error": None,
                "summary": None, "analysis_id": None}
    run = runs[-1]
    progress, message = (1.0, "") if run.status in ("succeeded", "failed") else (0.0, "")
    if run.status in ("queued", "running") and run.job_id:
        job = client.job(run.job_id)
        progress, message = job.progress, job.message
    return {"status": run.status, "progress": progress, "message": message,
            "error": run.error, "summary": run.summary, "analysis_id": run.id}


def idle_export() -> dict[str, Any]:
    return {"status": "idle", "progress": 0.0, "message": "", "error": None, "export_id": None,
            "download_url": None, "filename": None, "timelines": []}


def export_state(client: Client, project_id: str, exp: ExportOut | None,
                 timelines: list[str]) -> dict[str, Any]:
    if exp is None:
        return idle_export()
    state = {**idle_export(), "status": exp.status, "error": exp.error, "export_id": exp.id}
    if exp.status == "succeeded":
        link = client.download_link(exp.id)
        state.update(progress=1.0, download_url=link.url, filename=link.filename)
        stem = link.filename.rsplit(".", 1)[0]
        state["timelines"] = [timeline_file(client, project_id, fmt, stem) for fmt in timelines
                              if fmt in TIMELINE_FORMATS]
    elif exp.status in ("queued", "running") and exp.job_id:
        job = client.job(exp.job_id)
        state.update(progress=job.progress, message=job.message)
    elif exp.status == "failed":
        state["progress"] = 1.0
    return state


def timeline_file(client: Client, project_id: str, fmt: str, stem: str) -> dict[str, Any]:
    """One NLE/caption file as a ``data:`` URL the browser can save with no server route."""
    body = client.timeline(project_id, fmt)
    mime = TIMELINE_TYPES.get(fmt, "application/octet-stream")
    url = f"data:{mime};base64,{base64.b64encode(body).decode()}"
    return {"format": fmt, "filename": f"{stem}.{TIMELINE_FORMATS[fmt]}", "url": url}

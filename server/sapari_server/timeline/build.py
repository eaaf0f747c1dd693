"""Timeline exports for editors who finish in an NLE.

One frame-snapped edit list (``_place``) feeds every format:

* ``otio``: OpenTimelineIO JSON, built by :func:`build_timeline`.
* ``premiere``: FCP7 xmeml through the ``fcp_xml`` adapter (Premiere, Resolve).
* ``edl``: CMX3600 through the ``cmx_3600`` adapter, with a small fix-up (see ``_edl``).
* ``fcpxml``: written here with exact rational times, because otio-fcpx-xml-adapter 1.0.0
  cannot write fractional rates (see ``_fcpxml``).
* ``srt`` / ``vtt``: captions re-timed to the cut (``captions.py``).

All times live on the timeline's frame grid (the first clip's rate), so record and source
positions are whole frames in every format; media is referenced by absolute ``file://`` URL
with its available range, so NLEs link it instead of showing offline clips.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import opentimelineio as otio
from opentimelineio.opentime import RationalTime, TimeRange

from . import captions as _captions

# Audio-only projects still need a frame grid for NLE timelines.
AUDIO_ONLY_RATE = Fraction(30)
DEFAULT_SIZE = (1920, 1080)

FORMATS: dict[str, tuple[str, str]] = {
    "fcpxml": ("application/xml", "fcpxml"),
    "premiere": ("application/xml", "xml"),
    "edl": ("text/plain", "edl"),
    "otio": ("application/json", "otio"),
    "srt": ("application/x-subrip", "srt"),
    "vtt": ("text/vtt", "vtt"),
}


@dataclass(frozen=True)
class TimelineClip:
    """One source media file of the project, in project order."""

    clip_id: str
    name: str  # display name (original filename)
    path: Path  # absolute local path of the source media
    duration: float  # seconds
    fps: Fraction  # video frame rate; ignored for audio-only clips
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def has_video(self) -> bool:
        return bool(self.width and self.height)

    @property
    def has_audio(self) -> bool:
        # A clip without video is audio by definition; video clips say so by their sample rate.
        return not self.has_video or bool(self.sample_rate or self.channels)

    @property
    def url(self) -> str:
        if not self.path.is_absolute():
            raise ValueError(
                f"clip {self.name!r}: media path {str(self.path)!r} is relative; "
                "NLEs need an absolute path"
            )
        return self.path.as_uri()


@dataclass(frozen=True)
class KeepSegment:
    """A kept range of one clip, in that clip's seconds."""

    clip_id: str
    start: float
    end: float


@dataclass(frozen=True)
class _Placed:
    """A kept range on the timeline grid: source frames and where it lands (record frame)."""

    clip: TimelineClip
    src_in: int
    src_out: int
    record_in: int

    @property
    def frames(self) -> int:
        return self.src_out - self.src_in


def _normalize_rate(fps: Fraction | float) -> Fraction:
    # Probes and JSON round trips can hand back 29.97 or 29.97002997...: NLEs need the exact
    # NTSC rate (30000/1001) for rational time and drop-frame timecode to line up.
    rate = Fraction(fps).limit_denominator(1001)
    for base in (24, 30, 48, 60, 120):
        ntsc = Fraction(base * 1000, 1001)
        if abs(rate - ntsc) < Fraction(1, 100):
            return ntsc
    return rate


def timeline_rate(clips: Sequence[TimelineClip]) -> Fraction:
    """The frame rate of the first clip with picture; 30 when every clip is audio-only."""
    for clip in clips:
        if clip.has_video and clip.fps and clip.fps > 0:
            return _normalize_rate(clip.fps)
    return AUDIO_ONLY_RATE


def _frames(seconds: float | Fraction, rate: Fraction) -> int:
    # Round half up, exactly: Fraction(float) is the float's exact binary value.
    return math.floor(Fraction(seconds) * rate + Fraction(1, 2))


def _seconds(frames: int, rate: Fraction) -> float:
    return float(Fraction(frames) / rate)


def _is_drop_frame(rate: Fraction) -> bool:
    # 29.97 and 59.94 are shown as drop-frame timecode, as NTSC editors expect.
    return rate.denominator == 1001 and rate.numerator in (30000, 60000)


def _place(clips: Sequence[TimelineClip], keeps: Sequence[KeepSegment]) -> list[_Placed]:
    """Snap keeps to the frame grid, clamp them to their media, merge overlaps, and lay them
    end to end in clip order (the order the cut video plays them)."""
    if not clips:
        raise ValueError("the timeline needs at least one clip")
    rate = timeline_rate(clips)
    order = {c.clip_id: i for i, c in enumerate(clips)}
    if len(order) != len(clips):
        raise ValueError("clip ids must be unique")
    unknown = sorted({k.clip_id for k in keeps} - order.keys())
    if unknown:
        raise ValueError(f"keep segments name unknown clips: {', '.join(unknown)}")

    ranges: dict[str, list[tuple[int, int]]] = {c.clip_id: [] for c in clips}
    for keep in keeps:
        clip = clips[order[keep.clip_id]]
        limit = _frames(clip.duration, rate)
        start = min(max(_frames(keep.start, rate), 0), limit)
        end = min(max(_frames(keep.end, rate), 0), limit)
        if end > start:
            ranges[clip.clip_id].append((start, end))

    placed: list[_Placed] = []
    record = 0
    for clip in clips:
        merged: list[list[int]] = []
        for start, end in sorted(ranges[clip.clip_id]):
            # Touching or overlapping keeps are one shot: a zero-frame cut is no cut.
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in merged:
            placed.append(_Placed(clip, start, end, record))
            record += end - start
    if not placed:
        raise ValueError("nothing is kept: the timeline would be empty")
    return placed


def snapped_keep_segments(
    clips: Sequence[TimelineClip], keeps: Sequence[KeepSegment]
) -> list[KeepSegment]:
    """The keeps as every export sees them: frame-snapped, clamped, merged, in play order."""
    rate = timeline_rate(clips)
    return [
        KeepSegment(p.clip.clip_id, _seconds(p.src_in, rate), _seconds(p.src_out, rate))
        for p in _place(clips, keeps)
    ]


# --------------------------------------------------------------------------- OTIO


def _rt(frames: int, rate: Fraction) -> RationalTime:
    return RationalTime(frames, float(rate))


def _tr(start: int, duration: int, rate: Fraction) -> TimeRange:
    return TimeRange(_rt(start, rate), _rt(duration, rate))


def _otio_clip(p: _Placed, rate: Fraction) -> otio.schema.Clip:
    available = max(_frames(p.clip.duration, rate), p.src_out)
    reference = otio.schema.ExternalReference(
        target_url=p.clip.url, available_range=_tr(0, available, rate)
    )
    # The adapters take the file's display name from here (else from the URL, percent-encoded).
    reference.name = p.clip.name
    return otio.schema.Clip(
        name=p.clip.name,
        media_reference=reference,
        source_range=_tr(p.src_in, p.frames, rate),
        metadata={"sapari": {"clip_id": p.clip.clip_id}},
    )


def _timeline_from_placed(
    name: str, clips: Sequence[TimelineClip], placed: Sequence[_Placed]
) -> otio.schema.Timeline:
    rate = timeline_rate(clips)
    timeline = otio.schema.Timeline(name=name, global_start_time=_rt(0, rate))
    timeline.metadata["sapari"] = {"rate": f"{rate.numerator}/{rate.denominator}"}
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    audio = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    for p in placed:
        # Both tracks stay frame-aligned: a clip missing from one track leaves a gap there.
        for track, present in ((video, p.clip.has_video), (audio, p.clip.has_audio)):
            if present:
                track.append(_otio_clip(p, rate))
            else:
                track.append(otio.schema.Gap(source_range=_tr(0, p.frames, rate)))
    if any(p.clip.has_video for p in placed):
        timeline.tracks.append(video)
    if any(p.clip.has_audio for p in placed):
        timeline.tracks.append(audio)
    return timeline


def build_timeline(
    name: str, clips: list[TimelineClip], keeps: list[KeepSegment]
) -> otio.schema.Timeline:
    """An OTIO timeline of the cut: V1 and A1 carry the same frame-snapped ranges (audio-only
    clips only on A1), at the first clip's rate."""
    return _timeline_from_placed(name, clips, _place(clips, keeps))


# --------------------------------------------------------------------------- FCP7 xmeml


def _fcp7_rate(rate: Fraction) -> dict[str, Any]:
    timebase = math.ceil(rate)
    return {"timebase": timebase, "ntsc": "FALSE" if timebase == rate else "TRUE"}


def _decorate_for_fcp7(
    timeline: otio.schema.Timeline, clips: Sequence[TimelineClip], rate: Fraction
) -> None:
    """Metadata the fcp_xml adapter turns into xmeml elements it would otherwise leave empty:
    sequence and file formats (size, sample rate, channels) and drop-frame timecode."""
    first_video = next((c for c in clips if c.has_video), None)
    width, height = (first_video.width, first_video.height) if first_video else DEFAULT_SIZE
    timecode = {"displayformat": "DF" if _is_drop_frame(rate) else "NDF"}
    timeline.metadata["fcp_xml"] = {
        "timecode": timecode,
        "media": {
            "video": {
                "format": {
                    "samplecharacteristics": {
                        "rate": _fcp7_rate(rate),
                        "width": width,
                        "height": height,
                        "anamorphic": "FALSE",
                        "pixelaspectratio": "square",
                        "fielddominance": "none",
                    }
                }
            },
            "audio": {
                "numOutputChannels": 2,
                "format": {"samplecharacteristics": {"depth": 16, "samplerate": 48000}},
            },
        },
    }
    for track in timeline.tracks:
        for item in track:
            if not isinstance(item, otio.schema.Clip):
                continue
            clip = next(c for c in clips if c.clip_id == item.metadata["sapari"]["clip_id"])
            media: dict[str, Any] = {}
            if clip.has_video:
                media["video"] = {
                    "samplecharacteristics": {
                        "rate": _fcp7_rate(rate),
                        "width": clip.width,
                        "height": clip.height,
                    }
                }
            if clip.has_audio:
                media["audio"] = {
                    "samplecharacteristics": {
                        "depth": 16,
                        "samplerate": clip.sample_rate or 48000,
                    },
                    "channelcount": clip.channels or 2,
                }
            item.media_reference.metadata["fcp_xml"] = {"media": media, "timecode": timecode}
            if track.kind == otio.schema.TrackKind.Audio:
                # Also keeps the audio clipitem distinct: the adapter de-duplicates clipitems by
                # their JSON, and an audio clip identical to its video clip came out as an empty
                # back-reference (<clipitem id="clipitem-1"/>) on the audio track.
                item.metadata["fcp_xml"] = {"sourcetrack": {"mediatype": "audio", "trackindex": 1}}


def _premiere(name: str, clips: Sequence[TimelineClip], placed: Sequence[_Placed]) -> str:
    timeline = _timeline_from_placed(name, clips, placed)
    _decorate_for_fcp7(timeline, clips, timeline_rate(clips))
    return otio.adapters.write_to_string(timeline, adapter_name="fcp_xml")


# --------------------------------------------------------------------------- CMX3600 EDL


def _reel_names(clips: Sequence[TimelineClip]) -> dict[str, str]:
    """Unique 8-character reels (the adapter would truncate names until they collide)."""
    reels: dict[str, str] = {}
    for i, clip in enumerate(clips, start=1):
        stem = re.sub(r"[^A-Za-z0-9]", "", Path(clip.name).stem)
        reel = stem[:8] or f"CLIP{i:03d}"
        if reel in reels.values():
            reel = f"{stem[:4] or 'CLIP'}{i:04d}"
        reels[clip.clip_id] = reel
    return reels


_EVENT_LINE = re.compile(r"^(\d{3,})(\s+)(\S+)(\s+)(\S+)(\s+)(C\s.*)$")


def _edl(name: str, clips: Sequence[TimelineClip], placed: Sequence[_Placed]) -> str:
    """CMX3600 through the cmx_3600 adapter.

    The adapter writes only the first track and only as 'V' (and refuses timelines without a
    video track), so the EDL is written from one track holding every event and each event's
    channel is then set to what the clip carries: B (picture and sound), V, or A.
    """
    rate = timeline_rate(clips)
    reels = _reel_names(clips)
    track = otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video)
    for p in placed:
        clip = _otio_clip(p, rate)
        clip.metadata["cmx_3600"] = {"reel": reels[p.clip.clip_id]}
        track.append(clip)
    timeline = otio.schema.Timeline(name=name, global_start_time=_rt(0, rate))
    timeline.tracks.append(track)
    text = otio.adapters.write_to_string(
        timeline, adapter_name="cmx_3600", rate=float(rate), style="avid"
    )

    channels = iter(
        "B" if p.clip.has_video and p.clip.has_audio else ("V" if p.clip.has_video else "A")
        for p in placed
    )
    lines: list[str] = []
    for line in text.splitlines():
        match = _EVENT_LINE.match(line)
        if match:
            g = match.groups()
            line = f"{g[0]}{g[1]}{g[2]}{g[3]}{next(channels):5}{g[5]}{g[6]}"
        lines.append(line)
        if line.startswith("TITLE:"):
            # OTIO writes drop-frame timecode (with ';') for 29.97/59.94 on its own; say so.
            lines.append("FCM: DROP FRAME" if _is_drop_frame(rate) else "FCM: NON-DROP FRAME")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- FCPXML


def _fcpx_time(frames: int, rate: Fraction) -> str:
    """FCPXML rational seconds, exact: 45 frames at 30000/1001 is 1001*45/30000 = 3003/2000s."""
    value = Fraction(frames) / rate
    if value == 0:
        return "0s"
    if value.denominator == 1:
        return f"{value.numerator}s"
    return f"{value.numerator}/{value.denominator}s"


def _parse_fcpx_time(text: str | None) -> Fraction:
    if not text:
        return Fraction(0)
    return Fraction(text.strip().removesuffix("s"))


def _fcpxml(name: str, clips: Sequence[TimelineClip], placed: Sequence[_Placed]) -> str:
    """FCPXML 1.8 (Final Cut Pro 10.4+, DaVinci Resolve), written with ElementTree.

    otio-fcpx-xml-adapter 1.0.0 cannot write this: its frame-duration table is keyed by
    ``int(rate)``, so writing a 29.97 timeline crashes (no format element found); its reader truncates every
    rate to an int, it probes each file with an ffprobe subprocess, repeats browser
    asset-clips, and it splits sound into gap-wrapped connected clips. Here each kept range
    is one spine asset-clip carrying picture and sound, with exact rational times.
    """
    rate = timeline_rate(clips)
    first_video = next((c for c in clips if c.has_video), None)
    width, height = (first_video.width, first_video.height) if first_video else DEFAULT_SIZE
    tc_format = "DF" if _is_drop_frame(rate) else "NDF"
    frame_duration = _fcpx_time(1, rate)

    root = ET.Element("fcpxml", version="1.8")
    resources = ET.SubElement(root, "resources")
    formats: dict[tuple[int | None, int | None], str] = {}
    next_id = 1

    def format_id(w: int | None, h: int | None) -> str:
        nonlocal next_id
        if (w, h) not in formats:
            formats[(w, h)] = f"r{next_id}"
            next_id += 1
            ET.SubElement(
                resources,
                "format",
                id=formats[(w, h)],
                frameDuration=frame_duration,
                width=str(w),
                height=str(h),
            )
        return formats[(w, h)]

    sequence_format = format_id(width, height)
    assets: dict[str, str] = {}
    for clip in clips:
        if not any(p.clip is clip for p in placed):
            continue
        asset_id = f"r{next_id}"
        next_id += 1
        assets[clip.clip_id] = asset_id
        available = max(
            [_frames(clip.duration, rate)] + [p.src_out for p in placed if p.clip is clip]
        )
        attrs = {
            "id": asset_id,
            "name": clip.name,
            "src": clip.url,
            "start": "0s",
            "duration": _fcpx_time(available, rate),
            "hasVideo": "1" if clip.has_video else "0",
            "hasAudio": "1" if clip.has_audio else "0",
        }
        if clip.has_video:
            attrs["format"] = format_id(clip.width, clip.height)
        if clip.has_audio:
            attrs["audioSources"] = "1"
            attrs["audioChannels"] = str(clip.channels or 2)
            attrs["audioRate"] = str(clip.sample_rate or 48000)
        ET.SubElement(resources, "asset", attrs)

    library = ET.SubElement(root, "library")
    event = ET.SubElement(library, "event", name=name)
    project = ET.SubElement(event, "project", name=name)
    total = placed[-1].record_in + placed[-1].frames
    sequence = ET.SubElement(
        project,
        "sequence",
        format=sequence_format,
        duration=_fcpx_time(total, rate),
        tcStart="0s",
        tcFormat=tc_format,
        audioLayout="stereo",
        audioRate="48k",
    )
    spine = ET.SubElement(sequence, "spine")
    for p in placed:
        attrs = {
            "name": p.clip.name,
            "ref": assets[p.clip.clip_id],
            "offset": _fcpx_time(p.record_in, rate),
            "start": _fcpx_time(p.src_in, rate),
            "duration": _fcpx_time(p.frames, rate),
            "tcFormat": tc_format,
        }
        if not p.clip.has_video:
            attrs["audioRole"] = "dialogue"
        ET.SubElement(spine, "asset-clip", attrs)

    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + body + "\n"


# --------------------------------------------------------------------------- export


def _filename(name: str, ext: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "timeline"
    return f"{stem}.{ext}"


def export_timeline(
    name: str,
    clips: list[TimelineClip],
    keeps: list[KeepSegment],
    fmt: str,
    words: Mapping[str, list[dict[str, Any]]] | None = None,
) -> tuple[bytes, str, str]:
    """The cut as ``fmt`` (a key of :data:`FORMATS`): ``(content, media_type, filename)``.

    ``words`` (per clip id, transcript words in clip seconds) is needed for srt and vtt.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown timeline format {fmt!r}: use one of {', '.join(FORMATS)}")
    media_type, ext = FORMATS[fmt]
    placed = _place(clips, keeps)
    if fmt == "otio":
        text = otio.adapters.write_to_string(
            _timeline_from_placed(name, clips, placed), adapter_name="otio_json"
        )
    elif fmt == "premiere":
        text = _premiere(name, clips, placed)
    elif fmt == "edl":
        text = _edl(name, clips, placed)
    elif fmt == "fcpxml":
        text = _fcpxml(name, clips, placed)
    else:
        rate = timeline_rate(clips)
        segments = [
            KeepSegment(p.clip.clip_id, _seconds(p.src_in, rate), _seconds(p.src_out, rate))
            for p in placed
        ]
        text = _captions.captions(segments, words, fmt)
    return text.encode("utf-8"), media_type, _filename(name, ext)


# --------------------------------------------------------------------------- read back


def _clip_for(url: str | None, name: str | None, clips: Sequence[TimelineClip]) -> TimelineClip:
    if url:
        path = Path(unquote(urlparse(url).path)) if url.startswith("file:") else Path(url)
        for clip in clips:
            if clip.path == path:
                return clip
    for clip in clips:
        if name and name in (clip.name, Path(clip.name).stem):
            return clip
    raise ValueError(f"no clip of the project matches media {url or name!r}")


def _on_grid(
    clip: TimelineClip, start: float | Fraction, end: float | Fraction, rate: Fraction
) -> KeepSegment:
    # Readers return float seconds; put them back on the frame grid they were written on.
    return KeepSegment(
        clip.clip_id, _seconds(_frames(start, rate), rate), _seconds(_frames(end, rate), rate)
    )


def _keeps_from_otio(
    timeline: otio.schema.Timeline, clips: Sequence[TimelineClip]
) -> list[KeepSegment]:
    # Video and audio tracks carry the same events: keep one per record position.
    rate = timeline_rate(clips)
    events: dict[float, KeepSegment] = {}
    for track in timeline.tracks:
        for item in track:
            if not isinstance(item, otio.schema.Clip):
                continue
            record = round(track.range_of_child(item).start_time.to_seconds(), 6)
            ref = item.media_reference
            url = getattr(ref, "target_url", None)
            source = item.source_range or item.trimmed_range()
            offset = 0.0
            if getattr(ref, "available_range", None) is not None:
                offset = ref.available_range.start_time.to_seconds()
            clip = _clip_for(url, item.name, clips)
            start = source.start_time.to_seconds() - offset
            events.setdefault(
                record, _on_grid(clip, start, start + source.duration.to_seconds(), rate)
            )
    return [events[k] for k in sorted(events)]


def _first_timeline(obj: Any) -> otio.schema.Timeline:
    if isinstance(obj, otio.schema.Timeline):
        return obj
    found = list(obj.find_children(descended_from_type=otio.schema.Timeline))
    if not found:
        raise ValueError("the file holds no timeline")
    return found[0]


def read_keep_segments(content: bytes, fmt: str, clips: list[TimelineClip]) -> list[KeepSegment]:
    """Parse an exported timeline back to per-clip kept ranges (clip seconds, play order)."""
    text = content.decode("utf-8")
    rate = timeline_rate(clips)
    if fmt == "fcpxml":
        root = ET.fromstring(text)
        sources = {a.get("id"): a for a in root.iter("asset")}
        keeps: list[tuple[Fraction, KeepSegment]] = []
        for item in root.iter("asset-clip"):
            asset = sources.get(item.get("ref"))
            if asset is None:
                continue
            clip = _clip_for(asset.get("src"), asset.get("name"), clips)
            start = _parse_fcpx_time(item.get("start")) - _parse_fcpx_time(asset.get("start"))
            end = start + _parse_fcpx_time(item.get("duration"))
            offset = _parse_fcpx_time(item.get("offset"))
            keeps.append((offset, _on_grid(clip, start, end, rate)))
        return [k for _, k in sorted(keeps, key=lambda pair: pair[0])]
    if fmt == "otio":
        timeline = otio.adapters.read_from_string(text, adapter_name="otio_json")
    elif fmt == "premiere":
        timeline = otio.adapters.read_from_string(text, adapter_name="fcp_xml")
    elif fmt == "edl":
        timeline = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(rate))
    else:
        raise ValueError(
            f"cannot read keep segments from {fmt!r}: use otio, edl, fcpxml or premiere"
        )
    return _keeps_from_otio(_first_timeline(timeline), clips)

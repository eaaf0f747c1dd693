"""What is in an uploaded file: container, duration, video and audio stream facts.

Probing reads headers (and, for rotation, one video frame); it never decodes the whole file,
so it is safe to run in the request path of an upload confirmation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from .errors import MediaError

ACCEPTED = "upload an MP4/MOV/MKV/WebM/WAV recording"


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frame_count: int | None
    codec: str
    rotation: int  # degrees clockwise the picture must be turned for display (0/90/180/270)


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    codec: str


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    format_name: str
    size_bytes: int
    video: VideoInfo | None
    audio: AudioInfo | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; fps becomes a "num/den" string so it stays exact."""
        d = asdict(self)
        if self.video is not None:
            d["video"]["fps"] = f"{self.video.fps.numerator}/{self.video.fps.denominator}"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MediaInfo:
        video = d.get("video")
        audio = d.get("audio")
        return cls(
            duration=float(d["duration"]),
            format_name=d["format_name"],
            size_bytes=int(d["size_bytes"]),
            video=None if video is None else VideoInfo(**{**video, "fps": Fraction(video["fps"])}),
            audio=None if audio is None else AudioInfo(**audio),
        )


def _looks_like_mp4(path: Path) -> bool:
    # ISO-BMFF files start with a box whose type is at bytes 4..8 ("ftyp", sometimes "mdat").
    with path.open("rb") as f:
        head = f.read(12)
    return head[4:8] in (b"ftyp", b"mdat", b"moov", b"wide", b"free")


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading or raise a MediaError that says what to do."""
    name = path.name
    if not path.exists():
        raise MediaError(f"{name} does not exist: upload the file again", path=str(path))
    size = path.stat().st_size
    if size == 0:
        raise MediaError(
            f"{name} is empty (0 bytes): the upload did not complete; {ACCEPTED} again",
            path=str(path),
        )
    try:
        # Short timeouts: a local file never needs long, and a broken one must not hang us.
        return av.open(str(path), mode="r", timeout=(10.0, 10.0))
    except av.error.InvalidDataError as exc:
        if _looks_like_mp4(path):
            raise MediaError(
                f"{name} is an MP4/MOV file that was cut short (its index is missing, "
                f"{size} bytes): the recording or upload was interrupted; {ACCEPTED} "
                "that plays to the end",
                path=str(path),
            ) from exc
        raise MediaError(
            f"{name} is not a media file FFmpeg can read (invalid data found): {ACCEPTED}",
            path=str(path),
        ) from exc
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"{name} could not be opened ({exc.strerror or exc}): {ACCEPTED}", path=str(path)
        ) from exc


def _rotation(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """Display rotation from the first decoded frame (FFmpeg attaches the display matrix)."""
    try:
        container.seek(0)
        for frame in container.decode(stream):
            # frame.rotation is counter-clockwise in FFmpeg's convention; report clockwise.
            return int(-frame.rotation) % 360
    except (av.error.FFmpegError, ValueError):
        pass
    return 0


def _check_index(path: Path, container: av.container.InputContainer, size: int) -> None:
    """An MP4 with its index up front but its data cut off: samples point past EOF."""
    for stream in container.streams:
        if stream.type not in ("audio", "video"):
            continue
        entries = stream.index_entries
        n = len(entries)
        if n == 0:
            continue
        last = entries[n - 1]
        if last.pos + last.size > size:
            raise MediaError(
                f"{path.name} is truncated: its index describes "
                f"{last.pos + last.size} bytes of media but the file has only {size}; the "
                f"recording or upload was interrupted; {ACCEPTED} that plays to the end",
                path=str(path),
            )


def _duration(container: av.container.InputContainer) -> float:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    best = 0.0
    for s in container.streams:
        if s.duration and s.time_base:
            best = max(best, float(s.duration * s.time_base))
    if best > 0:
        return best
    # No duration in the header (e.g. a browser MediaRecorder WebM): read packet times,
    # which is fast because nothing is decoded.
    end = 0.0
    streams = [s for s in container.streams if s.type in ("audio", "video")]
    for packet in container.demux(streams):
        if packet.pts is not None and packet.time_base is not None:
            t = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = max(end, t)
    start = container.start_time / av.time_base if container.start_time else 0.0
    return max(0.0, end - start)


def probe(path: str | Path) -> MediaInfo:
    """Describe the media file at ``path``; raise MediaError if it is not usable media.

    A file without audio probes fine (``audio is None``): the caller decides whether it
    can work without one.
    """
    path = Path(path)
    container = open_input(path)
    size = path.stat().st_size
    try:
        vstreams = container.streams.video
        astreams = container.streams.audio
        if not vstreams and not astreams:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise MediaError(
                f"{path.name} has no audio or video streams (found: {', '.join(kinds)}): "
                f"{ACCEPTED}",
                path=str(path),
            )
        _check_index(path, container, size)

        video = None
        if vstreams:
            vs = vstreams[0]
            cc = vs.codec_context
            fps = vs.average_rate or vs.guessed_rate or vs.base_rate or Fraction(0)
            video = VideoInfo(
                width=cc.width,
                height=cc.height,
                fps=Fraction(fps),
                frame_count=vs.frames or None,
                codec=cc.name,
                rotation=_rotation(container, vs),
            )
        audio = None
        if astreams:
            a = astreams[0].codec_context
            audio = AudioInfo(sample_rate=a.sample_rate, channels=a.channels, codec=a.name)
        duration = _duration(container)
        return MediaInfo(
            duration=duration,
            format_name=container.format.name,
            size_bytes=size,
            video=video,
            audio=audio,
        )
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"{path.name} could not be read ({exc.strerror or exc}): the file looks "
            f"corrupt; {ACCEPTED}",
            path=str(path),
        ) from exc
    finally:
        container.close()


# --------------------------------------------------------------------------- coding facts
# What a re-encode needs to match its source: measured bitrates and the encoder's choices.
# Read from the container's sample index (no decoding, no full demux for MP4/MOV).


@dataclass(frozen=True)
class VideoCoding:
    codec: str
    profile: str | None  # e.g. "High"
    level: int | None  # level_idc, e.g. 31 for 3.1
    pix_fmt: str
    width: int
    height: int
    bit_rate: int | None  # measured average, bits per second
    bits_per_pixel: float | None  # bits per pixel per frame
    gop: int | None  # longest distance between keyframes, frames
    b_frames: bool  # the stream reorders frames
    x264: dict[str, str]  # the settings an x264 source wrote into its SEI ({} otherwise)

    @property
    def crf(self) -> float | None:
        """The CRF an x264 source was encoded at, when it says so."""
        if self.x264.get("rc") != "crf" or "crf" not in self.x264:
            return None
        try:
            return float(self.x264["crf"])
        except ValueError:
            return None


@dataclass(frozen=True)
class AudioCoding:
    codec: str
    sample_rate: int
    channels: int
    bit_rate: int | None  # measured average, bits per second


@dataclass(frozen=True)
class Coding:
    duration: float
    video: VideoCoding | None
    audio: AudioCoding | None


def _track_seconds(stream: av.stream.Stream, container: av.container.InputContainer) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return _duration(container)


def _measured_rate(
    stream: av.stream.Stream, container: av.container.InputContainer
) -> tuple[int | None, list[bool]]:
    """Average bits per second of a track from its sample sizes, and its keyframe flags.

    MP4/MOV carry a sample table (index entries), so this costs no reading of media; other
    containers fall back to the bitrate the demuxer reports."""
    entries = stream.index_entries
    n = len(entries)
    seconds = _track_seconds(stream, container)
    if n and seconds > 0:
        total = 0
        keys: list[bool] = []
        for i in range(n):
            e = entries[i]
            total += e.size
            keys.append(bool(e.is_keyframe))
        return round(total * 8 / seconds), keys
    return (int(stream.bit_rate) or None) if stream.bit_rate else None, []


def _x264_settings(container: av.container.InputContainer, stream: av.VideoStream) -> dict[str, str]:
    """x264 writes its options as text in an SEI of the first picture: 'crf=23.0 keyint=60'."""
    try:
        container.seek(0, stream=stream)
        for packet in container.demux(stream):
            data = bytes(packet)
            at = data.find(b"x264 - core")
            if at < 0:
                return {}
            text = data[at : at + 4096].split(b"\x00", 1)[0].decode("ascii", "replace")
            opts = text.split(" options: ", 1)[1] if " options: " in text else ""
            return dict(kv.split("=", 1) for kv in opts.split() if "=" in kv)
    except (av.error.FFmpegError, ValueError, IndexError):
        pass
    return {}


def coding(path: str | Path) -> Coding:
    """How ``path`` was encoded: bitrates measured from its samples, GOP, B-frames, profile.

    A render re-encodes at these so its output lands in the source's size and quality class.
    """
    path = Path(path)
    container = open_input(path)
    try:
        video = audio = None
        if container.streams.video:
            vs = container.streams.video[0]
            cc = vs.codec_context
            rate, keys = _measured_rate(vs, container)
            gop = None
            marks = [i for i, k in enumerate(keys) if k]
            if marks:
                ends = [*marks[1:], len(keys)]
                gop = max(b - a for a, b in zip(marks, ends, strict=True))
            fps = vs.average_rate or vs.guessed_rate
            bpp = None
            if rate and fps and cc.width and cc.height:
                bpp = rate / (cc.width * cc.height * float(fps))
            level = getattr(cc, "level", None)
            video = VideoCoding(
                codec=cc.name,
                profile=cc.profile,
                level=int(level) if level and level > 0 else None,
                pix_fmt=cc.pix_fmt or "",
                width=cc.width,
                height=cc.height,
                bit_rate=rate,
                bits_per_pixel=bpp,
                gop=gop,
                b_frames=bool(getattr(cc, "has_b_frames", 0)),
                x264=_x264_settings(container, vs) if cc.name == "h264" else {},
            )
        if container.streams.audio:
            ast = container.streams.audio[0]
            rate, _ = _measured_rate(ast, container)
            a = ast.codec_context
            audio = AudioCoding(a.name, a.sample_rate, a.channels, rate)
        return Coding(_duration(container), video, audio)
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"{path.name} could not be read ({exc.strerror or exc}): the file looks "
            f"corrupt; {ACCEPTED}",
            path=str(path),
        ) from exc
    finally:
        container.close()


def audio_rate_over(path: str | Path, ranges: list[tuple[float, float]]) -> int | None:
    """Bits per second the source's audio spent on the given (start, end) seconds, from its
    sample table; None when the container has none. Speech costs an AAC encoder far more
    than the pauses an edit removes, so the kept parts run above the file's average."""
    path = Path(path)
    container = open_input(path)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        entries = stream.index_entries
        tb = stream.time_base
        n = len(entries)
        seconds = sum(max(0.0, b - a) for a, b in ranges)
        if not n or tb is None or seconds <= 0:
            return None
        order = sorted(ranges)
        total = 0
        k = 0
        for i in range(n):
            e = entries[i]
            t = float(e.timestamp * tb)
            while k < len(order) and order[k][1] <= t:
                k += 1
            if k == len(order):
                break
            if order[k][0] <= t:
                total += e.size
        return round(total * 8 / seconds)
    finally:
        container.close()

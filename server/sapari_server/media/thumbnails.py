"""A JPEG sprite of evenly spaced thumbnails, for hover previews along the review timeline.

Tile ``k`` shows the picture at ``times[k]``, the middle of the k-th of ``count`` equal spans
of the recording, so the widget maps a time to a tile with ``floor(t / interval)``.

Only the frames needed are decoded: for each time we seek to the keyframe before it and
decode forward until a frame lies within half an interval of the target (often the keyframe
itself), and nearby targets continue decoding instead of seeking again. The cost grows with
the number of thumbnails and the keyframe spacing, not with the length of the recording.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from .errors import MediaError
from .probe import ACCEPTED, open_input, probe

# Continue decoding instead of seeking when the next target is this close ahead: decoding
# a second of frames costs about what a seek's keyframe-and-forward decode does.
_FORWARD_LIMIT = 2.0
_JPEG_QUALITY = 5  # mjpeg qscale: 2 best .. 31 worst; 5 keeps faces readable at 160 px


@dataclass(frozen=True)
class SpriteInfo:
    path: str
    times: list[float]  # seconds, target time of each tile in row-major order
    frame_times: list[float]  # seconds, time of the frame actually shown in each tile
    interval: float  # seconds covered by each tile
    tile_width: int
    tile_height: int
    columns: int
    rows: int
    width: int  # whole sprite, pixels
    height: int
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _targets(duration: float, every: float | None, count: int) -> tuple[float, list[float]]:
    if duration <= 0:
        return 0.0, [0.0]
    if every is not None:
        if every <= 0:
            raise ValueError("every must be positive")
        n = max(1, math.ceil(duration / every - 1e-9))
        interval = every
    else:
        if count < 1:
            raise ValueError("count must be at least 1")
        n, interval = count, duration / count
    return interval, [min((k + 0.5) * interval, duration) for k in range(n)]


def _tile_picture(frame: av.VideoFrame, tw: int, th: int, rotation: int) -> np.ndarray:
    """RGB tile (th, tw, 3) of the frame, upright, letterboxed into the tile if needed."""
    w, h = tw, th
    if rotation in (90, 270):
        w, h = th, tw
    rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    if rotation:
        # np.rot90 turns counter-clockwise; k = -1 is one clockwise quarter turn.
        rgb = np.rot90(rgb, k=-(rotation // 90))
    return np.ascontiguousarray(rgb)


def make_thumbnail_sprite(
    src: Path,
    out: Path,
    *,
    every: float | None = None,
    count: int = 100,
    tile_width: int = 160,
    columns: int = 10,
    progress: Callable[[float], None] | None = None,
) -> SpriteInfo:
    """Write a JPEG grid of thumbnails of ``src`` to ``out``; return where each tile sits.

    ``every`` (seconds) overrides ``count``. Raises MediaError when the file has no video
    (there is nothing to show: callers skip the sprite for audio-only uploads).
    """
    src, out = Path(src), Path(out)
    if tile_width < 2 or columns < 1:
        raise ValueError("tile_width must be >= 2 and columns >= 1")
    container = open_input(src)
    try:
        if not container.streams.video:
            raise MediaError(f"{src.name} has no video, so it has no thumbnails", path=str(src))
        stream = container.streams.video[0]
        for other in container.streams:
            if other is not stream:
                other.discard = av.stream.Discard.all
        # Slice threads only: frame threading would decode several frames past each target
        # before the first comes out, which a seek then throws away.
        stream.codec_context.thread_type = "SLICE"
        tb = stream.time_base
        origin = container.start_time / av.time_base if container.start_time else 0.0
        duration = container.duration / av.time_base if container.duration else 0.0
        if duration <= 0:
            # No duration in the header (e.g. a MediaRecorder WebM): probe reads packet times.
            duration = probe(src).duration
        interval, targets = _targets(duration, every, count)
        sar = float(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else 1.0

        tiles: list[np.ndarray] = []
        shown: list[float] = []
        size: tuple[int, int, int] | None = None  # tile w, tile h, rotation
        frames = None
        last_t = -math.inf
        last_frame: av.VideoFrame | None = None
        for k, target in enumerate(targets):
            slack = interval / 2
            if frames is None or not (last_t < target <= last_t + _FORWARD_LIMIT):
                # Seek lands on the keyframe at or before the target (any_frame=False).
                container.seek(int((target + origin) / tb) if tb else 0, stream=stream,
                               backward=True, any_frame=False)
                frames = container.decode(stream)
            picked = None
            for frame in frames:
                if frame.pts is None:
                    continue
                t = float(frame.pts * tb) - origin
                last_t, last_frame = t, frame
                if t >= target - slack:
                    picked = frame
                    break
            if picked is None:
                frames = None
                picked = last_frame  # past the last frame: show the last one
            if picked is None:
                raise MediaError(f"{src.name}: no video frame could be decoded; {ACCEPTED}",
                                 path=str(src))
            if size is None:
                rotation = int(-picked.rotation) % 360 if picked.rotation else 0
                rotation = rotation if rotation in (90, 180, 270) else 0
                dw, dh = picked.width * sar, float(picked.height)
                if rotation in (90, 270):
                    dw, dh = dh, dw
                size = (tile_width, max(2, int(round(tile_width * dh / dw / 2)) * 2), rotation)
            tiles.append(_tile_picture(picked, *size))
            shown.append(round(float(picked.pts * tb) - origin, 6))
            if progress is not None:
                progress((k + 1) / len(targets))
    except av.error.FFmpegError as exc:
        raise MediaError(f"{src.name} could not be read for thumbnails "
                         f"({exc.strerror or exc}); {ACCEPTED}", path=str(src)) from exc
    finally:
        container.close()

    assert size is not None
    tw, th, _ = size
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = tile
    _write_jpeg(sheet, out)
    return SpriteInfo(
        path=str(out),
        times=[round(t, 6) for t in targets],
        frame_times=shown,
        interval=interval,
        tile_width=tw,
        tile_height=th,
        columns=cols,
        rows=rows,
        width=cols * tw,
        height=rows * th,
        size_bytes=out.stat().st_size,
    )


def _write_jpeg(rgb: np.ndarray, out: Path) -> None:
    """One JPEG via FFmpeg's mjpeg encoder: a single packet is a complete JFIF file."""
    h, w = rgb.shape[:2]
    # yuvj420p needs even sides; the sprite is built from even tiles, so it already is.
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = w, h
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 25)  # required by the encoder, meaningless for one image
    # Fixed quantiser: qmin == qmax pins mjpeg's scale, the same as ffmpeg's -q:v.
    ctx.qmin = ctx.qmax = _JPEG_QUALITY
    data = b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(out)

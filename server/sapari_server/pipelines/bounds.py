"""How large an export may be: never above the sources, unless asked, and then within a factor.

A 7680x4320 export of a 38 s 320x240 clip held a worker for minutes at gigabytes of memory:
output size is bounded by the project's largest source picture and ``max_export_scale``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def source_size(media_infos: Iterable[dict[str, Any] | None]) -> tuple[int, int] | None:
    """The largest displayed width and height over the clips' probed media (None: unknown)."""
    widths, heights = [], []
    for info in media_infos:
        video = (info or {}).get("video")
        if not video:
            continue
        w, h = int(video["width"]), int(video["height"])
        if int(video.get("rotation") or 0) % 180 == 90:  # shown turned: sides swap
            w, h = h, w
        widths.append(w)
        heights.append(h)
    return (max(widths), max(heights)) if widths else None


def size_problem(width: int | None, height: int | None, source: tuple[int, int] | None,
                 allow_upscale: bool, max_scale: float) -> str | None:
    """A readable sentence when the requested size is out of bounds, else None."""
    asked = [(side, value, limit) for side, value, limit in (
        ("width", width, source[0] if source else 0),
        ("height", height, source[1] if source else 0)) if value is not None]
    if not asked:
        return None
    if source is None:
        return ("the project's clips have no known picture size yet: wait until they are "
                "processed (ClipReady) before asking for an export width or height")
    src = f"{source[0]}x{source[1]}"
    for side, value, limit in asked:
        if value <= limit:
            continue
        if not allow_upscale:
            return (f"{side} {value} is larger than the project's largest source ({src}): "
                    f"leave {side} out to keep the source size, or set allow_upscale to "
                    f"upscale (at most {max_scale:g}x)")
        most = int(limit * max_scale)
        if value > most:
            return (f"{side} {value} is more than {max_scale:g}x the project's largest source "
                    f"({src}): at most {most} with allow_upscale; the server's "
                    "SAPARI_MAX_EXPORT_SCALE sets the factor")
    return None

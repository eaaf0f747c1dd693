"""Trim one file to [start, end): the exact renderer with a single keep-segment.

The renderer snaps the cut to the frame grid, keeps audio and video in sync, and in its
"auto" mode stream-copies every whole group of pictures inside the range (re-encoding only
the partial GOP at the start), so a trim that starts on a keyframe costs almost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .render import Piece, RenderResult, RenderSettings, render


def trim(src: Path, dst: Path, start: float, end: float, *, container: str = "mp4",
         progress: Callable[[float], None] | None = None) -> RenderResult:
    """Write ``src``'s [start, end) seconds to ``dst`` (H.264/AAC, or AAC alone for audio)."""
    return render([Piece(src, start, end)], dst,
                  RenderSettings(container=container, mode="auto"), progress)

"""The CLI's own checks of its arguments, made before anything is uploaded.

Each problem is one sentence naming the flag; the bounds are the server's own, so a value
that passes here is never refused by the API after a long upload and analysis.
"""

from __future__ import annotations

import argparse
import stat
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from sapari_server.api.schemas import ExportRequest

PRESETS: tuple[str, ...] = get_args(ExportRequest.model_fields["preset"].annotation)
# flag -> (attribute, lowest, highest, unit): inclusive bounds, as the API checks them.
BOUNDS: dict[str, tuple[str, float, float, str]] = {
    "--crf": ("crf", 0, 51, ""),
    "--min-silence": ("min_silence", 0.05, 60, " seconds"),
    "--padding": ("padding", 0, 5, " seconds"),
    "--threshold-db": ("threshold_db", -100, 0, " dBFS (or 'auto')"),
}


def number(flag: str, kind: type[int] | type[float],
           allow: tuple[str, ...] = ()) -> Callable[[str], int | float | str]:
    """An argparse type: a number (or one of ``allow``), else one sentence naming ``flag``."""
    def parse(text: str) -> int | float | str:
        if text in allow:
            return text
        try:
            return kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            alt = "".join(f" or {a!r}" for a in allow)
            raise argparse.ArgumentTypeError(f"{flag} must be {what}{alt}, not {text!r}") from None
    return parse


def _fmt(x: float) -> str:
    return f"{x:g}"


def check_edit_args(args: argparse.Namespace) -> str | None:
    """The first problem with ``edit``'s values, as one sentence, or None."""
    for flag, (attr, lo, hi, unit) in BOUNDS.items():
        value = getattr(args, attr, None)
        if value is None or isinstance(value, str):
            continue
        if not lo <= value <= hi:  # NaN fails this too
            return f"{flag} must be between {_fmt(lo)} and {_fmt(hi)}{unit}, not {value}"
    if args.preset not in PRESETS:
        return f"--preset must be one of {', '.join(PRESETS)}, not {args.preset!r}"
    out = Path(args.output)
    if out.is_dir():
        return f"-o {out} is a folder: name the video file to write, e.g. {out / 'cut.mp4'}"
    return None


def check_input(src: Path) -> str | None:
    """The input must be an existing, regular, non-empty file (a symlink to one is fine)."""
    try:
        st = src.stat()
    except FileNotFoundError:
        return f"{src} does not exist"
    except OSError as e:
        return f"cannot read {src}: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return f"{src} is not a regular file (a folder, device or pipe): give a video file"
    if st.st_size == 0:
        return f"{src} is empty (0 bytes): give a recording"
    return None

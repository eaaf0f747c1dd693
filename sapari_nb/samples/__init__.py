"""Small media shipped with sapari-nb for tutorials and smoke tests."""

from __future__ import annotations

import pathlib

_HERE = pathlib.Path(__file__).resolve().parent


def sample_path() -> pathlib.Path:
    """The sample talk (MP4, ~35 s, with pauses and one false start); truth in talk.json."""
    return _HERE / "talk.mp4"


def sample_truth_path() -> pathlib.Path:
    """JSON with the sample's script and where its phrases, pauses and false start are."""
    return _HERE / "talk.json"

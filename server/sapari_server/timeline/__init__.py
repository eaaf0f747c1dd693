"""Timeline exports for NLEs (FCPXML, Premiere XML, CMX3600 EDL, OTIO) and re-timed captions."""

from .build import (
    FORMATS,
    KeepSegment,
    TimelineClip,
    build_timeline,
    export_timeline,
    read_keep_segments,
    snapped_keep_segments,
    timeline_rate,
)
from .captions import MISSING_TRANSCRIPT, Cue, Word, group_cues, retime_words

__all__ = [
    "FORMATS",
    "MISSING_TRANSCRIPT",
    "Cue",
    "KeepSegment",
    "TimelineClip",
    "Word",
    "build_timeline",
    "export_timeline",
    "group_cues",
    "read_keep_segments",
    "retime_words",
    "snapped_keep_segments",
    "timeline_rate",
]

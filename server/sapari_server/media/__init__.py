"""Media facts and analysis: probe, streaming audio analysis, silence cuts, test media."""

from .audio import AudioAnalysis, analyze_audio
from .errors import MediaError
from .probe import AudioInfo, MediaInfo, VideoInfo, probe
from .silence import Cut, SilenceSettings, detect_silences, detect_silences_in

__all__ = [
    "AudioAnalysis",
    "AudioInfo",
    "Cut",
    "MediaError",
    "MediaInfo",
    "SilenceSettings",
    "VideoInfo",
    "analyze_audio",
    "detect_silences",
    "detect_silences_in",
    "probe",
]

"""Timeline exports: FCPXML, Premiere XML, CMX3600 EDL, OTIO, SRT/VTT.

No media is opened: every fact comes from TimelineClip, so the paths only need to be absolute.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlparse

import opentimelineio as otio
import pytest

from sapari_server.timeline import (
    FORMATS,
    MISSING_TRANSCRIPT,
    KeepSegment,
    TimelineClip,
    Word,
    build_timeline,
    export_timeline,
    group_cues,
    read_keep_segments,
    snapped_keep_segments,
)

NTSC = Fraction(30000, 1001)
RATES = [pytest.param(Fraction(30), id="30"), pytest.param(NTSC, id="29.97")]
ROOT = Path("/srv/sapari media")  # a space, so URLs must be percent-encoded

# Chosen so both rates land on the same frames: a 30-75, a 120-180, b 15-90.
KEEPS = [
    KeepSegment("a", 1.0, 2.5),
    KeepSegment("a", 4.0, 6.0),
    KeepSegment("b", 0.5, 3.0),
]
SOURCE_FRAMES = [("a", 30, 75), ("a", 120, 180), ("b", 15, 90)]
RECORD_FRAMES = [0, 45, 105]


def project(fps: Fraction, audio_only: bool = False) -> list[TimelineClip]:
    clips = [
        TimelineClip("a", "take one.mp4", ROOT / "take one.mp4", 10.0, fps, 1920, 1080, 48000, 2),
        TimelineClip("b", "take2.mov", ROOT / "take2.mov", 8.0, fps, 1920, 1080, 48000, 2),
    ]
    if audio_only:
        clips.append(
            TimelineClip(
                "v", "voice.wav", ROOT / "voice.wav", 3.0, Fraction(0), None, None, 44100, 1
            )
        )
    return clips


def rational(frames: int, fps: Fraction) -> Fraction:
    return Fraction(frames) / fps


def parse_fcpx_time(text: str) -> Fraction:
    return Fraction(text.removesuffix("s"))


def url_path(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file"
    return Path(unquote(parsed.path))


def expected_keeps(fps: Fraction) -> list[KeepSegment]:
    return [
        KeepSegment(c, float(rational(s, fps)), float(rational(e, fps)))
        for c, s, e in SOURCE_FRAMES
    ]


# --------------------------------------------------------------------------- snapping


@pytest.mark.parametrize("fps", RATES)
def test_snapped_keeps_are_whole_frames(fps: Fraction) -> None:
    assert snapped_keep_segments(project(fps), KEEPS) == expected_keeps(fps)


def test_snapping_rounds_to_nearest_frame_clamps_and_merges() -> None:
    clips = project(Fraction(30))
    keeps = [
        KeepSegment("a", 1.016, 1.5),  # 30.48 frames -> 30
        KeepSegment("a", 1.4, 2.017),  # overlaps: merged; 60.51 -> 61
        KeepSegment("b", 7.5, 99.0),  # clamped to the clip's 8 s
        KeepSegment("b", 2.0, 2.01),  # shorter than half a frame: nothing left
    ]
    assert snapped_keep_segments(clips, keeps) == [
        KeepSegment("a", 1.0, 61 / 30),
        KeepSegment("b", 7.5, 8.0),
    ]


def test_bad_input_is_refused_readably() -> None:
    clips = project(Fraction(30))
    with pytest.raises(ValueError, match="unknown clips: zz"):
        build_timeline("x", clips, [KeepSegment("zz", 0, 1)])
    with pytest.raises(ValueError, match="nothing is kept"):
        build_timeline("x", clips, [])
    relative = [
        TimelineClip("r", "r.mp4", Path("media/r.mp4"), 5.0, Fraction(30), 640, 360, None, None)
    ]
    with pytest.raises(ValueError, match="relative"):
        build_timeline("x", relative, [KeepSegment("r", 0, 1)])
    with pytest.raises(ValueError, match="unknown timeline format"):
        export_timeline("x", clips, KEEPS, "aaf")


# --------------------------------------------------------------------------- OTIO


@pytest.mark.parametrize("fps", RATES)
def test_otio_tracks_and_media_references(fps: Fraction) -> None:
    clips = project(fps, audio_only=True)
    timeline = build_timeline("Cut", clips, [*KEEPS, KeepSegment("v", 0.0, 1.0)])
    video, audio = timeline.tracks
    assert (video.kind, audio.kind) == (otio.schema.TrackKind.Video, otio.schema.TrackKind.Audio)
    assert [type(i).__name__ for i in video] == ["Clip", "Clip", "Clip", "Gap"]
    assert [type(i).__name__ for i in audio] == ["Clip", "Clip", "Clip", "Clip"]
    for item in audio:
        ref = item.media_reference
        assert ref.target_url.startswith("file:///")
        assert url_path(ref.target_url) in {c.path for c in clips}
        assert ref.available_range is not None and ref.available_range.duration.value > 0
        assert item.source_range.start_time.rate == pytest.approx(float(fps))
    assert video.duration() == audio.duration()
    assert audio.duration().value == 105 + 75 + round(float(fps))


@pytest.mark.parametrize("fps", RATES)
def test_otio_round_trip(fps: Fraction) -> None:
    clips = project(fps)
    content, media_type, filename = export_timeline("My Cut", clips, KEEPS, "otio")
    assert (media_type, filename) == ("application/json", "My_Cut.otio")
    reread = otio.adapters.read_from_string(content.decode(), adapter_name="otio_json")
    assert reread.name == "My Cut"
    assert read_keep_segments(content, "otio", clips) == expected_keeps(fps)


# --------------------------------------------------------------------------- FCPXML


@pytest.mark.parametrize("fps", RATES)
def test_fcpxml_structure(fps: Fraction) -> None:
    clips = project(fps)
    content, media_type, filename = export_timeline("My Cut", clips, KEEPS, "fcpxml")
    assert filename == "My_Cut.fcpxml" and media_type == "application/xml"
    root = ET.fromstring(content)
    assert root.tag == "fcpxml"

    (fmt,) = root.findall("./resources/format")
    assert fmt.get("frameDuration") == ("1/30s" if fps == 30 else "1001/30000s")
    assets = {a.get("id"): a for a in root.findall("./resources/asset")}
    assert {url_path(a.get("src", "")) for a in assets.values()} == {c.path for c in clips}
    for asset in assets.values():
        assert asset.get("src", "").startswith("file:///")
        assert asset.get("format") == fmt.get("id")
        assert parse_fcpx_time(asset.get("duration", "")) > 0

    sequence = root.find("./library/event/project/sequence")
    assert sequence is not None
    assert sequence.get("tcFormat") == ("NDF" if fps == 30 else "DF")
    assert parse_fcpx_time(sequence.get("duration", "")) == rational(180, fps)
    spine = sequence.findall("./spine/asset-clip")
    assert len(spine) == 3
    names = {"a": "take one.mp4", "b": "take2.mov"}
    for item, (clip_id, src_in, src_out), record in zip(
        spine, SOURCE_FRAMES, RECORD_FRAMES, strict=True
    ):
        assert assets[item.get("ref")].get("name") == names[clip_id]
        assert parse_fcpx_time(item.get("offset", "")) == rational(record, fps)
        assert parse_fcpx_time(item.get("start", "")) == rational(src_in, fps)
        assert parse_fcpx_time(item.get("duration", "")) == rational(src_out - src_in, fps)
    assert read_keep_segments(content, "fcpxml", clips) == expected_keeps(fps)


def test_fcpxml_rational_times_stay_exact_an_hour_in() -> None:
    fps = NTSC
    clips = [TimelineClip("a", "long.mp4", ROOT / "long.mp4", 7200.0, fps, 1280, 720, 48000, 2)]
    content, _, _ = export_timeline("Long", clips, [KeepSegment("a", 3600.0, 3610.0)], "fcpxml")
    (item,) = ET.fromstring(content).iter("asset-clip")
    start = parse_fcpx_time(item.get("start", ""))
    assert start == rational(107892, fps)  # round(3600 * 29.97...) = 107892
    assert (start * fps).denominator == 1  # on a frame boundary


def test_fcpx_adapter_reads_our_fcpxml_at_30fps() -> None:
    # otio-fcpx-xml-adapter 1.0.0 truncates rates to ints on read, so only whole rates check out.
    fps = Fraction(30)
    clips = project(fps)
    content, _, _ = export_timeline("My Cut", clips, KEEPS, "fcpxml")
    collection = otio.adapters.read_from_string(content.decode(), adapter_name="fcpx_xml")
    (timeline,) = list(collection.find_children(descended_from_type=otio.schema.Timeline))
    (track,) = timeline.tracks
    got = [
        (
            url_path(c.media_reference.target_url),
            c.source_range.start_time.value,
            c.source_range.end_time_exclusive().value,
        )
        for c in track.find_clips()
    ]
    paths = {c.clip_id: c.path for c in clips}
    assert got == [(paths[c], s, e) for c, s, e in SOURCE_FRAMES]


# --------------------------------------------------------------------------- Premiere (xmeml)


@pytest.mark.parametrize("fps", RATES)
def test_premiere_xml_structure(fps: Fraction) -> None:
    clips = project(fps)
    content, _, filename = export_timeline("My Cut", clips, KEEPS, "premiere")
    assert filename == "My_Cut.xml"
    root = ET.fromstring(content)
    assert root.tag == "xmeml"
    sequence = root.find(".//sequence")
    assert sequence is not None
    assert sequence.findtext("./rate/timebase") == "30"
    assert sequence.findtext("./rate/ntsc") == ("FALSE" if fps == 30 else "TRUE")
    assert sequence.findtext("./duration") == "180"

    files = {f.get("id"): f for f in root.iter("file") if f.find("pathurl") is not None}
    assert {url_path(f.findtext("pathurl", "")) for f in files.values()} == {c.path for c in clips}
    assert {f.findtext("name") for f in files.values()} == {"take one.mp4", "take2.mov"}
    for kind in ("video", "audio"):
        (track,) = sequence.findall(f"./media/{kind}/track")
        items = track.findall("clipitem")
        assert len(items) == 3
        for item, (_, src_in, src_out), record in zip(
            items, SOURCE_FRAMES, RECORD_FRAMES, strict=True
        ):
            assert item.find("file") is not None and item.find("file").get("id") in files
            assert int(item.findtext("in", "")) == src_in
            assert int(item.findtext("out", "")) == src_out
            assert int(item.findtext("start", "")) == record
            assert int(item.findtext("end", "")) == record + src_out - src_in
    # The adapter's own reader gives the same ranges back.
    assert read_keep_segments(content, "premiere", clips) == expected_keeps(fps)


# --------------------------------------------------------------------------- EDL


@pytest.mark.parametrize("fps", RATES)
def test_edl_round_trip(fps: Fraction) -> None:
    clips = project(fps)
    content, media_type, filename = export_timeline("My Cut", clips, KEEPS, "edl")
    assert (media_type, filename) == ("text/plain", "My_Cut.edl")
    text = content.decode()
    events = [line.split() for line in text.splitlines() if line[:3].isdigit()]
    assert len(events) == 3
    assert {e[2] for e in events} == {"B"}  # picture and sound
    assert [e[1] for e in events] == ["takeone", "takeone", "take2"]  # one reel per file
    if fps == 30:
        assert "FCM: NON-DROP FRAME" in text
        assert events[1][4:8] == ["00:00:04:00", "00:00:06:00", "00:00:01:15", "00:00:03:15"]
    else:
        assert "FCM: DROP FRAME" in text
        assert all(";" in tc for e in events for tc in e[4:8])
    assert f"* FROM CLIP: {(ROOT / 'take one.mp4').as_uri()}" in text
    reread = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=float(fps))
    assert sorted(t.name for t in reread.tracks) == ["A1", "V"]
    assert read_keep_segments(content, "edl", clips) == expected_keeps(fps)


def test_edl_drop_frame_timecode_past_a_minute() -> None:
    clips = [TimelineClip("a", "a.mp4", ROOT / "a.mp4", 600.0, NTSC, 1280, 720, 48000, 2)]
    keeps = [KeepSegment("a", 180.04, 181.0)]
    content, _, _ = export_timeline("DF", clips, keeps, "edl")
    (event,) = [line.split() for line in content.decode().splitlines() if line[:3].isdigit()]
    # 180.04 s at 29.97 is frame 5396; drop-frame skips labels ;00 and ;01 at minutes 1, 2, 3,
    # so that frame is labelled 00:03:00;02 (frame 5395 is 00:02:59;29).
    assert event[4] == "00:03:00;02"
    assert read_keep_segments(content, "edl", clips) == snapped_keep_segments(clips, keeps)


# --------------------------------------------------------------------------- mixed project


@pytest.mark.parametrize("fmt", ["otio", "fcpxml", "premiere", "edl"])
def test_audio_only_clip_round_trips(fmt: str) -> None:
    clips = project(NTSC, audio_only=True)
    keeps = [*KEEPS, KeepSegment("v", 0.25, 2.0)]
    content, _, _ = export_timeline("Mixed", clips, keeps, fmt)
    assert read_keep_segments(content, fmt, clips) == snapped_keep_segments(clips, keeps)
    if fmt == "edl":
        channels = [line.split()[2] for line in content.decode().splitlines() if line[:3].isdigit()]
        assert channels == ["B", "B", "B", "A"]
    if fmt == "fcpxml":
        voice = [a for a in ET.fromstring(content).iter("asset") if a.get("name") == "voice.wav"]
        assert voice[0].get("hasVideo") == "0" and voice[0].get("audioRate") == "44100"
    if fmt == "premiere":
        sequence = ET.fromstring(content).find(".//sequence")
        assert sequence is not None
        assert len(sequence.findall("./media/video/track/clipitem")) == 3
        assert len(sequence.findall("./media/audio/track/clipitem")) == 4


# --------------------------------------------------------------------------- captions

CAPTION_CLIPS = project(Fraction(30))
CAPTION_KEEPS = [KeepSegment("a", 1.0, 3.0), KeepSegment("a", 4.0, 6.0), KeepSegment("b", 0.0, 2.0)]
WORDS = {
    "a": [
        {"word": " hello", "start": 1.1, "end": 1.5},  # -> 0.1-0.5
        {"word": " world", "start": 1.6, "end": 2.0},  # -> 0.6-1.0
        {"word": " edge", "start": 2.6, "end": 3.2},  # midpoint kept, end clamped -> 1.6-2.0
        {"word": " gone", "start": 3.2, "end": 3.6},  # inside the cut: dropped
        {"word": " again", "start": 3.9, "end": 4.3},  # start clamped -> 2.0-2.3
        {"word": " after", "start": 5.2, "end": 5.5},  # 0.9 s pause: new cue -> 3.2-3.5
    ],
    "b": [{"word": " bee", "start": 0.1, "end": 0.4}],  # -> 4.1-4.4
}


def test_srt_cue_timing_across_cuts() -> None:
    content, media_type, filename = export_timeline(
        "Cut", CAPTION_CLIPS, CAPTION_KEEPS, "srt", WORDS
    )
    assert (media_type, filename) == ("application/x-subrip", "Cut.srt")
    assert content.decode() == (
        "1\n00:00:00,100 --> 00:00:02,300\nhello world edge again\n\n"
        "2\n00:00:03,200 --> 00:00:04,400\nafter bee\n"
    )


def test_vtt_cue_timing_across_cuts() -> None:
    content, media_type, _ = export_timeline("Cut", CAPTION_CLIPS, CAPTION_KEEPS, "vtt", WORDS)
    assert media_type == "text/vtt"
    assert content.decode() == (
        "WEBVTT\n\n"
        "00:00:00.100 --> 00:00:02.300\nhello world edge again\n\n"
        "00:00:03.200 --> 00:00:04.400\nafter bee\n"
    )


def test_cues_split_at_42_chars_and_7_seconds() -> None:
    long_words = [Word("abcdefghi", i * 0.5, i * 0.5 + 0.5) for i in range(6)]
    assert [c.text.count("abcdefghi") for c in group_cues(long_words)] == [
        4,
        2,
    ]  # 39 chars, then 49
    steady = [Word("x", float(i), float(i + 1)) for i in range(10)]
    cues = group_cues(steady)
    assert [(c.start, c.end) for c in cues] == [(0.0, 7.0), (7.0, 10.0)]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_captions_need_a_transcript(fmt: str) -> None:
    for words in (None, {}, {"a": []}):
        with pytest.raises(ValueError, match=MISSING_TRANSCRIPT):
            export_timeline("Cut", CAPTION_CLIPS, CAPTION_KEEPS, fmt, words)


def test_formats_table() -> None:
    assert set(FORMATS) == {"fcpxml", "premiere", "edl", "otio", "srt", "vtt"}
    assert FORMATS["fcpxml"][1] == "fcpxml" and FORMATS["otio"][1] == "otio"


def test_timeline_rate_is_the_first_picture_clip_and_exact_ntsc() -> None:
    voice = TimelineClip(
        "v", "voice.wav", ROOT / "voice.wav", 3.0, Fraction(0), None, None, 44100, 1
    )
    # A probe that reports 29.97 (or its float) still gives an exact 30000/1001 timeline.
    video = TimelineClip("a", "a.mp4", ROOT / "a.mp4", 10.0, Fraction("29.97"), 1280, 720, 48000, 2)
    content, _, _ = export_timeline("R", [voice, video], [KeepSegment("a", 1.0, 2.0)], "fcpxml")
    (fmt,) = ET.fromstring(content).iter("format")
    assert fmt.get("frameDuration") == "1001/30000s"
    edl, _, _ = export_timeline("R", [voice], [KeepSegment("v", 0.0, 1.0)], "edl")
    assert "FCM: NON-DROP FRAME" in edl.decode()  # audio-only: 30 fps grid

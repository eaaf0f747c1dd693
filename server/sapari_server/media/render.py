"""Render keep-segments of one or more source files into one H.264/AAC MP4.

The render is exact and streaming:

* Every piece is snapped to its source's frame grid first, and all cut arithmetic is done in
  exact fractions from those snapped times. Output video frame and audio sample positions are
  derived from the *cumulative* output time (``round(T * rate)``), never by adding up rounded
  per-piece lengths, so 100 cuts drift no more than one cut does.
* Each source is demuxed once per run of pieces (audio and video packets interleaved, as the
  file stores them), decoded forward, and frames/samples outside the pieces are dropped.
  Large forward gaps and backward jumps seek to the keyframe before the piece instead.
* Nothing is ever accumulated: a video frame is held only until the next one arrives (to know
  how long it stays on screen) and a few frames wait for the encoder thread; the audio track
  is read, cut and encoded by ``render_audio``'s worker threads in bounded chunks.
* Matched to the source (``RenderSettings.match_source``, the default): the CRF is never
  below an x264 source's own, x264's VBV max rate is the source's measured video bitrate,
  keyframes come as often as the source's, and audio is encoded at the source's average
  bitrate, so the output lands near ``source size x kept fraction`` instead of above it.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.error
import numpy as np

from .. import threads
from .errors import MediaError
from .probe import AudioCoding, Coding, VideoCoding, audio_rate_over, coding

SEEK_GAP = Fraction(2)  # decode through gaps up to this long; seek past longer ones
SEEK_PREROLL = Fraction(1, 10)  # land this far before a piece so the AAC decoder warms up
AUDIO_RESYNC = Fraction(1, 100)  # trust audio pts over our running count past this jitter
ENCODE_QUEUE = 8  # decoded frames waiting for the encoder thread
PROGRESS_INTERVAL = 0.1  # seconds between progress callbacks (at most ~10 per second)
HALF = Fraction(1, 2)


@dataclass(frozen=True)
class Piece:
    """One keep-segment of one source file, in that file's seconds."""

    path: Path
    start: float
    end: float


@dataclass
class RenderSettings:
    container: str = "mp4"
    video_codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 20
    audio_codec: str = "aac"
    audio_bitrate: int = 128_000
    width: int | None = None  # None: first source's size (even-rounded)
    height: int | None = None
    fade: float = 0.005  # seconds of fade-out/in at each cut so no click is heard
    # Re-encode no better than the source: the CRF is never below an x264 source's own, the
    # video bitrate is capped (VBV) at the source's measured rate, and audio is encoded at the
    # source's measured bitrate; so the output lands in the source's size class.
    match_source: bool = True
    # "smart" stream-copies untouched GOPs and re-encodes only around cuts (see
    # smart_render); "auto" uses it whenever the sources and settings allow, else exact.
    mode: Literal["auto", "exact", "smart"] = "auto"


@dataclass
class RenderResult:
    duration: float  # output duration in seconds
    video_frames: int
    audio_samples: int
    pieces: list[Piece]  # the pieces as actually cut (snapped to the frame grid)
    mode: str = "exact"  # the renderer that ran: "exact" or "smart"
    copied_frames: int = 0  # video frames stream-copied from the sources
    encoded_frames: int = 0  # video frames decoded and re-encoded
    mode_reason: str = ""  # why smart was not used, when it was not


def _nearest(x: Fraction) -> int:
    """Round half up; Python's round() is banker's rounding, which would make cut positions
    depend on the parity of a frame index."""
    return math.floor(x + HALF)


def _grid_index(t: float, rate: Fraction) -> int:
    return _nearest(Fraction(t) * rate)


def snap_pieces(pieces: Iterable[Piece], fps: Fraction | float | int) -> list[Piece]:
    """Snap each piece's start and end to the nearest frame of a `fps` grid; drop pieces that
    become empty. Snapping a snapped piece again gives the same piece."""
    rate = Fraction(fps)
    if rate <= 0:
        raise MediaError(f"Frame rate {fps} is not positive; pass the source's frame rate.")
    out: list[Piece] = []
    for p in pieces:
        a, b = _grid_index(p.start, rate), _grid_index(p.end, rate)
        if b > a:
            out.append(Piece(Path(p.path), float(a / rate), float(b / rate)))
    return out


# --------------------------------------------------------------------------- probing


@dataclass
class _Source:
    path: Path
    has_video: bool
    has_audio: bool
    fps: Fraction | None
    width: int
    height: int
    sample_rate: int
    layout: str
    duration: Fraction | None  # seconds from the first frame, when the file says

    @property
    def grid(self) -> Fraction:
        """The rate pieces snap to: frames, or samples for an audio-only file."""
        return self.fps if self.fps is not None else Fraction(self.sample_rate)


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise MediaError(
            f"{path.name} could not be read as audio or video ({e}); "
            "re-export it as MP4 (H.264/AAC) and upload it again.",
            path=str(path),
        ) from e


def _probe(path: Path) -> _Source:
    if not path.is_file():
        raise MediaError(
            f"Source file {path} was not found; check the path or upload the clip again.",
            path=str(path),
        )
    with _open(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        if v is None and a is None:
            raise MediaError(
                f"{path.name} has neither video nor audio; upload a recording with sound.",
                path=str(path),
            )
        fps: Fraction | None = None
        width = height = 0
        if v is not None:
            rate = _frame_rate(v)
            if rate is None:
                raise MediaError(
                    f"{path.name} does not say its frame rate; re-export it at a constant "
                    "frame rate (e.g. 30 fps).",
                    path=str(path),
                )
            fps = rate
            width, height = v.codec_context.width, v.codec_context.height
        main = v if v is not None else a
        assert main is not None
        duration: Fraction | None = None
        if main.duration is not None and main.time_base is not None:
            duration = main.duration * main.time_base
        elif c.duration is not None:
            duration = Fraction(c.duration, av.time_base)
        return _Source(
            path=path,
            has_video=v is not None,
            has_audio=a is not None,
            fps=fps,
            width=width,
            height=height,
            sample_rate=a.rate if a is not None else 0,
            layout=_layout_name(a.layout) if a is not None else "",
            duration=duration,
        )


STANDARD_RATES = tuple(
    Fraction(r)
    for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60")
)


def _frame_rate(v: av.VideoStream) -> Fraction | None:
    """The source's frame grid. Containers for variable-rate recordings often report a
    timebase-like r_frame_rate (e.g. 1000 for WebM) and a ragged average (29.97003...);
    prefer the average then, and snap near-standard rates to the exact standard one."""
    guessed, average = v.guessed_rate, v.average_rate
    rate = guessed or average or v.base_rate
    if guessed and average and guessed > average * Fraction(3, 2):
        rate = average
    if not rate or rate <= 0:
        return None
    rate = Fraction(rate)
    nearest = min(STANDARD_RATES, key=lambda std: abs(rate - std))
    if abs(rate - nearest) <= nearest / 2000:  # 0.05%: well inside 30 vs 30000/1001 (0.1%)
        return nearest
    return rate if rate.denominator <= 1001 else rate.limit_denominator(1001)


def _layout_name(layout: av.AudioLayout) -> str:
    n = len(layout.channels)
    return {1: "mono", 2: "stereo"}.get(n, layout.name)


# --------------------------------------------------------------------------- planning


@dataclass
class _Cut:
    """One snapped piece with its place in the output, all exact."""

    src: _Source
    a: int  # first grid index kept (frames, or samples for audio-only)
    b: int  # first grid index dropped
    t0: Fraction  # output time where the piece starts
    v0: int = 0  # output frames [v0, v1)
    v1: int = 0
    s0: int = 0  # output samples [s0, s1)
    s1: int = 0
    src_s0: int = 0  # source sample (at the output rate) the audio starts at
    fade_in: int = 0
    fade_out: int = 0
    # A slice of a cut (render_audio's chunks) shapes its fades as the whole cut would:
    # fade_off is where the slice starts inside the cut, fade_len the whole cut's length.
    fade_off: int = 0
    fade_len: int = 0

    @property
    def start(self) -> Fraction:
        return self.a / self.src.grid

    @property
    def end(self) -> Fraction:
        return self.b / self.src.grid


@dataclass
class _Plan:
    cuts: list[_Cut]
    has_video: bool
    has_audio: bool
    fps: Fraction  # output frame rate
    width: int
    height: int
    sample_rate: int
    layout: str
    total_frames: int
    total_samples: int
    snapped: list[Piece] = field(default_factory=list)
    coding: Coding | None = None  # how the first source was encoded (re-encodes match it)
    kept_audio_rate: int | None = None  # bit/s the first source's audio spent on the pieces


def _tracks(s: _Source) -> str:
    if s.has_video and s.has_audio:
        return "video and audio"
    return "only video" if s.has_video else "only audio"


def _even(n: int) -> int:
    return max(2, n - n % 2)


# The VBV cap on a re-encode: the source's measured video bitrate (scaled by picture area)
# times this headroom, over a buffer of VBV_SECONDS. A short re-encoded run starts with an
# IDR picture the buffer's initial fill pays for; over a stretch the cap holds the average.
VBV_HEADROOM = 1.0
VBV_SECONDS = 2
MIN_AUDIO_BITRATE = 24_000  # per channel: below this AAC/Opus speech turns metallic
MAX_AUDIO_BITRATE = 320_000


def matched_crf(settings: RenderSettings, source: VideoCoding | None) -> int:
    """The CRF asked for, but never below an x264 source's own: a re-encode cannot add
    quality, only bits."""
    crf = settings.crf
    if settings.match_source and source is not None and source.crf is not None:
        crf = max(crf, math.ceil(source.crf - 1e-6))
    return crf


def vbv_kbps(
    settings: RenderSettings,
    source: VideoCoding | None,
    width: int,
    height: int,
    headroom: float = VBV_HEADROOM,
) -> int | None:
    """The VBV max rate (kbit/s) that keeps a re-encode in the source's size class.

    `headroom` allows for an encoder less efficient than the source's (ultrafast against a
    medium-preset source needs about twice the bits for the same picture)."""
    if not settings.match_source or source is None or not source.bit_rate:
        return None
    if not (source.width and source.height):
        return None
    scale = (width * height) / (source.width * source.height)
    return max(16, round(source.bit_rate * scale * headroom / 1000))


def encoder_options(
    settings: RenderSettings,
    source: VideoCoding | None = None,
    width: int = 0,
    height: int = 0,
    fps: Fraction | None = None,
) -> dict[str, str]:
    """Quality (CRF) and speed for each video encoder the PyAV wheels carry, matched to the
    source when ``settings.match_source``: CRF no lower than the source's, bitrate capped at
    its measured rate (x264), keyframes as often as the source's (so an export can be
    smart-rendered again)."""
    crf = str(matched_crf(settings, source))
    if settings.video_codec in ("libx264", "libx265"):
        opts = {"preset": settings.preset, "crf": crf}
        params = []
        cap = vbv_kbps(settings, source, width, height)
        if cap is not None and settings.video_codec == "libx264":
            params.append(f"vbv-maxrate={cap}:vbv-bufsize={cap * VBV_SECONDS}")
        if settings.match_source and source is not None and source.gop and fps:
            # Cameras and OBS key every 1-2 s; x264 alone keys every 250 frames.
            gop = min(max(source.gop, 1), int(10 * fps))
            params.append(f"keyint={gop}")
        if params:
            opts["x264-params" if settings.video_codec == "libx264" else "x265-params"] = ":".join(
                params
            )
        return opts
    if settings.video_codec == "libvpx-vp9":
        # Constant quality needs b:v 0; cpu-used 5 with row threading keeps VP9 usable here.
        return {"crf": crf, "b:v": "0", "deadline": "good", "cpu-used": "5", "row-mt": "1"}
    if settings.video_codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its config banner otherwise
        return {"crf": crf, "preset": "8"}
    return {}


def audio_bit_rate(
    settings: RenderSettings, source: AudioCoding | None, kept_rate: int | None = None
) -> int:
    """The source's average audio bitrate, so the output is in its size class; else the
    settings'.

    An edit removes pauses, which cost an AAC encoder almost nothing, so the kept parts are
    denser than the file's average: the source spent `kept_rate` on them. An encoder asked
    for N bit/s overshoots on such content by about the same factor, so it is asked for
    average / (kept_rate / average), and the output lands at about the source's average
    rate (what "source size x kept fraction" means) instead of above it."""
    if not settings.match_source or source is None or not source.bit_rate:
        return settings.audio_bitrate
    channels = max(1, source.channels)
    rate = source.bit_rate
    if kept_rate and kept_rate > rate:
        rate = rate * rate / kept_rate
    rate = round(rate, -3)
    return max(MIN_AUDIO_BITRATE * channels, min(MAX_AUDIO_BITRATE, rate))


def output_size(width: int, height: int, settings: RenderSettings) -> tuple[int, int]:
    """The output picture size: the settings' (one side keeps the aspect), even for 4:2:0."""
    if settings.width and settings.height:
        width, height = settings.width, settings.height
    elif settings.width:
        width, height = settings.width, round(settings.width * height / width)
    elif settings.height:
        width, height = round(settings.height * width / height), settings.height
    return _even(width), _even(height)


def _plan(pieces: list[Piece], settings: RenderSettings) -> _Plan:
    if not pieces:
        raise MediaError(
            "Nothing to render: the edit keeps no part of the clip; keep at least one segment."
        )
    sources: dict[Path, _Source] = {}
    for i, p in enumerate(pieces, 1):
        if not (math.isfinite(p.start) and math.isfinite(p.end)) or p.end <= p.start:
            raise MediaError(
                f"Segment {i} ({p.start:.3f}-{p.end:.3f} s of {Path(p.path).name}) ends before it "
                "starts; give every segment an end after its start."
            )
        if p.start < 0:
            raise MediaError(
                f"Segment {i} of {Path(p.path).name} starts at {p.start:.3f} s, before the file "
                "begins; start segments at 0 s or later."
            )
        path = Path(p.path)
        if path not in sources:
            sources[path] = _probe(path)

    first = sources[Path(pieces[0].path)]
    for src in sources.values():
        if (src.has_video, src.has_audio) != (first.has_video, first.has_audio):
            raise MediaError(
                f"{first.path.name} has {_tracks(first)} but {src.path.name} has {_tracks(src)}; "
                "one render needs all clips to have the same kinds of tracks. Render them "
                "separately or re-export the odd one with the missing track."
            )

    fps = first.fps if first.fps is not None else Fraction(first.sample_rate)
    sample_rate = first.sample_rate or 48_000
    width = height = 0
    if first.has_video:
        width, height = output_size(first.width, first.height, settings)

    cuts: list[_Cut] = []
    snapped: list[Piece] = []
    t = Fraction(0)
    for i, p in enumerate(pieces, 1):
        src = sources[Path(p.path)]
        grid = src.grid
        a, b = _grid_index(p.start, grid), _grid_index(p.end, grid)
        if src.duration is not None:
            last = _nearest(src.duration * grid)
            if a >= last or b > last + 1:
                raise MediaError(
                    f"Segment {i} asks for {p.start:.3f}-{p.end:.3f} s of {src.path.name}, but "
                    f"the file is only {float(src.duration):.3f} s long; trim the segment to end "
                    f"by {float(src.duration):.3f} s."
                )
            b = min(b, last)  # up to one frame past the end is rounding, not a mistake
        if b <= a:
            continue  # shorter than half a frame: nothing to cut
        cut = _Cut(src=src, a=a, b=b, t0=t)
        t += cut.end - cut.start
        cut.v0, cut.v1 = _nearest(cut.t0 * fps), _nearest(t * fps)
        cut.s0, cut.s1 = _nearest(cut.t0 * sample_rate), _nearest(t * sample_rate)
        cut.src_s0 = _nearest(cut.start * sample_rate)
        cuts.append(cut)
        snapped.append(Piece(src.path, float(cut.start), float(cut.end)))
    if not cuts:
        raise MediaError(
            "Every segment is shorter than one frame, so nothing is left to render; "
            "keep longer segments."
        )

    fade = max(0, _nearest(Fraction(settings.fade) * sample_rate))
    for k, cut in enumerate(cuts):
        n = cut.s1 - cut.s0
        prev = cuts[k - 1] if k > 0 else None
        nxt = cuts[k + 1] if k + 1 < len(cuts) else None
        # No fade where the next piece simply continues the same file: that is no cut.
        joined_before = prev is not None and prev.src is cut.src and prev.b == cut.a
        joined_after = nxt is not None and nxt.src is cut.src and nxt.a == cut.b
        starts_file = prev is None and cut.a == 0
        ends_file = nxt is None and (cut.src.duration is not None and cut.end >= cut.src.duration)
        cut.fade_in = 0 if joined_before or starts_file else min(fade, n // 2)
        cut.fade_out = 0 if joined_after or ends_file else min(fade, n // 2)

    return _Plan(
        cuts=cuts,
        has_video=first.has_video,
        has_audio=first.has_audio,
        fps=fps,
        width=width,
        height=height,
        sample_rate=sample_rate,
        layout=first.layout or "stereo",
        total_frames=cuts[-1].v1 if first.has_video else 0,
        total_samples=cuts[-1].s1 if first.has_audio else 0,
        snapped=snapped,
        coding=coding(first.path) if settings.match_source else None,
        kept_audio_rate=audio_rate_over(
            first.path, [(float(c.start), float(c.end)) for c in cuts if c.src is first]
        )
        if settings.match_source and first.has_audio
        else None,
    )


def _groups(cuts: list[_Cut]) -> Iterator[list[list[_Cut]]]:
    """Consecutive cuts of one file (one open), split into runs that decode straight through;
    a new run (a seek) starts on a backward jump or a gap longer than SEEK_GAP."""
    group: list[list[_Cut]] = []
    for cut in cuts:
        if group and group[-1][-1].src is cut.src:
            prev = group[-1][-1]
            if cut.start >= prev.end and cut.start - prev.end <= SEEK_GAP:
                group[-1].append(cut)
            else:
                group.append([cut])
            continue
        if group:
            yield group
        group = [[cut]]
    if group:
        yield group


# --------------------------------------------------------------------------- output


class _Writer:
    """Owns the output container: encodes video frames as they come (exact render) or muxes
    copied/re-encoded packets (smart render); the audio track comes from render_audio's
    worker threads, interleaved by time."""

    def __init__(
        self,
        path: Path,
        plan: _Plan,
        settings: RenderSettings,
        progress: Callable[[float], None] | None,
        video_stream: Callable[[av.container.OutputContainer], av.VideoStream] | None = None,
    ) -> None:
        """`video_stream`, when given, adds a stream-copy video track instead of the encoder
        (smart render); its packets are muxed by the caller."""
        from . import render_audio  # imports this module: late import avoids a cycle

        self.plan = plan
        options = {"movflags": "+faststart"} if settings.container in ("mp4", "mov") else {}
        self.out = av.open(str(path), "w", format=settings.container, options=options)
        self.v: av.VideoStream | None = None
        self.a: av.AudioStream | None = None
        self.v_encodes = video_stream is None
        coding = plan.coding
        if plan.has_video and video_stream is not None:
            self.v = video_stream(self.out)
        elif plan.has_video:
            v = self.out.add_stream(settings.video_codec, rate=plan.fps)
            v.width, v.height = plan.width, plan.height
            v.pix_fmt = "yuv420p"
            v.codec_context.time_base = 1 / plan.fps
            v.options = encoder_options(
                settings, coding.video if coding else None, plan.width, plan.height, plan.fps
            )
            if settings.video_codec in ("libx264", "libx265"):
                # Frame threads, 1.5 per core as x264's own default (and ffmpeg's): x264's
                # slice threads (PyAV's default) kept the exact render near one core, and
                # one frame thread per core left cores idle while a frame waited on its
                # reference.
                v.codec_context.thread_type = "FRAME"
                v.codec_context.thread_count = max(1, 3 * threads.render_threads() // 2)
            self.v = v
        self.audio_config: render_audio.AudioConfig | None = None
        if plan.has_audio:
            bit_rate = audio_bit_rate(
                settings, coding.audio if coding else None, plan.kept_audio_rate
            )
            a = self.out.add_stream(settings.audio_codec, rate=plan.sample_rate, layout=plan.layout)
            a.bit_rate = bit_rate
            opts = render_audio.audio_options(settings.audio_codec)
            if opts:
                a.options = dict(opts)
            self.a = a
            self.audio_config = render_audio.AudioConfig(
                settings.audio_codec, plan.sample_rate, plan.layout, bit_rate, opts
            )
        self.out.start_encoding()  # opens the encoders, so the AAC frame size is known
        self.track: render_audio.AudioTrack | None = None
        if self.a is not None and self.audio_config is not None:
            self.track = render_audio.AudioTrack(
                plan, self.out, self.a, self.audio_config, threads.render_threads()
            )
        self.frames = 0
        self.progress = progress
        self.last_progress = 0.0
        # Exact render: frames go to an encoder thread through a short queue (a few frames:
        # memory stays flat) so decoding and encoding overlap.
        self.frames_q: queue.Queue[tuple[av.VideoFrame, int] | None] = queue.Queue(ENCODE_QUEUE)
        self.encoder_thread: threading.Thread | None = None
        self.encode_error: BaseException | None = None

    @property
    def samples(self) -> int:
        """Audio samples in the output track so far."""
        return self.track.samples if self.track is not None else 0

    # video
    def video(self, frame: av.VideoFrame, pts: int) -> None:
        """Queue a frame for the encoder thread (decode and encode overlap on two cores)."""
        if self.encoder_thread is None:
            self.encoder_thread = threading.Thread(
                target=self._encode_loop, name="render-video-encode", daemon=True
            )
            self.encoder_thread.start()
        while True:
            if self.encode_error is not None:
                raise self.encode_error
            try:
                self.frames_q.put((frame, pts), timeout=0.1)
                break
            except queue.Full:
                continue
        self.frames += 1
        self._tick()

    def _encode_loop(self) -> None:
        """Encode and mux queued frames; the only thread that muxes while it runs."""
        assert self.v is not None
        try:
            while True:
                item = self.frames_q.get()
                if item is None:
                    for pkt in self.v.encode(None):
                        self.mux_video(pkt)
                    return
                frame, pts = item
                frame.pts = pts  # a held frame shown twice is queued twice: pts set here
                frame.time_base = 1 / self.plan.fps
                for pkt in self.v.encode(frame):
                    self.mux_video(pkt)
        except BaseException as e:  # handed to the decoding thread, which re-raises it
            self.encode_error = e
            while self.frames_q.get() is not None:  # unblock the producer, then stop
                pass

    def _stop_encoder(self) -> None:
        if self.encoder_thread is None:
            return
        self.frames_q.put(None)
        self.encoder_thread.join()
        self.encoder_thread = None
        if self.encode_error is not None:
            raise self.encode_error

    def mux_video(self, pkt: av.Packet) -> None:
        """Mux a video packet after the audio that plays before it."""
        if self.track is not None and pkt.dts is not None and pkt.time_base is not None:
            self.track.mux_until(max(Fraction(0), pkt.dts * pkt.time_base))
        self.out.mux(pkt)

    def _tick(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_INTERVAL:
            return
        self.last_progress = now
        p = self.plan
        if p.has_video:
            done = self.frames / p.total_frames
        else:
            done = self.samples / max(1, p.total_samples)
        self.progress(min(done, 1.0))

    def finish(self) -> None:
        if self.v is not None and self.v_encodes:
            if self.encoder_thread is not None:
                self._stop_encoder()
            else:
                for pkt in self.v.encode(None):
                    self.mux_video(pkt)
        if self.track is not None:
            if not self.plan.has_video:
                # Audio only: mux chunk by chunk so progress moves.
                while not self.track.done:
                    self.track.mux_until(self.track.t + 1)
                    self._tick()
            self.track.mux_until(None)
            self.track.close()
        self.out.close()

    def close(self) -> None:
        """Close after a failure; the half-written file is discarded anyway."""
        if self.encoder_thread is not None:
            try:
                self._stop_encoder()
            except BaseException:  # noqa: BLE001  # the first failure is already raised
                pass
        if self.track is not None:
            self.track.close()
        try:
            self.out.close()
        except (av.error.FFmpegError, OSError, ValueError):
            pass


# --------------------------------------------------------------------------- one source


class _SourceReader:
    """Decodes one open source through a list of runs, feeding the writer."""

    def __init__(
        self,
        container: av.container.InputContainer,
        plan: _Plan,
        writer: _Writer,
        with_video: bool = True,
        with_audio: bool = True,
    ) -> None:
        """`with_video=False` reads audio only, still timed against the video's start;
        `with_audio=False` reads video only."""
        self.c = container
        self.plan = plan
        self.w = writer
        video = container.streams.video[0] if plan.has_video else None
        self.vs = video if with_video else None
        self.as_ = container.streams.audio[0] if plan.has_audio and with_audio else None
        if self.vs is not None:
            self.vs.thread_type = "AUTO"  # frame threads: decode is the other half of the cost
        main = video if video is not None else self.as_
        assert main is not None
        start = main.start_time
        if video is None and (start is None or start < 0):
            start = 0  # audio priming before 0 is not part of the clip
        self.origin_pts = start or 0
        self.origin = self.origin_pts * main.time_base  # seconds where the file's 0 s is
        self.black: av.VideoFrame | None = None
        self.last_out: av.VideoFrame | None = None

    # -- run loop
    def run(self, cuts: list[_Cut], seek: bool) -> None:
        if seek:
            self._seek(cuts[0].start)
        self.cuts = cuts
        # video state
        self.vi = 0
        self.held: av.VideoFrame | None = None
        self.held_out: av.VideoFrame | None = None
        self.next_pts = cuts[0].v0
        self.last_vpos: Fraction | None = None
        self.v_done = self.vs is None
        # audio state
        self.ai = 0
        self.written = 0  # samples written into the current cut
        self.apos: int | None = None  # source sample (output rate) of the next decoded sample
        self.a_done = self.as_ is None
        self.resampler = (
            av.AudioResampler(format="fltp", layout=self.plan.layout, rate=self.plan.sample_rate)
            if self.as_ is not None
            else None
        )

        streams = [s for s in (self.vs, self.as_) if s is not None]
        for packet in self.c.demux(*streams):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue  # one damaged packet: skip it, the timestamps keep us in sync
            for frame in frames:
                if isinstance(frame, av.VideoFrame):
                    if not self.v_done:
                        self._on_video(frame)
                elif not self.a_done:
                    self._on_audio(frame)
            if self.v_done and self.a_done:
                break
        else:
            if self.resampler is not None and not self.a_done:
                self._feed_resampled(self.resampler.resample(None))
        # End of file (or a stream shorter than asked): fill the rest so sync holds.
        while not self.v_done:
            self._finish_video_cut()
        while not self.a_done:
            self._pad_audio(self.cuts[self.ai].s1 - self.cuts[self.ai].s0 - self.written)

    def _seek(self, start: Fraction) -> None:
        main = self.vs if self.vs is not None else self.as_
        assert main is not None
        target = max(Fraction(0), start - SEEK_PREROLL) + self.origin
        self.c.seek(math.floor(target / main.time_base), stream=main, backward=True)
        for s in (self.vs, self.as_):
            if s is not None:
                s.codec_context.flush_buffers()

    # -- video
    def _on_video(self, frame: av.VideoFrame) -> None:
        vs = self.vs
        assert vs is not None
        cut_rate = self.cuts[0].src.grid
        if frame.pts is None:
            # No timestamp: assume it directly follows the previous frame.
            pos = (self.last_vpos + 1) if self.last_vpos is not None else Fraction(0)
        else:
            pos = (frame.pts - self.origin_pts) * vs.time_base * cut_rate
        self.last_vpos = pos
        index = _nearest(pos)
        while index >= self.cuts[self.vi].b:
            self._finish_video_cut()
            if self.v_done:
                return
        cut = self.cuts[self.vi]
        if index < cut.a:
            return
        if self.held is not None:
            # The held frame is nearest to every output frame that maps before this one's
            # midpoint: show it there (once per output frame; duplicates/drops on fps changes).
            self._emit_until(cut, pos - HALF)
        self.held, self.held_out = frame, None

    def _source_pos(self, cut: _Cut, g: int) -> Fraction:
        """Source frame position shown by output frame g of `cut`."""
        return cut.a + (Fraction(g) / self.plan.fps - cut.t0) * cut.src.grid

    def _emit_until(self, cut: _Cut, limit: Fraction | None) -> None:
        while self.next_pts < cut.v1 and (
            limit is None or self._source_pos(cut, self.next_pts) < limit
        ):
            self.w.video(self._prepared(), self.next_pts)
            self.next_pts += 1

    def _prepared(self) -> av.VideoFrame:
        if self.held_out is None:
            if self.held is None:
                self.held_out = self.last_out or self._black()
            else:
                f = self.held
                if (f.width, f.height, f.format.name) != (
                    self.plan.width,
                    self.plan.height,
                    "yuv420p",
                ):
                    f = f.reformat(self.plan.width, self.plan.height, "yuv420p")
                f.pict_type = av.video.frame.PictureType.NONE  # let x264 pick keyframes
                self.held_out = f
            self.last_out = self.held_out
        return self.held_out

    def _black(self) -> av.VideoFrame:
        if self.black is None:
            w, h = self.plan.width, self.plan.height
            img = np.full((h * 3 // 2, w), 128, np.uint8)
            img[:h] = 16
            self.black = av.VideoFrame.from_ndarray(img, format="yuv420p")
        return self.black

    def _finish_video_cut(self) -> None:
        cut = self.cuts[self.vi]
        self._emit_until(cut, None)
        self.held, self.held_out = None, None
        self.vi += 1
        if self.vi == len(self.cuts):
            self.v_done = True
        else:
            self.next_pts = self.cuts[self.vi].v0

    # -- audio
    def _on_audio(self, frame: av.AudioFrame) -> None:
        assert self.resampler is not None
        self._feed_resampled(self.resampler.resample(frame))

    def _feed_resampled(self, frames: list[av.AudioFrame]) -> None:
        rate = self.plan.sample_rate
        for rf in frames:
            if rf.pts is not None and rf.time_base is not None:
                pos = _nearest((rf.pts * rf.time_base - self.origin) * rate)
                # Small jitter: keep counting. A real jump (gap, seek): believe the pts.
                if self.apos is None or abs(pos - self.apos) > AUDIO_RESYNC * rate:
                    self.apos = pos
            elif self.apos is None:
                self.apos = 0
            assert self.apos is not None
            data = rf.to_ndarray().reshape(self.w.channels, -1)
            self._feed(data, self.apos)
            self.apos += data.shape[1]
            if self.a_done:
                return

    def _feed(self, data: np.ndarray, pos: int) -> None:
        n = data.shape[1]
        off = 0
        while off < n and not self.a_done:
            cut = self.cuts[self.ai]
            need = cut.src_s0 + self.written  # next source sample this cut wants
            cur = pos + off
            if cur < need:
                off += min(need - cur, n - off)  # before the cut (or in a gap): drop
                continue
            length = cut.s1 - cut.s0
            if cur > need:
                # The source has a hole here: fill it with silence so later samples stay put.
                self._pad_audio(min(cur - need, length - self.written))
                continue
            take = min(n - off, length - self.written)
            self._write_audio(data[:, off : off + take])
            off += take

    def _pad_audio(self, count: int) -> None:
        self._write_audio(np.zeros((self.w.channels, count), np.float32))

    def _write_audio(self, block: np.ndarray) -> None:
        """Append samples to the current cut, shaping its fades, and advance when full."""
        cut = self.cuts[self.ai]
        length = cut.s1 - cut.s0
        n = block.shape[1]
        full = cut.fade_len or length
        i0 = self.written + cut.fade_off
        if (cut.fade_in and i0 < cut.fade_in) or (cut.fade_out and i0 + n > full - cut.fade_out):
            idx = np.arange(i0, i0 + n, dtype=np.float64) + 0.5
            gain = np.ones(n)
            if cut.fade_in:
                gain = np.minimum(gain, idx / cut.fade_in)
            if cut.fade_out:
                gain = np.minimum(gain, (full - idx) / cut.fade_out)
            block = block * gain.astype(np.float32)
        if n:
            self.w.audio(block)
        self.written += n
        if self.written >= length:
            self.ai += 1
            self.written = 0
            if self.ai == len(self.cuts):
                self.a_done = True


# --------------------------------------------------------------------------- entry point


def render(
    pieces: list[Piece],
    out: Path,
    settings: RenderSettings | None = None,
    progress: Callable[[float], None] | None = None,
) -> RenderResult:
    """Cut `pieces` (in order, from one or more files) and join them into `out`.

    Raises MediaError with a readable message for bad pieces or unusable sources. The file
    is written next to `out` and moved into place only when complete.
    """
    settings = settings or RenderSettings()
    out = Path(out)
    pieces = list(pieces)
    reason = "exact mode asked"
    if settings.mode != "exact":
        from . import smart_render  # imports this module: late import avoids a cycle

        reason = smart_render.smart_blocker(pieces, settings) or ""
        if not reason:
            try:
                return smart_render.smart_render(pieces, out, settings, progress)
            except smart_render.SmartUnsupported as e:
                reason = str(e)
        if settings.mode == "smart":
            raise MediaError(
                f"Smart render is not possible here ({reason}); use mode 'auto' or 'exact'."
            )
    plan = _plan(pieces, settings)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        writer = _Writer(tmp, plan, settings, progress)
    except (av.error.FFmpegError, ValueError) as e:
        raise MediaError(
            f"Could not start the export ({e}); check the export settings "
            "(container, codecs, size)."
        ) from e
    try:
        if plan.has_video:  # the audio track is read and encoded by its own threads
            _decode_cuts(plan, writer, with_audio=False)
        writer.finish()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    if progress is not None:
        progress(1.0)
    return RenderResult(
        duration=float(plan.total_frames / plan.fps)
        if plan.has_video
        else plan.total_samples / plan.sample_rate,
        video_frames=writer.frames,
        audio_samples=writer.samples,
        pieces=plan.snapped,
        mode="exact",
        encoded_frames=writer.frames,
        mode_reason=reason,
    )


def _decode_cuts(
    plan: _Plan, writer: _Writer, with_video: bool = True, with_audio: bool = True
) -> None:
    """Decode every cut of the plan in order into `writer` (audio only: `with_video=False`,
    video only: `with_audio=False`)."""
    for group in _groups(plan.cuts):
        path = group[0][0].src.path
        with _open(path) as container:
            reader = _SourceReader(container, plan, writer, with_video, with_audio)
            for k, run in enumerate(group):
                try:
                    # The first run reads from the file's start unless that is far away.
                    reader.run(run, seek=k > 0 or run[0].start > SEEK_GAP)
                except av.error.FFmpegError as e:
                    raise MediaError(
                        f"{path.name} could not be decoded near {float(run[0].start):.2f} s "
                        f"({e}); the file may be damaged: re-export or re-upload it.",
                        path=str(path),
                    ) from e

"""Smart render: stream-copy every untouched group of pictures, re-encode only around cuts.

Same cut arithmetic as the exact renderer (``render._plan``): the same snapped pieces, the
same output frame and sample positions, the same audio path (decoded, cut on the same
timestamps with the same fades, re-encoded to AAC, with FFmpeg's fast AAC coder: see
SMART_AAC_OPTIONS). Only video differs (re-encoded edges use SMART_PRESET):

* Each source's video packets are indexed once by demuxing without decoding (pts, dts,
  keyframe flag). A *clean cut point* is an IDR keyframe that no packet crosses: every packet
  before it in decode order shows an earlier frame and every packet after it a later one
  (closed GOP, no leading pictures). A unit is the frames from one clean point to the next.
* A piece [a, b) copies every whole unit inside it packet for packet, and re-encodes the
  frames before the first copied unit (decoding from the clean point before a) and after the
  last one. Adjacent re-encoded stretches, even across cuts, share one x264 session.
* Parameter sets: in MP4 every sample of a track shares one avcC, so re-encoded frames must
  not reuse the source's SPS/PPS ids with different contents. x264 is told to number its
  SPS/PPS with an id the source does not use (``sps-id``), and the output avcC carries both
  sets. Every slice names its own PPS, each re-encoded run starts with an IDR, so the stream
  is plain, standard H.264 ("avc1" with two parameter sets), no in-band switching needed.
* Re-encoded frames use no B-frames (so their decode order is display order) and output dts
  is "decode position minus D", D being the deepest reordering of any source, which keeps dts
  increasing and never after pts across copy/re-encode joins.
* Streaming: video packets go out as they are read, the audio is decoded, shaped and AAC
  encoded by a worker thread (the exact renderer's reader, on the second core) and its
  packets handed over in batches through a small bounded queue, so both tracks are
  interleaved by time and memory stays flat.

Anything the plan cannot honour exactly (variable frame rate, open GOPs, B-frames deeper than
the index says, missing frames) raises SmartUnsupported before or during the render, and
``render`` then falls back to the exact path.
"""

from __future__ import annotations

import bisect
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.codec.context import Flags

from . import render as _r
from .errors import MediaError

AUDIO_QUEUE = 16  # packet batches in flight between the audio thread and the muxer
AUDIO_BATCH = 16  # AAC packets per batch (~0.35 s at 48 kHz): fewer hand-overs, less GIL ping-pong
H264_PROFILES = {66: "baseline", 77: "main", 100: "high"}  # profile_idc -> x264 profile
SMART_PIX_FMTS = ("yuv420p", "yuvj420p")
# The re-encoded runs are short (cut edges) and the source is already lossy: x264 ultrafast
# at the render's CRF keeps them >= 50 dB PSNR against the decoded source on the bench talk
# (veryfast: same quality, 2.4x the encode time), and no slower preset than asked is used.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")
SMART_PRESET = "ultrafast"
# FFmpeg's AAC "twoloop" coder runs at ~28x realtime on one core: it alone would cap the
# smart render there. The "fast" coder runs ~4.5x faster at similar bitrate (and higher
# waveform SNR on speech), so the audio thread keeps up with the video.
SMART_AAC_OPTIONS = {"aac_coder": "fast"}


class SmartUnsupported(Exception):
    """The sources or settings need the exact renderer; the message says why."""


# --------------------------------------------------------------------------- H.264 bits


def _unescape(nal: bytes) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00) so bits can be read."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _first_ue(payload: bytes, skip_bits: int = 0, count: int = 1) -> list[int]:
    """Read `count` Exp-Golomb ue(v) values starting `skip_bits` into `payload`."""
    bits = "".join(f"{b:08b}" for b in payload[:16])
    pos = skip_bits
    out: list[int] = []
    for _ in range(count):
        zeros = 0
        while bits[pos] == "0":
            zeros += 1
            pos += 1
        value = int(bits[pos : pos + zeros + 1], 2) - 1
        pos += zeros + 1
        out.append(value)
    return out


@dataclass
class _AvcC:
    """The fields of an AVCDecoderConfigurationRecord the smart path needs."""

    profile: int
    compat: int
    level: int
    length_size: int
    sps: list[bytes]
    pps: list[bytes]
    trailer: bytes  # High-profile chroma/bit-depth fields, kept as they are

    @classmethod
    def parse(cls, data: bytes) -> _AvcC:
        if len(data) < 7 or data[0] != 1:
            raise SmartUnsupported("the H.264 track has no avcC configuration")
        length_size = (data[4] & 3) + 1
        pos = 5
        lists: list[list[bytes]] = []
        for mask in (0x1F, 0xFF):
            n = data[pos] & mask
            pos += 1
            items = []
            for _ in range(n):
                size = int.from_bytes(data[pos : pos + 2], "big")
                items.append(bytes(data[pos + 2 : pos + 2 + size]))
                pos += 2 + size
            lists.append(items)
        return cls(data[1], data[2], data[3], length_size, lists[0], lists[1], bytes(data[pos:]))

    def ids(self) -> set[int]:
        """SPS and PPS ids in use (x264 gives its SPS and PPS the same id)."""
        used = {_first_ue(_unescape(s[1:]), 24)[0] for s in self.sps}
        used |= {_first_ue(_unescape(p[1:]))[0] for p in self.pps}
        return used

    def build(self) -> bytes:
        out = bytearray([1, self.profile, self.compat, self.level, 0xFC | (self.length_size - 1)])
        out.append(0xE0 | len(self.sps))
        for s in self.sps:
            out += len(s).to_bytes(2, "big") + s
        out.append(len(self.pps))
        for p in self.pps:
            out += len(p).to_bytes(2, "big") + p
        return bytes(out + self.trailer)


def _annexb_nals(data: bytes) -> list[bytes]:
    """Split an Annex-B buffer (x264's output) into NAL units."""
    # A NAL never ends in a zero byte (RBSP trailing bits), so trailing zeros belong to the
    # next 4-byte start code.
    return [n for n in (c.rstrip(b"\x00") for c in data.split(b"\x00\x00\x01")) if n]


def _avcc_nal_types(data: bytes, length_size: int) -> Iterator[int]:
    pos = 0
    while pos + length_size < len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        yield data[pos + length_size] & 0x1F
        pos += length_size + size


def _to_avcc(data: bytes, length_size: int) -> bytes:
    out = bytearray()
    for nal in _annexb_nals(data):
        if len(nal) >= 1 << (8 * length_size):
            raise SmartUnsupported("a re-encoded picture does not fit the source's NAL length")
        out += len(nal).to_bytes(length_size, "big") + nal
    return bytes(out)


# --------------------------------------------------------------------------- checks


@dataclass
class _VideoParams:
    codec: str
    width: int
    height: int
    pix_fmt: str
    fps: Fraction | None
    extradata: bytes
    interlaced: bool


def _video_params(path: Path) -> _VideoParams | None:
    with _r._open(path) as c:
        if not c.streams.video:
            return None
        v = c.streams.video[0]
        cc = v.codec_context
        return _VideoParams(
            codec=cc.name,
            width=cc.width,
            height=cc.height,
            pix_fmt=cc.pix_fmt or "",
            fps=_r._frame_rate(v),
            extradata=bytes(cc.extradata or b""),
            # AVFieldOrder: 0 unknown, 1 progressive, 2+ some field order
            interlaced=int(cc.field_order or 0) > 1,
        )


def smart_blocker(pieces: list[_r.Piece], settings: _r.RenderSettings) -> str | None:
    """Why these pieces cannot be smart-rendered with these settings, or None if they can.

    Cheap (reads headers only). Bad pieces are reported as a blocker too; the exact
    renderer then raises its readable error for them.
    """
    if settings.container not in ("mp4", "mov"):
        return f"container {settings.container} (smart render writes MP4/MOV)"
    if settings.video_codec != "libx264":
        return f"video codec {settings.video_codec} asked (smart render keeps H.264)"
    if not pieces:
        return "no pieces"
    first: _VideoParams | None = None
    for path in dict.fromkeys(Path(p.path) for p in pieces):
        if not path.is_file():
            return f"{path.name} not found"
        try:
            params = _video_params(path)
        except MediaError as e:
            return str(e)
        if params is None:
            return f"{path.name} has no video"
        if params.codec != "h264":
            return f"{path.name} is {params.codec}, not H.264"
        if params.pix_fmt not in SMART_PIX_FMTS:
            return f"{path.name} is {params.pix_fmt} (smart render handles 8-bit 4:2:0)"
        if params.interlaced:
            return f"{path.name} is interlaced (re-encoded edges would be progressive)"
        if params.width % 2 or params.height % 2:
            return f"{path.name} has an odd size"
        if first is None:
            first = params
            try:
                avcc = _AvcC.parse(params.extradata)
            except (SmartUnsupported, IndexError, ValueError) as e:
                return f"{path.name}: unreadable H.264 configuration ({e})"
            if avcc.profile not in H264_PROFILES:
                return f"{path.name} uses H.264 profile {avcc.profile}"
            if len(avcc.ids()) >= 32:
                return f"{path.name} uses every SPS id"
        elif (params.width, params.height, params.pix_fmt, params.fps, params.extradata) != (
            first.width,
            first.height,
            first.pix_fmt,
            first.fps,
            first.extradata,
        ):
            return f"{path.name} has other codec parameters than {Path(pieces[0].path).name}"
    assert first is not None
    width, height = _r.output_size(first.width, first.height, settings)
    if (width, height) != (first.width, first.height):
        return f"output size {width}x{height} differs from the source's"
    return None


def can_smart_render(pieces: list[_r.Piece], settings: _r.RenderSettings) -> bool:
    return smart_blocker(pieces, settings) is None


# --------------------------------------------------------------------------- index


@dataclass
class _Index:
    """Where every video packet of one source sits, in decode order."""

    path: Path
    dts: np.ndarray  # per decode position, in the stream's time base
    frame: np.ndarray  # per decode position: frame index on the fps grid
    clean: list[int]  # frame indices of clean cut points, ascending
    clean_pos: dict[int, int]  # clean frame index -> decode position
    n: int  # frames in the file
    delay: int  # deepest reordering: max(decode position - frame index)

    def __post_init__(self) -> None:
        self.frame_list: list[int] = self.frame.tolist()  # plain ints: cheap per packet
        self.dts_list: list[int] = self.dts.tolist()

    def unit_start(self, frame: int) -> int:
        """The clean point at or before `frame` (decoding starts there)."""
        k = bisect.bisect_right(self.clean, frame) - 1
        if k < 0:
            raise SmartUnsupported(f"{self.path.name} does not start with a keyframe")
        return self.clean[k]

    def unit_end(self, frame: int) -> int:
        """The first clean point at or after `frame`, or the end of the file."""
        k = bisect.bisect_left(self.clean, frame)
        return self.clean[k] if k < len(self.clean) else self.n

    def pos(self, frame: int) -> int:
        """Decode position of a clean point, or of the end of the file."""
        return self.clean_pos[frame] if frame < self.n else len(self.dts)


def _index(path: Path, fps: Fraction) -> _Index:
    dts: list[int] = []
    frames: list[int] = []
    keys: list[int] = []  # decode positions of IDR keyframes
    with _r._open(path) as c:
        vs = c.streams.video[0]
        tb = vs.time_base
        assert tb is not None
        length_size = _AvcC.parse(bytes(vs.codec_context.extradata or b"")).length_size
        origin = vs.start_time or 0
        for pkt in c.demux(vs):
            if pkt.size == 0:
                continue  # the demuxer's end-of-stream marker
            if pkt.pts is None or pkt.dts is None:
                raise SmartUnsupported(f"{path.name} has video packets without timestamps")
            exact = (pkt.pts - origin) * tb * fps
            index = _r._nearest(exact)
            if abs(exact - index) > Fraction(1, 4):
                raise SmartUnsupported(f"{path.name} has frames off the {float(fps):g} fps grid")
            if pkt.is_keyframe and 5 in _avcc_nal_types(bytes(pkt), length_size):
                keys.append(len(dts))
            dts.append(pkt.dts)
            frames.append(index)
    frame = np.asarray(frames, np.int64)
    n = len(frame)
    if n == 0 or not np.array_equal(np.sort(frame), np.arange(n)):
        raise SmartUnsupported(f"{path.name} is not constant frame rate (missing/doubled frames)")
    if np.any(np.diff(np.asarray(dts, np.int64)) <= 0):
        raise SmartUnsupported(f"{path.name} has non-increasing video dts")
    before = np.maximum.accumulate(frame)  # highest frame shown up to each position
    after = np.minimum.accumulate(frame[::-1])[::-1]  # lowest frame from each position on
    clean: list[int] = []
    clean_pos: dict[int, int] = {}
    for p in keys:
        k = int(frame[p])
        if after[p] == k and (p == 0 or before[p - 1] < k):
            clean.append(k)
            clean_pos[k] = p
    delay = int(np.max(np.arange(n) - frame))
    return _Index(path, np.asarray(dts, np.int64), frame, clean, clean_pos, n, max(delay, 0))


# --------------------------------------------------------------------------- segments


@dataclass
class _Segment:
    src: _Index
    copy: bool  # True: stream-copy frames [lo, hi) (whole units); False: re-encode them
    lo: int
    hi: int


def _segments(cuts: list[_r._Cut], indexes: dict[Path, _Index]) -> list[_Segment]:
    out: list[_Segment] = []
    for cut in cuts:
        ix = indexes[cut.src.path]
        a, b = cut.a, cut.b
        if b > ix.n:
            raise SmartUnsupported(f"{ix.path.name} has fewer frames than its duration says")
        c0 = ix.unit_end(a)  # first clean point in the piece
        k = bisect.bisect_right(ix.clean, b) - 1
        c1 = b if b == ix.n else (ix.clean[k] if k >= 0 else 0)  # last unit end inside
        if c1 <= c0:
            out.append(_Segment(ix, False, a, b))
            continue
        if a < c0:
            out.append(_Segment(ix, False, a, c0))
        out.append(_Segment(ix, True, c0, c1))
        if c1 < b:
            out.append(_Segment(ix, False, c1, b))
    return out


# --------------------------------------------------------------------------- reading


class _PacketReader:
    """Video packets of one source by decode position; continues or seeks as needed."""

    def __init__(self, ix: _Index, fps: Fraction) -> None:
        self.ix = ix
        self.fps = fps
        self.c = _r._open(ix.path)
        self.vs = self.c.streams.video[0]
        self.vs.thread_type = "AUTO"
        self.origin = self.vs.start_time or 0
        self.it: Iterator[av.Packet] | None = None
        self.at = 0  # decode position of the next packet self.it yields

    def close(self) -> None:
        self.c.close()

    def packets(self, p0: int, p1: int) -> Iterator[av.Packet]:
        """Packets at decode positions [p0, p1); p0 must be a clean point."""
        gap = int(_r.SEEK_GAP * self.fps)
        if self.it is None or p0 < self.at or p0 - self.at > gap:
            # MP4 seeks on sample (decode) times: the keyframe's own dts lands on it.
            self.c.seek(int(self.ix.dts[p0]), stream=self.vs, backward=True)
            self.it = (p for p in self.c.demux(self.vs) if p.size)
            self.at = self._find(p0)
        while self.at < p1:
            pkt = next(self.it, None)
            if pkt is None:
                raise SmartUnsupported(f"{self.ix.path.name} ended before its index said")
            pos = self.at
            self.at += 1
            if pos < p0:
                continue
            if pkt.dts != self.ix.dts_list[pos]:
                raise SmartUnsupported(f"{self.ix.path.name} reads back differently than indexed")
            yield pkt

    def _find(self, p0: int) -> int:
        """After a seek: skip to the packet at p0 (the seek lands on or before it)."""
        assert self.it is not None
        want = self.ix.dts[p0]
        for pkt in self.it:
            if pkt.dts == want:
                self.it = _prepend(pkt, self.it)
                return p0
            if pkt.dts is not None and pkt.dts > want:
                break
        raise SmartUnsupported(f"seeking in {self.ix.path.name} missed a keyframe")

    def frames(self, lo: int, hi: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decoded frames [lo, hi) in display order, decoding from the clean point before lo."""
        ix = self.ix
        start, end = ix.unit_start(lo), ix.unit_end(hi)
        cc = self.vs.codec_context
        tb = self.vs.time_base
        assert tb is not None
        want = lo

        def accept(frames: list[av.VideoFrame]) -> Iterator[tuple[int, av.VideoFrame]]:
            nonlocal want
            for f in frames:
                if want >= hi:
                    return
                if f.pts is None:
                    raise SmartUnsupported(f"{ix.path.name} decodes frames without pts")
                k = _r._nearest((f.pts - self.origin) * tb * self.fps)
                if k < want:
                    continue
                if k != want:
                    raise SmartUnsupported(f"{ix.path.name} lost frame {want} in decoding")
                want += 1
                yield k, f

        try:
            for pkt in self.packets(ix.pos(start), ix.pos(end)):
                yield from accept(cc.decode(pkt))
                if want >= hi:
                    return
            yield from accept(cc.decode(None))  # drain the reorder delay at the unit end
            if want < hi:
                raise SmartUnsupported(f"{ix.path.name} lost frames {want}-{hi - 1} in decoding")
        finally:
            cc.flush_buffers()


def _prepend(first: av.Packet, rest: Iterator[av.Packet]) -> Iterator[av.Packet]:
    yield first
    yield from rest


# --------------------------------------------------------------------------- audio


class _Stop(Exception):
    """The muxer gave up; the audio thread unwinds quietly."""


class _AudioFeed:
    """Runs the exact renderer's audio reader *and the AAC encoder* in a worker thread (the
    second core, while x264 and the muxer run here); encoded packets come out of `get`.

    The PCM is cut, faded and framed exactly as ``render._Writer`` does it (full encoder
    frames, one short last frame), so the samples and their pts are the exact path's.
    """

    def __init__(self, plan: _r._Plan, stream: av.AudioStream, frame_size: int) -> None:
        self.plan = plan
        self.stream = stream
        self.frame_size = frame_size
        self.channels = len(stream.layout.channels)  # read by _SourceReader
        self.pending: list[np.ndarray] = []
        self.pending_n = 0
        self.samples = 0  # samples handed to the encoder (their pts)
        self.out: list[av.Packet] = []  # encoded, not yet handed over
        self.q: queue.Queue[list[av.Packet] | BaseException | None] = queue.Queue(AUDIO_QUEUE)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="smart-render-audio", daemon=True)
        self.thread.start()

    def audio(self, block: np.ndarray) -> None:  # the writer interface _SourceReader uses
        self.pending.append(block)
        self.pending_n += block.shape[1]
        if self.pending_n >= self.frame_size:
            data = np.concatenate(self.pending, axis=1)
            n_full = data.shape[1] - data.shape[1] % self.frame_size
            for i in range(0, n_full, self.frame_size):
                self._encode(data[:, i : i + self.frame_size])
            rest = data[:, n_full:]
            self.pending = [rest] if rest.shape[1] else []
            self.pending_n = rest.shape[1]

    def _encode(self, data: np.ndarray | None) -> None:
        frame = None
        if data is not None:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data, dtype=np.float32), format="fltp", layout=self.plan.layout
            )
            frame.sample_rate = self.plan.sample_rate
            frame.pts = self.samples
            frame.time_base = Fraction(1, self.plan.sample_rate)
            self.samples += data.shape[1]
        self.out.extend(self.stream.encode(frame))
        if len(self.out) >= AUDIO_BATCH or data is None:
            self._put(self.out)
            self.out = []

    def _put(self, item: list[av.Packet] | BaseException | None) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            _r._decode_cuts(self.plan, self, with_video=False)  # type: ignore[arg-type]
            if self.pending_n:  # the AAC encoder accepts one short last frame
                self._encode(np.concatenate(self.pending, axis=1))
                self.pending, self.pending_n = [], 0
            self._encode(None)
            self._put(None)
        except _Stop:
            pass
        except BaseException as e:  # handed to the muxer thread, which re-raises it
            try:
                self._put(e)
            except _Stop:
                pass

    def get(self) -> list[av.Packet] | None:
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


# --------------------------------------------------------------------------- output


def _smart_preset(asked: str) -> str:
    """SMART_PRESET, unless the settings ask for an even faster (or unknown) preset."""
    if asked not in X264_PRESETS:
        return asked
    return min(asked, SMART_PRESET, key=X264_PRESETS.index)


class _SmartOut:
    """Muxes copied and re-encoded video packets plus the AAC track, interleaved by time."""

    def __init__(
        self,
        tmp: Path,
        plan: _r._Plan,
        settings: _r.RenderSettings,
        template: av.VideoStream,
        indexes: dict[Path, _Index],
        progress: Callable[[float], None] | None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.fps = plan.fps
        src_cc = template.codec_context
        self.src_avcc = _AvcC.parse(bytes(src_cc.extradata or b""))
        used = self.src_avcc.ids()
        self.sps_id = min(i for i in range(32) if i not in used)
        self.template = template
        first = self._encoder()  # opened now: its parameter sets go into the header
        self.x264_ps = bytes(first.extradata or b"")
        self.pending_encoder: av.CodecContext | None = first
        x264_nals = _annexb_nals(self.x264_ps)
        merged = _AvcC(
            self.src_avcc.profile,
            self.src_avcc.compat,
            self.src_avcc.level,
            self.src_avcc.length_size,
            self.src_avcc.sps + [n for n in x264_nals if n[0] & 0x1F == 7],
            self.src_avcc.pps + [n for n in x264_nals if n[0] & 0x1F == 8],
            self.src_avcc.trailer,
        )
        self.delay = max(ix.delay for ix in indexes.values())

        def video_stream(out: av.container.OutputContainer) -> av.VideoStream:
            v = out.add_stream_from_template(template)
            v.codec_context.extradata = merged.build()
            v.time_base = 1 / plan.fps
            return v

        audio_options = SMART_AAC_OPTIONS if settings.audio_codec == "aac" else None
        self.w = _r._Writer(
            tmp, plan, settings, progress, video_stream=video_stream, audio_options=audio_options
        )
        assert self.w.v is not None
        self.v = self.w.v
        self.count = 0  # video packets muxed = frames, in decode order
        self.copied = 0
        self.encoded = 0
        self.enc: av.CodecContext | None = None
        self.feed: _AudioFeed | None = None
        if plan.has_audio:
            assert self.w.a is not None
            self.feed = _AudioFeed(plan, self.w.a, self.w.frame_size)
        self.audio_done = self.feed is None
        self.audio_t = Fraction(0)  # output time up to which audio packets are muxed

    def _encoder(self) -> av.CodecContext:
        src = self.template.codec_context
        cc = av.CodecContext.create("libx264", "w")
        cc.width, cc.height, cc.pix_fmt = src.width, src.height, src.pix_fmt
        cc.time_base = 1 / self.fps
        cc.framerate = self.fps
        if src.sample_aspect_ratio:
            cc.sample_aspect_ratio = src.sample_aspect_ratio
        for attr in ("color_range", "color_primaries", "color_trc", "colorspace"):
            setattr(cc, attr, getattr(src, attr))
        # Parameter sets in the header only (global header), numbered apart from the source's.
        cc.flags = cc.flags | Flags.global_header
        level = self.src_avcc.level
        cc.options = {
            "preset": _smart_preset(self.settings.preset),
            "crf": str(self.settings.crf),
            "profile": H264_PROFILES[self.src_avcc.profile],
            "level": f"{level // 10}.{level % 10}",
            "x264-params": f"sps-id={self.sps_id}:bframes=0",
        }
        cc.open()
        return cc

    # -- audio interleaving
    def _audio_until(self, frame: int | None) -> None:
        """Mux audio packets up to output video frame `frame` (None: all of them)."""
        # audio_t >= frame / fps, in integers: audio_t * fps.num >= frame * fps.den
        want = None if frame is None else frame * self.fps.denominator
        num = self.fps.numerator
        while self.feed is not None and not self.audio_done:
            if want is not None and self.audio_t * num >= want:
                return
            packets = self.feed.get()
            if packets is None:
                self.audio_done = True
                self.w.samples = self.feed.samples
                continue
            for pkt in packets:
                if pkt.pts is not None and pkt.time_base is not None:
                    self.audio_t = max(self.audio_t, pkt.pts * pkt.time_base)
                self.w.out.mux(pkt)

    def _mux(self, pkt: av.Packet, pts: int, copied: bool) -> None:
        dts = self.count - self.delay
        if dts > pts:
            raise SmartUnsupported("a source reorders frames deeper than its index showed")
        if not self.audio_done:
            self._audio_until(max(dts, 0))
        pkt.stream = self.v
        pkt.time_base = 1 / self.fps
        pkt.pts, pkt.dts, pkt.duration = pts, dts, 1
        self.w.out.mux(pkt)
        self.count += 1
        self.w.frames += 1
        if copied:
            self.copied += 1
        else:
            self.encoded += 1
        self.w._tick()

    # -- video
    def copy(self, reader: _PacketReader, seg: _Segment, out0: int) -> None:
        self._end_encoder()
        ix = seg.src
        p0 = ix.pos(seg.lo)
        frames = ix.frame_list
        for pos, pkt in enumerate(reader.packets(p0, ix.pos(seg.hi)), p0):
            self._mux(pkt, out0 + frames[pos] - seg.lo, copied=True)

    def encode(self, reader: _PacketReader, seg: _Segment, out0: int) -> None:
        if self.enc is None:
            self.enc, self.pending_encoder = self.pending_encoder or self._encoder(), None
        for k, frame in reader.frames(seg.lo, seg.hi):
            frame.pts = out0 + k - seg.lo
            frame.time_base = 1 / self.fps
            frame.pict_type = av.video.frame.PictureType.NONE
            self._send(self.enc.encode(frame))

    def _send(self, packets: list[av.Packet]) -> None:
        length = self.src_avcc.length_size
        for p in packets:
            assert p.pts is not None
            out = av.Packet(_to_avcc(bytes(p), length))
            out.is_keyframe = p.is_keyframe
            self._mux(out, p.pts, copied=False)

    def _end_encoder(self) -> None:
        if self.enc is None:
            return
        self._send(self.enc.encode(None))
        if bytes(self.enc.extradata or b"") != self.x264_ps:
            raise SmartUnsupported("x264 changed its parameter sets between runs")
        self.enc = None

    def finish(self) -> None:
        self._end_encoder()
        self._audio_until(None)
        if self.feed is not None:
            self.feed.close()
        # Not w.finish(): the audio thread already flushed the AAC encoder, and the video
        # track has no encoder of its own.
        self.w.out.close()

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()
        self.w.close()


def smart_render(
    pieces: list[_r.Piece],
    out: Path,
    settings: _r.RenderSettings,
    progress: Callable[[float], None] | None = None,
) -> _r.RenderResult:
    """Render like ``render`` but stream-copy whole GOPs. Raises SmartUnsupported (nothing
    written at `out`) when the sources turn out not to allow it; check smart_blocker first."""
    out = Path(out)
    plan = _r._plan(list(pieces), settings)
    if not plan.has_video:
        raise SmartUnsupported("no video track")
    indexes = {p: _index(p, plan.fps) for p in dict.fromkeys(c.src.path for c in plan.cuts)}
    segments = _segments(plan.cuts, indexes)
    readers: dict[Path, _PacketReader] = {}
    tmp = out.with_name(f".{out.name}.partial")
    try:
        for path, ix in indexes.items():
            readers[path] = _PacketReader(ix, plan.fps)
        first = readers[plan.cuts[0].src.path]
        try:
            sink = _SmartOut(tmp, plan, settings, first.vs, indexes, progress)
        except (av.error.FFmpegError, ValueError) as e:
            raise SmartUnsupported(f"could not set up stream copy ({e})") from e
        try:
            pos = 0
            for seg in segments:
                reader = readers[seg.src.path]
                try:
                    if seg.copy:
                        sink.copy(reader, seg, pos)
                    else:
                        sink.encode(reader, seg, pos)
                except av.error.FFmpegError as e:
                    raise MediaError(
                        f"{seg.src.path.name} could not be read near frame {seg.lo} ({e}); "
                        "the file may be damaged: re-export or re-upload it.",
                        path=str(seg.src.path),
                    ) from e
                pos += seg.hi - seg.lo
            sink.finish()
        except BaseException:
            sink.close()
            raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for r in readers.values():
            r.close()
    tmp.replace(out)
    if progress is not None:
        progress(1.0)
    return _r.RenderResult(
        duration=float(plan.total_frames / plan.fps),
        video_frames=sink.count,
        audio_samples=sink.w.samples,
        pieces=plan.snapped,
        mode="smart",
        copied_frames=sink.copied,
        encoded_frames=sink.encoded,
    )

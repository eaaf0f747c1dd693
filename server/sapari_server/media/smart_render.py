"""Smart render: stream-copy every untouched group of pictures, re-encode only around cuts.

Same cut arithmetic as the exact renderer (``render._plan``): the same snapped pieces, the
same output frame and sample positions, the same audio track (``render_audio``: decoded, cut
on the same timestamps with the same fades, re-encoded in parallel chunks). Only video
differs:

* Each source's video packets are indexed once by demuxing without decoding (pts, dts,
  keyframe flag, size). A *clean cut point* is an IDR keyframe that no packet crosses: every
  packet before it in decode order shows an earlier frame and every packet after it a later
  one (closed GOP, no leading pictures). A *clean end* is any decode position q where the
  packets before it show exactly the frames before it: after every anchor picture of a
  B-pyramid, after every picture of a P-only stream.
* A piece [a, b) re-encodes the frames before its first clean point c0 (decoding from the
  clean point before a), copies packet for packet from c0 to the last clean end e <= b, and
  re-encodes [e, b) (decoding from the last clean point). Copying up to a clean end, not only
  whole GOPs, is what makes long-GOP sources copy at all: the bundled sample (x264's default
  250-frame GOP, every kept piece shorter than that) used to copy 0 of 926 frames.
  Adjacent re-encoded stretches, even across cuts, share one x264 session.
* Re-encoded frames match the source's size class: CRF no lower than an x264 source's own,
  VBV max rate at the source's measured bitrate (``render.vbv_kbps``), SMART_PRESET.
* Parameter sets: in MP4 every sample of a track shares one avcC, so re-encoded frames must
  not reuse the source's SPS/PPS ids with different contents. x264 is told to number its
  SPS/PPS with an id the source does not use (``sps-id``), and to keep its headers
  independent of content and rate control (``stitchable``); the output avcC carries both
  sets. Every slice names its own PPS, each re-encoded run starts with an IDR, so the stream
  is plain, standard H.264 ("avc1" with two parameter sets), no in-band switching needed.
* Re-encoded frames use no B-frames (so their decode order is display order) and output dts
  is "decode position minus D", D being the deepest reordering of any source, which keeps dts
  increasing and never after pts across copy/re-encode joins.
* Streaming: video packets go out as they are read; audio packets come from the audio
  track's worker threads and are muxed before the video they play under.

Anything the plan cannot honour exactly (variable frame rate, open GOPs, B-frames deeper than
the index says, missing frames) raises SmartUnsupported before or during the render, and
``render`` then falls back to the exact path.
"""

from __future__ import annotations

import bisect
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

H264_PROFILES = {66: "baseline", 77: "main", 100: "high"}  # profile_idc -> x264 profile
SMART_PIX_FMTS = ("yuv420p", "yuvj420p")
# The re-encoded runs are short (cut edges) and the source is already lossy: x264 ultrafast
# at the render's CRF keeps them >= 50 dB PSNR against the decoded source on the bench talk
# (veryfast: same quality, 2.4x the encode time), and no slower preset than asked is used.
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")
SMART_PRESET = "ultrafast"
# ultrafast (no CABAC, no B-frames) needs about twice the bits of a medium-preset source for
# the same picture: its VBV cap leaves that room, and still stops a CRF 20 re-encode of a
# CRF 30 source from outgrowing it.
SMART_VBV_HEADROOM = 2.0
# CABAC: ~10% fewer bits for the re-encoded runs at no measurable cost in encode time.
SMART_X264_PARAMS: tuple[str, ...] = ("cabac=1",)


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


def _disposable(data: bytes, length_size: int) -> bool:
    """True when no picture refers to this one: every slice has nal_ref_idc 0 (the
    non-reference B-frames of a pyramid). Decoding towards a cut can skip such pictures
    when they show before it."""
    pos = 0
    slices = 0
    while pos + length_size < len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        header = data[pos + length_size]
        if header & 0x1F in (1, 5):
            if header & 0x60:
                return False
            slices += 1
        pos += length_size + size
    return slices > 0


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
    ends: list[int]  # clean ends, ascending: q where decode positions [0, q) show frames [0, q)
    sizes: np.ndarray  # per frame index: bytes of its packet
    disposable: list[bool]  # per decode position: no picture refers to it

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
        """Decode position of a clean point or clean end (they coincide: the packets before
        it are exactly the frames before it), or of the end of the file."""
        return self.clean_pos.get(frame, frame) if frame < self.n else len(self.dts)

    def last_end(self, frame: int) -> int:
        """The last clean end at or before `frame`: a copy from a clean point may stop there
        (every frame shown before it is decoded before it, none after it is)."""
        k = bisect.bisect_right(self.ends, frame) - 1
        return self.ends[k] if k >= 0 else 0


def _index(path: Path, fps: Fraction) -> _Index:
    dts: list[int] = []
    frames: list[int] = []
    keys: list[int] = []  # decode positions of IDR keyframes
    sizes: list[int] = []
    disposable: list[bool] = []  # per decode position: a picture nothing refers to
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
            data = bytes(pkt)
            if pkt.is_keyframe and 5 in _avcc_nal_types(data, length_size):
                keys.append(len(dts))
            disposable.append(_disposable(data, length_size))
            dts.append(pkt.dts)
            frames.append(index)
            sizes.append(pkt.size)
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
    ends = (np.flatnonzero(before == np.arange(n)) + 1).tolist()
    by_frame = np.zeros(n, np.int64)
    by_frame[frame] = np.asarray(sizes, np.int64)
    return _Index(
        path,
        np.asarray(dts, np.int64),
        frame,
        clean,
        clean_pos,
        n,
        max(delay, 0),
        ends,
        by_frame,
        disposable,
    )


# --------------------------------------------------------------------------- segments


@dataclass
class _Segment:
    src: _Index
    copy: bool  # True: stream-copy frames [lo, hi) (whole units); False: re-encode them
    lo: int
    hi: int


def _segments(cuts: list[_r._Cut], indexes: dict[Path, _Index]) -> list[_Segment]:
    """Each piece [a, b): re-encode up to its first clean point c0, copy from c0 to the last
    clean end e <= b (whole GOPs, then the head of the last GOP up to a reference boundary),
    re-encode [e, b). With long GOPs the copied head of the last GOP is most of the piece."""
    out: list[_Segment] = []
    for cut in cuts:
        ix = indexes[cut.src.path]
        a, b = cut.a, cut.b
        if b > ix.n:
            raise SmartUnsupported(f"{ix.path.name} has fewer frames than its duration says")
        c0 = ix.unit_end(a)  # first clean point in the piece
        if c0 >= b:
            out.append(_Segment(ix, False, a, b))
            continue
        e = ix.last_end(b)  # >= c0: a clean point is a clean end
        if a < c0:
            out.append(_Segment(ix, False, a, c0))
        if e > c0:
            out.append(_Segment(ix, True, c0, e))
        if e < b:
            out.append(_Segment(ix, False, e, b))
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

        frames = ix.frame_list
        skip = ix.disposable
        p0 = ix.pos(start)
        try:
            for pos, pkt in enumerate(self.packets(p0, ix.pos(end)), p0):
                if frames[pos] < lo and skip[pos]:
                    continue  # shown before the run and no reference: never needed
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


# --------------------------------------------------------------------------- output


def _smart_preset(asked: str) -> str:
    """SMART_PRESET, unless the settings ask for an even faster (or unknown) preset."""
    if asked not in X264_PRESETS:
        return asked
    return min(asked, SMART_PRESET, key=X264_PRESETS.index)


class _SmartOut:
    """Muxes copied and re-encoded video packets plus the audio track, interleaved by time."""

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
        self.source = plan.coding.video if plan.coding is not None else None
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

        self.w = _r._Writer(tmp, plan, settings, progress, video_stream=video_stream)
        assert self.w.v is not None
        self.v = self.w.v
        self.count = 0  # video packets muxed = frames, in decode order
        self.copied = 0
        self.encoded = 0
        self.enc: av.CodecContext | None = None

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
        # stitchable: headers do not depend on the content or rate control, so every run's
        # session writes the same SPS/PPS (the one avcC the track carries).
        params = [f"sps-id={self.sps_id}", "bframes=0", "stitchable=1", *SMART_X264_PARAMS]
        cap = _r.vbv_kbps(self.settings, self.source, src.width, src.height, SMART_VBV_HEADROOM)
        if cap is not None:
            params.append(f"vbv-maxrate={cap}:vbv-bufsize={cap * _r.VBV_SECONDS}")
        cc.options = {
            "preset": _smart_preset(self.settings.preset),
            "crf": str(_r.matched_crf(self.settings, self.source)),
            "profile": H264_PROFILES[self.src_avcc.profile],
            "level": f"{level // 10}.{level % 10}",
            "x264-params": ":".join(params),
        }
        cc.open()
        return cc

    def _mux(self, pkt: av.Packet, pts: int, copied: bool) -> None:
        dts = self.count - self.delay
        if dts > pts:
            raise SmartUnsupported("a source reorders frames deeper than its index showed")
        if self.w.track is not None:
            self.w.track.mux_until(max(dts, 0) / self.fps)
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
        self.w.finish()  # the rest of the audio; the video track has no encoder of its own

    def close(self) -> None:
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

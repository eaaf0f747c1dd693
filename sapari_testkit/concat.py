"""Long test media fast: one file repeated by stream copy (no decode, no re-encode)."""

from __future__ import annotations

from pathlib import Path

import av


def repeat_by_stream_copy(src: Path, dst: Path, copies: int) -> None:
    """Write ``src`` ``copies`` times end to end into ``dst``.

    Each copy is shifted by the span of one copy per stream, measured from the packets in
    the stream's own time base, so timestamps keep increasing (AAC priming starts below 0).
    """
    first: dict[int, int] = {}
    end: dict[int, int] = {}
    with av.open(str(src)) as inp:
        for pkt in inp.demux():
            if pkt.dts is None:
                continue
            first.setdefault(pkt.stream.index, pkt.dts)
            end[pkt.stream.index] = pkt.dts + (pkt.duration or 0)
    spans = {i: end[i] - first[i] for i in end}
    with av.open(str(dst), "w") as out:
        with av.open(str(src)) as inp:
            outs = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for k in range(copies):
            with av.open(str(src)) as inp:
                for pkt in inp.demux():
                    if pkt.dts is None:
                        continue
                    shift = k * spans[pkt.stream.index]
                    pkt.dts += shift
                    if pkt.pts is not None:
                        pkt.pts += shift
                    pkt.stream = outs[pkt.stream.index]
                    out.mux(pkt)

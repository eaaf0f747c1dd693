"""Figures of one edited recording, its plot, and the summary report of a batch.

The batch notebook (``notebooks/03-batch.ipynb``) calls ``figures`` and ``plot_cuts`` for its
one input; ``sapari_nb.batch`` reads what the notebooks wrote and calls ``write_csv`` and
``write_html`` over all of them. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .batch import BatchRow
    from .client import Client

# The kinds of edit the analysis makes, in the order the report lists them.
KINDS = ("silence", "false_start", "repeated_take", "filler", "stutter", "manual")
# Bars per plot: enough to see the pauses of an hour, few enough for a small PNG.
PLOT_BINS = 1200


class StepTimer:
    """Seconds spent in each named step: ``lap("upload")`` closes the step that just ended."""

    def __init__(self) -> None:
        self.started = self._last = time.perf_counter()
        self.times: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        self.times[name] = round(now - self._last, 3)
        self._last = now
        return self.times[name]

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)


def by_kind(cuts: Sequence[dict[str, Any]]) -> tuple[dict[str, int], dict[str, float]]:
    """How many cuts of each kind, and how many seconds each kind removed."""
    count: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for c in cuts:
        kind = str(c.get("kind", "manual"))
        count[kind] = count.get(kind, 0) + 1
        seconds[kind] = round(seconds.get(kind, 0.0) + float(c["end"]) - float(c["start"]), 3)
    order = {k: i for i, k in enumerate(KINDS)}
    keys = sorted(count, key=lambda k: (order.get(k, len(KINDS)), k))
    return {k: count[k] for k in keys}, {k: seconds[k] for k in keys}


def figures(*, src: Path, output: Path | None, duration_before: float | None,
            duration_after: float | None, cuts: Sequence[dict[str, Any]],
            timings: dict[str, float], error: str | None, plot: Path | None = None,
            detectors: Sequence[str] = (), notes: Sequence[str] = (),
            settings: dict[str, Any] | None = None, server: str = "") -> dict[str, Any]:
    """The record of one input: what ``<name>.result.json`` holds and the report reads."""
    edits, seconds = by_kind(cuts)
    cut = (round(duration_before - duration_after, 3)
           if duration_before is not None and duration_after is not None else None)
    return {
        "input": str(src),
        "status": "failed" if error else "ok",
        "error": error,
        "output": str(output) if output is not None and not error else None,
        "duration_before": duration_before,
        "duration_after": duration_after if not error else None,
        "seconds_cut": cut if not error else None,
        "edits": len(cuts),
        "edits_by_kind": edits,
        "seconds_cut_by_kind": seconds,
        "timings": timings,
        "plot": str(plot) if plot is not None else None,
        "detectors": list(detectors),
        "notes": list(notes),
        "settings": settings or {},
        "server": server,
        "cuts": [dict(c) for c in cuts],
    }


def fetch_peaks(client: Client, clip_id: str) -> tuple[np.ndarray, float] | None:
    """The clip's waveform (int16 min/max pairs) and pairs per second, from the server's
    peaks artifact: no second decode of the recording here. None when it has none."""
    for art in client.artifacts(clip_id):
        if art.kind == "peaks":
            data = client.signed_bytes(art.url)
            pairs = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
            return pairs, float(art.meta.get("per_second", 100))
    return None


def plot_cuts(path: Path, peaks: tuple[np.ndarray, float] | None, cuts: Sequence[dict[str, Any]],
              duration: float, title: str = "") -> Path:
    """A small PNG: the waveform with each cut shaded by its kind (matplotlib, no pyplot, so
    it is safe in threads and needs no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 1.6), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if peaks is not None and len(peaks[0]):
        pairs, per_second = peaks
        n = len(pairs)
        step = max(1, int(np.ceil(n / PLOT_BINS)))
        m = n // step * step
        lo = pairs[:m, 0].reshape(-1, step).min(axis=1) / 32768.0
        hi = pairs[:m, 1].reshape(-1, step).max(axis=1) / 32768.0
        t = np.arange(len(lo)) * step / per_second
        ax.fill_between(t, lo, hi, color="#555555", linewidth=0)
    colors = {"silence": "#4c9be8", "false_start": "#e8774c", "repeated_take": "#d94cb0",
              "filler": "#e8c44c", "stutter": "#8a4ce8", "manual": "#4ce88a"}
    seen: set[str] = set()
    for c in cuts:
        kind = str(c.get("kind", "manual"))
        ax.axvspan(float(c["start"]), float(c["end"]), color=colors.get(kind, "#999999"),
                   alpha=0.45, linewidth=0, label=None if kind in seen else kind.replace("_", " "))
        seen.add(kind)
    ax.set_xlim(0, max(duration, 1e-3))
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.set_xlabel("seconds", fontsize=7)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    if seen:
        ax.legend(loc="upper right", fontsize=6, ncols=len(seen), frameon=False)
    fig.tight_layout(pad=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def markdown(record: dict[str, Any]) -> str:
    """One input's figures as a small Markdown table (the notebook's display output)."""
    def num(x: Any) -> str:
        return "" if x is None else f"{x:.2f}"

    rows = [("input", record["input"]), ("status", record["status"])]
    if record["error"]:
        rows.append(("error", record["error"]))
    rows += [("output", record["output"] or ""),
             ("duration before (s)", num(record["duration_before"])),
             ("duration after (s)", num(record["duration_after"])),
             ("seconds cut", num(record["seconds_cut"])),
             ("edits by kind", _kinds(record["edits_by_kind"])),
             ("seconds cut by kind", _kinds(record["seconds_cut_by_kind"], "{:.2f}")),
             ("timings (s)", ", ".join(f"{k} {v:.2f}" for k, v in record["timings"].items()))]
    cells = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows)
    return "| | |\n|---|---|\n" + cells


def _kinds(d: dict[str, Any], fmt: str = "{}") -> str:
    return ", ".join(f"{k.replace('_', ' ')} {fmt.format(v)}" for k, v in d.items()) or "none"


# -- the batch's summary ---------------------------------------------------------------------

CSV_FIELDS = ("input", "status", "error", "duration_before", "duration_after", "seconds_cut",
              "edits", "edits_by_kind", "seconds_cut_by_kind", "output", "notebook",
              "result_json", "plot", "elapsed")


def write_csv(rows: Sequence[BatchRow], path: Path) -> Path:
    """One line per input; the by-kind columns hold JSON objects (``{"silence": 4}``)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for row in rows:
            d = row.to_dict()
            line = {k: d.get(k) for k in CSV_FIELDS}
            for k in ("edits_by_kind", "seconds_cut_by_kind"):
                line[k] = json.dumps(d[k])
            w.writerow({k: "" if v is None else v for k, v in line.items()})
    return path


_CSS = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3;text-align:left}.failed td{background:#fff3f0}
.error{color:#b3261e;max-width:28em}.num{text-align:right;white-space:nowrap}
img{display:block;width:320px}
"""


def write_html(rows: Sequence[BatchRow], path: Path, title: str = "sapari-nb batch") -> Path:
    """A self-contained page: a row per input, links relative to the report's folder, each
    plot inlined as a base64 PNG (the page can be mailed or archived alone)."""
    here = path.parent.resolve()
    ok = sum(1 for r in rows if r.status == "ok")
    failed = len(rows) - ok
    before = sum(r.duration_before or 0.0 for r in rows if r.status == "ok")
    cut = sum(r.seconds_cut or 0.0 for r in rows if r.status == "ok")

    def link(p: str | None, text: str) -> str:
        if not p:
            return ""
        target = Path(p).resolve()
        try:
            href = target.relative_to(here).as_posix()
        except ValueError:
            href = target.as_uri()
        return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'

    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.2f}"

    body = []
    for r in rows:
        plot = ""
        if r.plot and Path(r.plot).is_file():
            data = base64.b64encode(Path(r.plot).read_bytes()).decode("ascii")
            plot = f'<img alt="cuts over the waveform" src="data:image/png;base64,{data}">'
        body.append(
            f'<tr class="{r.status}"><td>{html.escape(Path(r.input).name)}<br>'
            f'<small>{html.escape(r.input)}</small></td><td>{r.status}</td>'
            f'<td class="num">{num(r.duration_before)}</td>'
            f'<td class="num">{num(r.duration_after)}</td><td class="num">{num(r.seconds_cut)}</td>'
            f'<td>{html.escape(_kinds(r.edits_by_kind) if r.status == "ok" else "")}</td>'
            f'<td>{html.escape(_kinds(r.seconds_cut_by_kind, "{:.2f}") if r.status == "ok" else "")}'
            '</td>'
            f'<td>{link(r.output, Path(r.output).name if r.output else "")}<br>'
            f'{link(r.notebook, "notebook")}</td>'
            f'<td class="error">{html.escape(r.error or "")}</td><td>{plot}</td></tr>')
    head = ("<tr><th>input</th><th>status</th><th>before (s)</th><th>after (s)</th>"
            "<th>cut (s)</th><th>edits by kind</th><th>seconds cut by kind</th>"
            "<th>output</th><th>why it failed</th><th>cuts over the waveform</th></tr>")
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{len(rows)} inputs: {ok} edited, {failed} failed; {cut:.1f} s cut from "
            f"{before:.1f} s.</p><table>{head}{''.join(body)}</table></body></html>\n")
    path.write_text(page, encoding="utf-8")
    return path

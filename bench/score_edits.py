"""Score the cuts the engine proposes on composed real-voice talks against their truth.

    .venv/bin/python bench/score_edits.py [--set ci|full] [--llm] [--only NAME]

Runs the real engine on each talk the way ``sapari-nb edit IN -o OUT --edits cuts.json``
does with no API key (``sapari_nb.flow.edit_file`` on an embedded server: local faster-whisper
tiny.en, VAD pauses, heuristic takes, audio edges, render), reads back the applied cuts and
prints one row per recording. ``--llm`` runs the LLM take path instead, against the
loopback fake (tests/speech/fake_openai.py) answering as a deterministic rule-based judge
(see ``rule_judge``): that table measures the plumbing and this judge, not a real model.

Figures (``score``):

- pause recall: truth pauses >= 0.75 s (inserted room tone and the sources' own pauses)
  with cuts covering at least half of what padding leaves (the pause benches' rule);
- false-start recall: abandoned pieces (false starts and whole abandoned takes) whose voiced
  audio is at least half covered by cuts that are not pause cuts;
- false-start precision: of the take cuts (any kind but ``silence``) that remove speech,
  the share whose speech is mostly abandoned speech (a cut on kept speech is wrong; a take
  cut over a pause only removes no speech and is counted apart as "idle");
- speech in cuts: seconds of kept voiced audio inside any cut;
- clipped words: kept words a cut reaches more than 20 ms into (at the onset, the offset or
  inside); ``worst`` is the deepest reach, in ms, and ``retake`` how far the deepest cut
  runs past a retake's audio onset.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "server", ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from sapari_testkit.voices import Talk, Truth  # noqa: E402

LONG_PAUSE = 0.75  # pauses at least this long must be found
CLIP_TOLERANCE = 0.02  # a cut may touch a kept word by this much
PADDING = 0.1  # the engine's default padding kept around speech
PAUSE_KINDS = ("silence",)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def covered(span: tuple[float, float], cuts: list[tuple[float, float]]) -> float:
    """Seconds of ``span`` inside the union of ``cuts``."""
    merged: list[list[float]] = []
    for s, e in sorted(cuts):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return sum(overlap(span, (s, e)) for s, e in merged)


@dataclass
class Row:
    name: str
    room: str = ""
    style: str = ""
    duration: float = 0.0
    pauses_found: int = 0
    pauses: int = 0
    fs_found: int = 0
    fs: int = 0
    take_right: int = 0
    take_wrong: int = 0
    take_idle: int = 0
    speech_in_cuts: float = 0.0
    clipped: int = 0
    words: int = 0
    worst_ms: float = 0.0
    retake_ms: float = 0.0  # deepest reach past a retake's onset (<= 0: none)
    cut_seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    missed_pauses: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    seconds: float = 0.0  # engine wall time
    detectors: list[str] = field(default_factory=list)  # what really ran (the CLI's [...])
    llm_requests: int = 0  # chat requests the fake judge answered for this talk
    error: str = ""  # the edit failed: nothing was cut, every figure counts that

    @property
    def pause_recall(self) -> float:
        return self.pauses_found / self.pauses if self.pauses else 1.0

    @property
    def fs_recall(self) -> float:
        return self.fs_found / self.fs if self.fs else 1.0

    @property
    def fs_precision(self) -> float:
        n = self.take_right + self.take_wrong
        return self.take_right / n if n else 1.0


def score(name: str, truth: Truth, cuts: list[dict[str, Any]], padding: float = PADDING) -> Row:
    row = Row(name, duration=truth.duration)
    spans = [(float(c["start"]), float(c["end"])) for c in cuts]
    takes = [(float(c["start"]), float(c["end"])) for c in cuts if c["kind"] not in PAUSE_KINDS]
    for c in cuts:
        row.kinds[c["kind"]] = row.kinds.get(c["kind"], 0) + 1
        row.cut_seconds += float(c["end"]) - float(c["start"])
    abandoned = truth.false_starts + truth.takes
    for p0, p1 in truth.pauses:
        if p1 - p0 < LONG_PAUSE:
            continue
        row.pauses += 1
        if covered((p0, p1), spans) >= 0.5 * (p1 - p0 - 2 * padding):
            row.pauses_found += 1
        else:
            row.missed_pauses.append(f"{p0:.2f}-{p1:.2f}")
    for a in abandoned:
        row.fs += 1
        if covered(a, takes) >= 0.5 * (a[1] - a[0]):
            row.fs_found += 1
        else:
            row.missed.append(f"{a[0]:.2f}-{a[1]:.2f}")
    for t in takes:
        gone = sum(overlap(t, a) for a in abandoned)
        kept = sum(overlap(t, k) for k in truth.kept_speech)
        if gone < 0.05 and kept <= CLIP_TOLERANCE:
            row.take_idle += 1
        elif gone >= kept:
            row.take_right += 1
        else:
            row.take_wrong += 1
            row.wrong.append(f"{t[0]:.2f}-{t[1]:.2f}")
    row.speech_in_cuts = sum(covered(k, spans) for k in truth.kept_speech)
    row.words = len(truth.kept_words)
    for w in truth.kept_words:
        reach = max((overlap(w, s) for s in spans), default=0.0)
        row.worst_ms = max(row.worst_ms, reach * 1000)
        if reach > CLIP_TOLERANCE:
            row.clipped += 1
    for onset in truth.retake_onsets:
        for s, e in spans:
            if s < onset + 0.5 and e > onset - 0.5:
                row.retake_ms = max(row.retake_ms, (e - onset) * 1000 if s < onset else 0.0)
    return row


HEADER = (f"{'recording':<26}{'room':<26}{'s':>5} {'pauses':>9} {'false starts':>12} "
          f"{'prec':>9} {'speech in cuts':>14} {'clipped':>8} {'worst ms':>8}  cuts")


def line(r: Row) -> str:
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(r.kinds.items()))
    prec = f"{r.take_right}/{r.take_right + r.take_wrong}"
    return (f"{r.name:<26}{r.room:<26}{r.duration:>5.0f} "
            f"{f'{r.pauses_found}/{r.pauses}':>9} {f'{r.fs_found}/{r.fs}':>12} {prec:>9} "
            f"{r.speech_in_cuts:>13.3f}s {f'{r.clipped}/{r.words}':>8} {r.worst_ms:>8.0f}  "
            f"{'EDIT FAILED' if r.error else kinds}")


def total(rows: list[Row]) -> str:
    pf, pn = sum(r.pauses_found for r in rows), sum(r.pauses for r in rows)
    ff, fn = sum(r.fs_found for r in rows), sum(r.fs for r in rows)
    tr, tw = sum(r.take_right for r in rows), sum(r.take_wrong for r in rows)
    worst_speech = max((r.speech_in_cuts for r in rows), default=0.0)
    clipped = sum(r.clipped for r in rows)
    return (f"all {len(rows)} recordings: pause recall {pf}/{pn} = {pf / max(1, pn):.2f} "
            f"(target >= 0.98); false-start recall {ff}/{fn} = {ff / max(1, fn):.2f} "
            f"(>= 0.9), precision {tr}/{tr + tw} = {tr / max(1, tr + tw):.2f} (>= 0.95); "
            f"speech in cuts worst {worst_speech:.3f} s per recording (<= 0.1); "
            f"clipped words {clipped} (0)")


def details(r: Row) -> str:
    out = [f"EDIT FAILED: {r.error[:300]}"] if r.error else []
    if r.missed_pauses:
        out.append(f"pauses not cut {', '.join(r.missed_pauses)}")
    if r.missed:
        out.append(f"abandoned speech not cut {', '.join(r.missed)}")
    if r.wrong:
        out.append(f"wrong take cuts {', '.join(r.wrong)}")
    if r.retake_ms > 0:
        out.append(f"a cut runs {r.retake_ms:.0f} ms past a retake's onset")
    return f"  {r.name}: " + "; ".join(out) if out else ""


# --- the engine -----------------------------------------------------------------------------


WORD = re.compile(r"\[(\d+)\]\s+(\S+)")


def rule_judge(text: str) -> list[dict[str, Any]]:
    """A deterministic stand-in for an LLM judge, over the words the engine sends.

    A run of words that a later run starts the same way (the first two words, or the first
    one when it is the whole run) within 30 words, after a pause marker or a "...", is a
    false start (a whole sentence said again: a repeated take). It cannot hear the audio:
    what the transcript folded away, it does not find.
    """
    toks: list[tuple[int, str, bool]] = []  # (number, word, a pause or "..." just before)
    gap = False
    for part in re.split(r"(<pause [\d.]+s>|\[\d+\]\s+\S+)", text):
        if part.startswith("<pause"):
            gap = True
        m = WORD.fullmatch(part.strip()) if part.strip() else None
        if m:
            toks.append((int(m.group(1)), m.group(2), gap))
            gap = m.group(2).endswith(("...", "…", "-", "—"))

    def norm(w: str) -> str:
        return re.sub(r"[^a-z']", "", w.lower())

    out: list[dict[str, Any]] = []
    i = 0
    while i < len(toks):
        found = None
        for j in range(i + 1, min(len(toks), i + 31)):
            if not toks[j][2]:
                continue
            n = 2 if j - i >= 2 else 1
            if j + n <= len(toks) and all(norm(toks[i + k][1]) == norm(toks[j + k][1]) != ""
                                          for k in range(n)):
                found = j
                break
        if found is not None:
            whole = toks[found - 1][1].endswith((".", "?", "!"))
            out.append({"first_word": toks[i][0], "last_word": toks[found - 1][0],
                        "kind": "repeated_take" if whole else "false_start",
                        "reason": "said again after a pause (rule-based fake judge)"})
            i = found
        else:
            i += 1
    return out


@contextmanager
def fake_llm() -> Iterator[Any]:
    """The loopback OpenAI fake, every chat answered by ``rule_judge``."""
    sys.path.insert(0, str(ROOT))
    from tests.speech.fake_openai import FakeOpenAI, chat_completion

    fake = FakeOpenAI(models=None)

    def answer(rec: Any) -> Any:
        body = rec.json or {}
        text = next((m["content"] for m in body.get("messages", []) if m["role"] == "user"), "")
        # Re-arm: one action is consumed per request.
        fake.chat.append(answer)
        return chat_completion(json.dumps({"findings": rule_judge(text)}))

    with fake:
        fake.chat.append(answer)
        yield fake


@contextmanager
def engine(llm: Any = None) -> Iterator[Callable[[Path, Path], tuple[list[dict[str, Any]],
                                                                      list[str]]]]:
    """Yield ``edit(wav, out_dir) -> (cuts, detectors)``: the CLI's path, one embedded server.

    No key: the settings are given outright, so a SAPARI_* key in the environment cannot
    turn on the API transcriber or the LLM.
    """
    from sapari_nb.client import Client
    from sapari_nb.flow import edit_file
    from sapari_server.embedded import EmbeddedServer
    from sapari_server.settings import Settings

    with tempfile.TemporaryDirectory(prefix="score-edits-") as d:
        kw: dict[str, Any] = {"transcriber": "local", "take_detector": "heuristic",
                              "openai_api_key": "", "llm_api_key": ""}
        if llm is not None:
            kw.update(take_detector="llm", llm_api_key=llm.api_key, llm_base_url=llm.url)
        srv = EmbeddedServer(Settings(data_dir=Path(d) / "data", preview_artifacts=False,
                                      **kw)).start()
        try:
            with Client(srv.url, srv.token, progress=False) as client:
                def edit(src: Path, out_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
                    out, cuts_json = out_dir / f"{src.stem}.cut.mp4", out_dir / f"{src.stem}.json"
                    result = edit_file(client, src, out, edits_json=cuts_json, cleanup=True)
                    cuts: list[dict[str, Any]] = json.loads(cuts_json.read_text())
                    out.unlink(missing_ok=True)
                    return cuts, list(result.detectors)

                yield edit
        finally:
            srv.stop()


def evaluate(talks: list[Talk], *, llm: bool = False, echo: bool = True,
             keep: Path | None = None) -> list[Row]:
    """Run the engine on every talk and score it; ``keep`` saves wavs, truth and cuts there."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="score-talks-") as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with (fake_llm() if llm else _none()) as fake, engine(fake) as edit:
            asked = 0
            for talk in talks:
                wav = talk.write(work / f"{talk.name}.wav")
                t0 = time.perf_counter()
                try:
                    cuts, detectors = edit(wav, work)
                except Exception as e:  # a failed job fails its recording, not the run
                    cuts, detectors = [], []
                    error = f"{type(e).__name__}: {e}"
                else:
                    error = ""
                row = score(talk.name, talk.truth, cuts)
                row.detectors, row.error = detectors, error
                row.seconds = time.perf_counter() - t0
                row.room, row.style = talk.room.label, talk.style
                if keep is not None:
                    (work / f"{talk.name}.truth.json").write_text(
                        json.dumps(talk.truth.to_json(), indent=1))
                else:
                    wav.unlink()
                if fake is not None:
                    # Proof the LLM path ran: the judge was asked about this talk.
                    n = len(fake.requests_to("/chat/completions"))
                    row.llm_requests = n - asked
                    asked = n
                if echo:
                    print(line(row), flush=True)
                rows.append(row)
    return rows


@contextmanager
def _none() -> Iterator[None]:
    yield None


def print_table(title: str, rows: list[Row]) -> None:
    ran = sorted({d for r in rows for d in r.detectors})
    asked = sum(r.llm_requests for r in rows)
    print(f"\n{title}; detectors {', '.join(ran) or 'none'}"
          + (f"; {asked} chat requests answered by the fake" if asked else ""))
    print(HEADER)
    for r in rows:
        print(line(r))
    print(total(rows))
    for r in rows:
        d = details(r)
        if d:
            print(d)


def main() -> None:
    from bench.voices_set import build

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=["ci", "full"], default="full")
    ap.add_argument("--llm", action="store_true", help="LLM take path against the loopback fake")
    ap.add_argument("--only", help="talks whose name contains this")
    ap.add_argument("--keep", type=Path, help="keep wavs, truth and cuts in this folder")
    args = ap.parse_args()
    talks, notes = build(args.set)
    for n in notes:
        print(f"note: {n}")
    if args.only:
        talks = [t for t in talks if args.only in t.name]
    t0 = time.perf_counter()
    print(HEADER)
    rows = evaluate(talks, llm=args.llm, keep=args.keep)
    audio = sum(t.truth.duration for t in talks)
    what = "LLM path, loopback fake (rule-based judge)" if args.llm else "offline, no key"
    print_table(f"real voices, {what}: {len(talks)} talks, {audio:.0f} s of audio, "
                f"{time.perf_counter() - t0:.0f} s", rows)


if __name__ == "__main__":
    main()

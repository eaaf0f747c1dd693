"""Keep-segments never hold slivers: a few ms left after the last cut used to fail a render
("Segment 9 asks for 29.653-29.653 s ... the file is only 29.667 s long")."""

from __future__ import annotations

from sapari_server.pipelines.cuts import MIN_KEEP, Range, keep_segments


def test_no_sliver_after_the_last_cut() -> None:
    assert keep_segments(29.667, [Range(20.0, 29.653)]) == [(0.0, 20.0)]


def test_no_sliver_between_two_cuts_or_before_the_first() -> None:
    keeps = keep_segments(10.0, [Range(0.005, 2.0), Range(2.01, 4.0), Range(6.0, 7.0)])
    assert keeps == [(4.0, 6.0), (7.0, 10.0)]
    assert all(b - a >= MIN_KEEP for a, b in keeps)


def test_real_keeps_stay() -> None:
    assert keep_segments(10.0, [Range(2.0, 3.0)]) == [(0.0, 2.0), (3.0, 10.0)]
    assert keep_segments(10.0, []) == [(0.0, 10.0)]


def test_a_take_cut_that_swallows_a_pause_leads_with_its_own_reason() -> None:
    from sapari_server.pipelines.cuts import clean_cuts

    merged = clean_cuts([Range(6.2, 7.0, "silence", "no speech for 0.8 s"),
                         Range(6.5, 9.1, "false_start", "abandoned phrase, restarted")], 20.0)
    assert len(merged) == 1 and merged[0].kind == "false_start"
    assert merged[0].reason.startswith("abandoned phrase")

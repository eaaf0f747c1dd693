"""Restarts heard in the audio: the phrase before a pause said again right after it.

A false start is the same speaker saying the same words twice: "What I want you to…
[pause] What I want you to take". Whisper often folds the two into one phrase, or hears
the first one as noise and drops it, and then the transcript holds no trace of it. The
audio does: the stretch just before the pause and the start of the stretch after it are
the same sounds. Here each pause between voiced stretches is checked for that:

- log-mel frames (20 ms hop, 150-4000 Hz: mains hum and its first harmonics stay out),
  mean-normalised per band over the neighbourhood (a steady room noise cancels) and made
  unit length, so two frames compare by cosine similarity;
- a local alignment (dynamic time warping with slopes 1/2..2, each step scored
  ``similarity - GAIN_FLOOR`` so it grows while the sounds keep matching) from any frame of
  the stretch before the pause, anchored at the start of the stretch after it, and ending
  at the pause: the frames before the pause that it covers are the abandoned take;
- a match counts when it is long enough (``MIN_MATCH`` s of voiced frames) and sure (mean
  similarity ``MIN_SIMILARITY`` over voiced frame pairs): one speaker's voice saying other
  words reaches 0.6-0.85 here, the same words said again 0.93 and more.

Pure and deterministic: samples in, time ranges out. Costs a few ms per pause.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..media import spectrum

RATE = 16_000
HOP = 320  # 20 ms
WIN = 512  # 32 ms frames
# A pause this long between voiced stretches may follow an abandoned take; longer than
# MAX_GAP it is a break between topics.
MIN_GAP = 0.15
MAX_GAP = 4.0
# How far back before the pause an abandoned take may start, and how much of the stretch
# after it is searched.
MAX_TAKE = 8.0
AFTER = 1.6  # x the stretch before (plus SLACK_B): the retake may be slower
# The retake's first sound may sit this far after where the VAD puts the stretch start (a
# breath, a click); the abandoned take may stop this much before the pause (a fade).
SLACK_B = 0.2
SLACK_A = 0.1
GAIN_FLOOR = 0.8  # a step adds (similarity - this): matching sounds grow the match
# Frames outside voiced stretches: silence against silence is neutral (both phrases pause
# there), silence against speech costs this.
MISMATCH = 0.5
MIN_MATCH = 0.2  # seconds of the abandoned take that must match
MIN_SIMILARITY = 0.88
# A match shorter than this (a word or two) must be surer.
SHORT_MATCH, SHORT_SIMILARITY = 0.4, 0.92
# ... and so must a match across a pause shorter than this.
SHORT_GAP = 0.3
# First look: the retake's first HEAD s, against every point of the stretch before the pause
# (a straight line, no warping), must reach HEAD_SIMILARITY; the full alignment then starts
# HEAD_REACH s before the best point.
HEAD, HEAD_SIMILARITY, HEAD_REACH = 0.3, 0.7, 0.3
# Retake frames per abandoned-take frame along the match, at least this and at most 1/this.
MIN_PACE = 0.7
# A pause this long inside a match separates the abandoned take from the phrase before it.
PHRASE_PAUSE = 0.25
SCRAP = 0.3  # seconds of speech before such a pause that belong to the phrase before
# The stretch before a pause ends at its last frame louder than the pause's floor by this
# (the VAD's offset lags the sound), looking back at most MAX_TAIL s.
TAIL_RISE_DB, MAX_TAIL = 6.0, 0.3


@dataclass(frozen=True)
class Restart:
    """An abandoned take [start, end) heard again from ``retake`` on."""

    start: float
    end: float  # where the voiced stretch before the pause ends
    retake: float  # where the voiced stretch after the pause starts
    similarity: float

    @property
    def length(self) -> float:
        return self.end - self.start


def logmel(samples: np.ndarray) -> np.ndarray:
    """Log-mel frames (n, N_MELS), one per 20 ms hop (natural log, as compared here)."""
    return spectrum.logmel(samples, HOP, WIN) * np.float32(np.log(10) / 10)


def align(a: np.ndarray, b: np.ndarray, slack_a: int, slack_b: int,
          va: np.ndarray | None = None, vb: np.ndarray | None = None,
          ) -> tuple[int, int, float, int]:
    """Best local alignment of a's tail with b's head: (first row of a, rows, mean sim,
    columns of b used).

    ``a`` and ``b`` are unit-length frames, ``va``/``vb`` whether each is voiced (all when
    None); the mean similarity is over voiced pairs. The path starts at any row of ``a`` and one of
    b's first ``slack_b + 1`` columns, steps (1,1), (1,2) or (2,1), and ends in one of a's
    last ``slack_a + 1`` rows. Each cell adds ``similarity - GAIN_FLOOR``; the path with the
    largest total wins (it stops growing backwards where the sounds stop matching).
    """
    na, nb = a.shape[0], b.shape[0]
    if na == 0 or nb == 0:
        return 0, 0, 0.0, 0
    va = np.ones(na, bool) if va is None else va
    vb = np.ones(nb, bool) if vb is None else vb
    both = va[:, None] & vb[None, :]
    sim = np.where(both, a @ b.T, 0.0)
    gain = np.where(both, sim - GAIN_FLOOR,
                    np.where(~va[:, None] & ~vb[None, :], 0.0, -MISMATCH))
    cnt = both.astype(np.float64)
    neg = -1e9
    total = np.full((na, nb), neg, np.float64)
    cells = np.zeros((na, nb), np.float64)
    first = np.zeros((na, nb), np.int32)
    simsum = np.zeros((na, nb), np.float64)
    for i in range(na):
        # Start here: one cell, at the head of b only.
        best = np.full(nb, neg)
        best[: slack_b + 1] = gain[i, : slack_b + 1]
        bc = cnt[i].copy()
        bf = np.full(nb, i, np.int32)
        bs = sim[i].astype(np.float64)
        if i >= 1:
            # (1,1): from (i-1, j-1).
            cand = np.full(nb, neg)
            cand[1:] = total[i - 1, :-1] + gain[i, 1:]
            take = cand > best
            best = np.where(take, cand, best)
            bc = np.where(take, np.r_[0.0, cells[i - 1, :-1]] + cnt[i], bc)
            bf = np.where(take, np.r_[0, first[i - 1, :-1]], bf)
            bs = np.where(take, np.r_[0.0, simsum[i - 1, :-1]] + sim[i], bs)
            # (1,2): from (i-1, j-2) through (i, j-1).
            cand = np.full(nb, neg)
            cand[2:] = total[i - 1, :-2] + gain[i, 1:-1] + gain[i, 2:]
            take = cand > best
            best = np.where(take, cand, best)
            bc = np.where(take, np.r_[0.0, 0.0, cells[i - 1, :-2]] + cnt[i] + np.r_[0.0, cnt[i, :-1]], bc)
            bf = np.where(take, np.r_[0, 0, first[i - 1, :-2]], bf)
            bs = np.where(take, np.r_[0.0, 0.0, simsum[i - 1, :-2]] + sim[i] + np.r_[0.0, sim[i, :-1]], bs)
        if i >= 2:
            # (2,1): from (i-2, j-1) through (i-1, j).
            cand = np.full(nb, neg)
            cand[1:] = total[i - 2, :-1] + gain[i - 1, 1:] + gain[i, 1:]
            take = cand > best
            best = np.where(take, cand, best)
            bc = np.where(take, np.r_[0.0, cells[i - 2, :-1]] + cnt[i - 1] + cnt[i], bc)
            bf = np.where(take, np.r_[0, first[i - 2, :-1]], bf)
            bs = np.where(take, np.r_[0.0, simsum[i - 2, :-1]] + sim[i - 1] + sim[i], bs)
        total[i], cells[i], first[i], simsum[i] = best, bc, bf, bs
    tail = total[max(0, na - 1 - slack_a) :]
    r, j = np.unravel_index(int(np.argmax(tail)), tail.shape)
    i = max(0, na - 1 - slack_a) + int(r)
    if total[i, j] <= neg / 2:
        return 0, 0, 0.0, 0
    f = int(first[i, j])
    return f, i - f + 1, float(simsum[i, j] / max(1.0, cells[i, j])), int(j) + 1


def _last_sound(feats: np.ndarray, voiced: np.ndarray, ia: int, ib: int) -> int:
    """Where the stretch before the pause really falls silent (a frame index <= ``ia``).

    The VAD's offset lags the last sound (its hangover, then the widening over the levels):
    a stretch ended 0.22 s into the pause, and the alignment, which must end at the pause,
    compared the retake's first sounds with room tone there (LibriSpeech 3536: a restart
    missed, 0.897 when the stretch ends at its last sound). Frames at the end of the
    stretch no louder than the pause's own floor (its median plus ``TAIL_RISE_DB``, over
    the same 150-4000 Hz bands) are pause, at most ``MAX_TAIL`` s of them; they are marked
    unvoiced in ``voiced``."""
    if ib - ia < 2 or ia < 2:
        return ia
    level = _frame_db(feats)
    floor = float(np.median(level[ia:ib]))
    stop = max(0, ia - int(round(MAX_TAIL * RATE / HOP)))
    k = ia
    while k > stop and level[k - 1] < floor + TAIL_RISE_DB:
        k -= 1
    voiced[k:ia] = False
    return k


def _frame_db(feats: np.ndarray) -> np.ndarray:
    """Each frame's power over the mel bands, in dB (``feats`` is natural-log power)."""
    top = feats.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(feats - top).sum(axis=1))) * np.float32(10 / np.log(10))


def _runs_of(idx: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive integers in sorted ``idx`` as (first, last + 1)."""
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    firsts = np.concatenate(([0], breaks + 1))
    lasts = np.concatenate((breaks, [idx.size - 1]))
    return [(int(idx[a]), int(idx[b]) + 1) for a, b in zip(firsts, lasts, strict=True)]


def _voiced(runs: Sequence[tuple[float, float]], t0: float, n: int) -> np.ndarray:
    """Whether each 20 ms frame from t0 on (its centre) lies in a voiced run."""
    centre = t0 + (np.arange(n) * HOP + WIN / 2) / RATE
    mask = np.zeros(n, bool)
    for s, e in runs:
        mask |= (centre >= s) & (centre < e)
    return mask


def find_restarts(
    runs: Sequence[tuple[float, float]],
    read: Callable[[float, float], np.ndarray],
    duration: float,
) -> list[Restart]:
    """Restarts across the pauses between voiced ``runs`` (seconds, sorted).

    ``read(t0, t1)`` returns the 16 kHz mono samples of [t0, t1). Every pause between
    ``MIN_GAP`` and ``MAX_GAP`` long is checked; results are sorted and disjoint.
    """
    out: list[Restart] = []
    for k in range(len(runs) - 1):
        gap0, gap1 = runs[k][1], runs[k + 1][0]
        if not MIN_GAP <= gap1 - gap0 <= MAX_GAP:
            continue
        a0 = max(0.0, gap0 - MAX_TAKE)
        # Never reach back over an earlier long pause: what came before it is another phrase.
        for m in range(k, 0, -1):
            if runs[m][0] - runs[m - 1][1] > MAX_GAP:
                a0 = max(a0, runs[m][0])
                break
        b1 = min(duration, gap1 + AFTER * (gap0 - a0) + SLACK_B)
        if gap0 - a0 < MIN_MATCH or b1 - gap1 < MIN_MATCH:
            continue
        near = [r for r in runs if r[1] > a0 and r[0] < b1]
        r = check_pause(read(a0, b1), a0, gap0, gap1, near)
        if r is None:
            continue
        if out and r.start < out[-1].end:
            # Two pauses inside one abandoned take (a word's closure, then the real pause):
            # one take, from the earlier onset to the later pause, then the retake.
            prev = out[-1]
            r = Restart(min(prev.start, r.start), r.end, r.retake,
                        max(prev.similarity, r.similarity))
            out[-1] = r
            continue
        out.append(r)
    return out


def check_pause(x: np.ndarray, t0: float, gap0: float, gap1: float,
                runs: Sequence[tuple[float, float]]) -> Restart | None:
    """Is the speech in x (starting at t0) before ``gap0`` said again from ``gap1``?"""
    feats = logmel(x)
    if feats.shape[0] < 4:
        return None
    hop_s = HOP / RATE
    voiced = _voiced(runs, t0, feats.shape[0])
    if not voiced.any():
        return None
    ia = int(round((gap0 - t0) / hop_s))
    ib = int(round((gap1 - t0) / hop_s))
    found = _match(feats, voiced, t0, gap0, gap1, ia, ib)
    if found is None:
        # Again from where the stretch really falls silent: the VAD's offset can lag the
        # last sound by more than SLACK_A. Only as a second look: a soft last syllable at
        # the pause's floor (a short take in a meeting room) matched better with it.
        quiet = voiced.copy()
        last = _last_sound(feats, quiet, ia, ib)
        if last < ia:
            found = _match(feats, quiet, t0, gap0, gap1, last, ib)
    return found


def _match(feats: np.ndarray, voiced: np.ndarray, t0: float, gap0: float, gap1: float,
           ia: int, ib: int) -> Restart | None:
    """check_pause's alignment, with the stretch before the pause ending at frame ``ia``."""
    hop_s = HOP / RATE
    # Normalised over the speech only: a pause's noise (or digital silence) must not set
    # the mean every frame is compared around.
    mean = feats[voiced].mean(axis=0, keepdims=True)
    f = feats - mean
    feats = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-6)
    nb = int(np.ceil((AFTER * (gap0 - t0) + SLACK_B) / hop_s))
    slack_a, slack_b = int(round(SLACK_A / hop_s)), int(round(SLACK_B / hop_s))
    # Cheap first look: the retake's first HEAD s must be heard somewhere in the stretch
    # before the pause (where the abandoned take began). Most pauses end here.
    a, va = feats[:ia], voiced[:ia]
    b, vb = feats[ib : ib + nb], voiced[ib : ib + nb]
    lead = int(np.argmax(vb[: slack_b + 1])) if vb[: slack_b + 1].any() else 0
    h = min(int(round(HEAD / hop_s)), b.shape[0] - lead, a.shape[0])
    if h < 4:
        return None
    # A padded with silence: an abandoned take shorter than HEAD may start in A's last rows.
    sim_head = np.vstack((a @ b[lead : lead + h].T, np.zeros((h - 1, h), np.float32)))
    pairs = np.concatenate((va, np.zeros(h - 1, bool)))[:, None] & vb[None, lead : lead + h]
    n = a.shape[0]
    diag = np.zeros(n)
    cnt = np.zeros(n)
    for k in range(h):
        diag += np.where(pairs[k : k + n, k], sim_head[k : k + n, k], 0.0)
        cnt += pairs[k : k + n, k]
    score = np.where(cnt >= min(h // 2, int(round(MIN_MATCH / hop_s))),
                     diag / np.maximum(cnt, 1), 0.0)
    best = int(np.argmax(score))
    if score[best] < HEAD_SIMILARITY:
        return None
    # The full alignment from a little before that point only.
    off = max(0, best - int(round(HEAD_REACH / hop_s)))
    i0, rows, sim, cols = align(a[off:], b, slack_a, slack_b, va[off:], vb)
    i0 += off
    # One speaker saying the same words again keeps about the same pace; a match that needs
    # the retake twice as fast or slow is other words sharing a few sounds.
    if rows and not MIN_PACE <= (cols - lead) / rows <= 1 / MIN_PACE:
        return None
    matched = voiced[i0 : i0 + rows].sum() * hop_s
    if matched < MIN_MATCH or sim < MIN_SIMILARITY:
        return None
    if matched < SHORT_MATCH and sim < SHORT_SIMILARITY:
        return None
    if gap1 - gap0 < SHORT_GAP and sim < SHORT_SIMILARITY:
        return None  # a breath inside a sentence: the same voice reaches 0.88 across it
    # Silence against silence is free, so the path may run back over a pause and pick up
    # the last sounds of the phrase before it, which stays: a scrap of speech before a
    # pause inside the match is dropped (a whole take keeps its own pauses).
    v = voiced[i0 : i0 + rows]
    quiet = np.flatnonzero(~v)
    cut_at = 0
    for q in _runs_of(quiet):
        if q[1] - q[0] < PHRASE_PAUSE / hop_s:
            continue
        if v[cut_at : q[0]].sum() * hop_s >= SCRAP:
            break
        cut_at = q[1]
    i0, rows = i0 + cut_at, rows - cut_at
    if voiced[i0 : i0 + rows].sum() * hop_s < MIN_MATCH:
        return None
    if cut_at:
        # What is left must match the retake's head on its own: a match carried by an
        # earlier phrase (said again later, with other speech in between) is no restart.
        _, rows2, sim, _ = align(a[i0:], b, slack_a, slack_b, va[i0:], vb)
        if rows2 < rows // 2 or sim < MIN_SIMILARITY:
            return None
    i0 += int(np.argmax(voiced[i0 : i0 + rows]))
    start = t0 + i0 * hop_s
    return Restart(round(start, 3), round(gap0, 3), round(gap1, 3), round(sim, 3))


def find_restarts_in_wav(
    wav16k: Path, runs: Sequence[tuple[float, float]], duration: float
) -> list[Restart]:
    """``find_restarts`` over a 16 kHz mono 16-bit WAV, reading only the windows it checks."""
    with spectrum.wav_reader(wav16k) as read:
        return [] if read is None else find_restarts(runs, read, duration)

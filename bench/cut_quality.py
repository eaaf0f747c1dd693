"""Pause-cut quality in noisy rooms: Silero VAD vs loudness (fixed -40 dB) vs loudness (auto).

    .venv/bin/python bench/cut_quality.py [--talks N]

Generates (in bench/.cache/quality/, rewritten each run) N talks per room with the formant voice and
random pauses (0.3-2.2 s), as AAC in MP4, in three rooms: clean, pink noise at -32 dBFS,
and pink noise at -32 dBFS plus 50 Hz hum at -30 dBFS. For each method it prints:

- recall: pauses >= 0.75 s that got a cut covering at least half of what padding leaves;
- short cut: pauses < min_silence (0.5 s) that were cut anyway (should be 0);
- damage: seconds of true speech inside cuts (should be 0);
- speed: the method's own work in x realtime (VAD: model over audio16k.wav; loudness: the
  detector over the level track). The shared decode pass (analyze_audio, which also writes
  audio16k.wav) is timed separately.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped

from sapari_server.media.audio import analyze_audio  # noqa: E402
from sapari_server.media.silence import (  # noqa: E402
    Cut,
    SilenceSettings,
    detect_silences_in,
)
from sapari_server.media.vad import WINDOW_S, detect_silences_vad, speech_probabilities  # noqa: E402
from sapari_testkit.generate import TalkTruth, generate_talk  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache" / "quality"
ROOMS: dict[str, dict[str, object]] = {
    "clean": {},
    "pink -32": {"noise_db": -32.0, "noise_color": "pink"},
    "pink -32 + hum": {"noise_db": -32.0, "noise_color": "pink", "hum_db": -30.0},
}
LONG = 0.75  # pauses at least this long must be found


@dataclass
class Score:
    found: int = 0
    long: int = 0
    short_cut: int = 0
    short: int = 0
    damage: float = 0.0
    work: float = 0.0
    audio: float = 0.0

    def add(self, cuts: list[Cut], truth: TalkTruth, s: SilenceSettings) -> None:
        inner = [p for p in truth.pauses if 0 < p[0] and p[1] < truth.duration - 1e-6]
        for p0, p1 in inner:
            got = sum(max(0.0, min(c.end, p1) - max(c.start, p0)) for c in cuts)
            if p1 - p0 >= LONG:
                self.long += 1
                self.found += got >= 0.5 * (p1 - p0 - 2 * s.padding)
            elif p1 - p0 < s.min_silence:
                self.short += 1
                self.short_cut += got > 0
        for c in cuts:
            for s0, s1 in truth.speech:
                self.damage += max(0.0, min(c.end, s1) - max(c.start, s0))


def talk(room: str, kw: dict[str, object], seed: int) -> tuple[Path, TalkTruth]:
    rng = np.random.default_rng(1000 + seed)
    pauses = [float(x) for x in rng.uniform(0.3, 2.2, 9)]
    speech = [float(x) for x in rng.uniform(1.2, 3.5, 10)]
    path = CACHE / f"{room.replace(' ', '_').replace('+', 'and')}_{seed}.mp4"
    # Regenerated every run (about 1 s per talk): the truth comes from the same call.
    tmp = path.with_suffix(".part.mp4")
    truth = generate_talk(
        tmp,
        pauses=pauses,
        speech_lengths=speech,
        seed=seed,
        video=False,
        voice="formant",
        lead_silence=0.6,
        tail_silence=0.6,
        **kw,  # type: ignore[arg-type]
    )
    tmp.replace(path)
    return path, truth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--talks", type=int, default=3)
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    s_vad = SilenceSettings()
    s_fixed = SilenceSettings(method="loudness", threshold_db=-40.0)
    s_auto = SilenceSettings(method="loudness", threshold_db=None)
    rows = []
    decode_t = decode_audio = 0.0
    for room, kw in ROOMS.items():
        scores = {"VAD": Score(), "loudness -40 dB": Score(), "loudness auto": Score()}
        for seed in range(args.talks):
            path, truth = talk(room, kw, seed)
            wav = path.with_suffix(".16k.wav")
            t = time.perf_counter()
            a = analyze_audio(path, wav_out=wav)
            decode_t += time.perf_counter() - t
            decode_audio += a.duration
            t = time.perf_counter()
            probs = speech_probabilities(wav)
            cuts = detect_silences_vad(
                probs, WINDOW_S, a.duration, s_vad, levels_db=a.levels_dehum_db, hop=a.hop
            )
            scores["VAD"].work += time.perf_counter() - t
            scores["VAD"].add(cuts, truth, s_vad)
            for name, s in (("loudness -40 dB", s_fixed), ("loudness auto", s_auto)):
                t = time.perf_counter()
                cuts = detect_silences_in(a, s)
                scores[name].work += time.perf_counter() - t
                scores[name].add(cuts, truth, s)
            for sc in scores.values():
                sc.audio += a.duration
            wav.unlink()
        for name, sc in scores.items():
            rows.append((room, name, sc))
    print(f"{'room':<16}{'method':<18}{'recall >=0.75s':>16}{'short cut':>11}"
          f"{'damage s':>10}{'speed':>12}")
    for room, name, sc in rows:
        recall = f"{sc.found}/{sc.long} {sc.found / max(1, sc.long):.2f}"
        speed = f"{sc.audio / max(sc.work, 1e-9):.0f}x"
        print(f"{room:<16}{name:<18}{recall:>16}{f'{sc.short_cut}/{sc.short}':>11}"
              f"{sc.damage:>10.3f}{speed:>12}")
    print(f"shared decode pass (levels + audio16k.wav): {decode_audio / decode_t:.0f}x realtime")


if __name__ == "__main__":
    main()

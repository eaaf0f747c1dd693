"""The real-voice evaluation set: talks composed from recordings of real people, with truth.

    .venv/bin/python bench/voices_set.py [--set ci|full] [--write DIR]

Prints each talk (speakers, room, pieces, truth counts); ``--write`` also writes the WAVs and
truth JSON. ``bench/score_edits.py`` runs the engine on them and scores the cuts.

Two sets:

- ``ci``: only ``../shared/voices`` (real recordings with transcripts and licences, allowed
  in tests and CI): four talks (read and spontaneous), about 85 s of audio. ``tests/speech/test_real_voices.py``
  uses it.
- ``full``: ``ci`` plus talks from public repositories brought with the ``fetch`` tool into
  ``/work/.mirror``. Their files are read at run time from the snapshot with ``git cat-file``
  (pinned to the commit below when the snapshot has it), never copied into this repository.
  A snapshot that is missing is skipped and the run says so.

Each talk has false starts (a sentence's first 0.4-1.5 s, cut at a word boundary where word
times are known, else at the quietest 10 ms), whole abandoned takes (the same utterance said
twice: the first is cut), inserted pauses of room tone (0.5-2.5 s), the sources' own pauses,
and a room: clean (the sources' own room tone), recorded room noise (Speech Commands
background noise), pink noise, 50/60 Hz mains hum. No fillers: none of the sources has
isolated, labelled fillers, so the real set does not measure filler cuts.

Sources and licences (attribution as each asks):

| source | repository (path) | speakers | licence |
|---|---|---|---|
| LibriSpeech (dev/test utterances) | ../shared/voices 07-11; alifsemi/alif_ml-embedded-evaluation-kit (resources/asr/samples); librosa/data (audio/*.ogg); CorentinJ/Real-Time-Voice-Cloning (samples/*.mp3) | 198 F, 5703 M, 251 M, 3536 F, 3436 M, 1320, 3575, 6829, 8230 | CC BY 4.0, "LibriSpeech ASR corpus (c) 2014 Vassil Panayotov et al., openslr.org/12" |
| LibriVox Sense and Sensibility ch. 1 (with pocketsphinx word alignments) | ../shared/voices 05-06; cmusphinx/pocketsphinx (test/data/librivox) | 1 M | public domain (LibriVox); repo BSD-2-Clause |
| CMU ARCTIC aew (US M), axb (Indian F) | ../shared/voices 12-15; LCAV/pyroomacoustics (examples/input_samples) | 2 | CMU ARCTIC licence (BSD-style, attribution: "CMU ARCTIC databases, LTI, Carnegie Mellon University") |
| CSTR VCTK p240, p260 | CorentinJ/Real-Time-Voice-Cloning (samples, VCTK.txt) | 2, British accents | CC BY 4.0 (VCTK 0.92, University of Edinburgh) |
| AMI meeting EN2002-style excerpt (spontaneous) | ../shared/voices 02 (from pyannote/pyannote-audio) | 2 M | CC BY 4.0 (AMI Meeting Corpus) |
| JFK inaugural address excerpt (spontaneous oratory) | SYSTRAN/faster-whisper (tests/data/jfk.flac) | 1 M | public domain (US government work); repo MIT |
| Lyra samples (conversational) | ../shared/voices 18-19 (google/lyra) | 1 M, 1 F | Apache-2.0 (repo) |
| Speech Commands background noise (doing_the_dishes, exercise_bike) | LCAV/pyroomacoustics | noise | CC BY 4.0 (Speech Commands, Google) |
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "server", ROOT):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from sapari_testkit.voices import (  # noqa: E402
    FalseStart,
    Pause,
    Room,
    Say,
    Take,
    Talk,
    Utterance,
    compose,
    decode,
    phrases,
    utterance,
)

VOICES = ROOT.parent / "shared" / "voices"
MIRROR = Path("/work/.mirror")
# The snapshot commits this set was built from (read at that commit when present).
PINNED = {
    "cmusphinx/pocketsphinx": "511126b492dcb267cf30d49d631946d7b61a9530",
    "alifsemi/alif_ml-embedded-evaluation-kit": "b1b93fc01d915da47a4f6ea8475c193aef56e871",
    "librosa/data": "450cdd8a002c98e7bdbfebb309fc1ed024001f77",
    "CorentinJ/Real-Time-Voice-Cloning": "865eba8826bb6d76721a9d828a546724779c23ab",
    "LCAV/pyroomacoustics": "6fe43fecb7c358ac9aaa054e7e73641189f1afff",
    "SYSTRAN/faster-whisper": "65882eee9f5cdbeeb2d877f1131d48cf241b327d",
}


class Missing(RuntimeError):
    """A fetched snapshot (or a file in it) is not on this machine."""


def snapshot(repo: str, path: str) -> bytes:
    """A file's bytes from the fetched snapshot of ``repo`` (never copied anywhere)."""
    git = MIRROR / repo.replace("/", "+") / "repo"
    if not git.is_dir():
        raise Missing(f"{repo} is not fetched ({git} missing): bring it with the fetch tool")
    for rev in (PINNED.get(repo), "HEAD"):
        if rev is None:
            continue
        r = subprocess.run(["git", "-C", str(git), "cat-file", "blob", f"{rev}:{path}"],
                           capture_output=True)
        if r.returncode == 0 and r.stdout:
            return r.stdout
    raise Missing(f"{repo}:{path} is not in the snapshot")


def _index() -> dict[str, dict[str, object]]:
    return {e["file"]: e for e in json.loads((VOICES / "index.json").read_text())}


def shared(file: str, speaker: str, style: str = "read") -> Utterance:
    entry = _index()[file]
    words = entry.get("word_alignment")
    return utterance(file.split("_", 1)[0] + ":" + file.split("_", 1)[1].rsplit(".", 1)[0],
                     VOICES / file, speaker=speaker, style=style,
                     words=[(str(w), float(s), float(e)) for w, s, e in words]  # type: ignore[misc]
                     if words else None)


# --- the CI set: ../shared/voices only ----------------------------------------------------


def ci_talks() -> list[Talk]:
    lv_a = shared("05_librivox-austen-male-a.wav", "LibriVox reader (M)")
    lv_b = shared("06_librivox-austen-male-b.wav", "LibriVox reader (M)")
    eng = shared("09_librispeech-251-male-engineer.wav", "LibriSpeech 251 (M)")
    poi = shared("10_librispeech-251-male-poison.wav", "LibriSpeech 251 (M)")
    door = shared("11_librispeech-3536-female-door.wav", "LibriSpeech 3536 (F)")
    a1 = shared("12_arctic-aew-male-a0001.wav", "ARCTIC aew (US M)")
    a2 = shared("13_arctic-aew-male-a0002.wav", "ARCTIC aew (US M)")
    a4 = shared("14_arctic-axb-female-a0004.wav", "ARCTIC axb (Indian F)")
    a6 = shared("15_arctic-axb-female-a0006.wav", "ARCTIC axb (Indian F)")
    return [
        compose("ci-librivox", [FalseStart(lv_a, 1.0), Pause(0.7), Say(lv_a), Pause(1.6),
                                Take(lv_b), Pause(0.9), Say(lv_b)],
                Room("rumble", snr_db=28), seed=1),
        compose("ci-librispeech", [Say(eng), Pause(1.2), FalseStart(poi, 0.6), Pause(0.6),
                                   Say(poi), Pause(1.8), FalseStart(door, 0.9), Pause(0.8),
                                   Say(door)],
                Room("pink", snr_db=25, hum_hz=50), seed=2),
        compose("ci-arctic", [Say(a1), Pause(0.9), FalseStart(a2, 0.5), Pause(0.5), Say(a2),
                              Pause(1.5), Take(a4), Pause(0.7), Say(a4), Pause(1.0),
                              FalseStart(a6, 1.2), Pause(0.6), Say(a6)],
                Room(), seed=3),
        # Spontaneous: the first four phrases of the AMI meeting, under 60 Hz hum.
        _phrase_talk("ci-meeting", _ami_phrases()[:4], Room("pink", snr_db=28, hum_hz=60),
                     seed=4),
    ]


# --- the full set: ci plus fetched snapshots ------------------------------------------------


def _pocketsphinx(name: str) -> Utterance:
    base = f"test/data/librivox/sense_and_sensibility_01_austen_64kb-{name}"
    align = json.loads(snapshot("cmusphinx/pocketsphinx", base + ".json"))
    words = [(w["t"].split("(")[0], float(w["b"]), float(w["b"]) + float(w["d"]))
             for w in align["w"]]
    return utterance(f"librivox-{name}", snapshot("cmusphinx/pocketsphinx", base + ".wav"),
                     speaker="LibriVox reader (M)", words=words)


def _noise(path: str) -> Room:
    return Room("recorded", snr_db=20,
                recorded=decode(snapshot("LCAV/pyroomacoustics", path)))


def talk_librivox(room: Room | None = None, seed: int = 11, suffix: str = "") -> Talk:
    u = {k: _pocketsphinx(k) for k in ("0870", "0880", "0890", "0920", "0930")}
    return compose("librivox-austen" + suffix, [
        Say(u["0880"]), Pause(1.0), FalseStart(u["0890"], 0.8), Pause(0.7), Say(u["0890"]),
        Pause(1.3), FalseStart(u["0870"], 1.4), Pause(0.5), Say(u["0870"]), Pause(2.2),
        Take(u["0930"]), Pause(0.8), Say(u["0930"]), Pause(1.1), Say(u["0920"])],
        room or _noise("examples/input_samples/doing_the_dishes.wav"), seed=seed)


def talk_librispeech_alif(room: Room | None = None, seed: int = 12,
                          suffix: str = "") -> Talk:
    repo, d = "alifsemi/alif_ml-embedded-evaluation-kit", "resources/asr/samples/"
    spk = "LibriSpeech 251 (M)"
    t = utterance("ls251-routine", snapshot(repo, d + "testing_routine.wav"), speaker=spk)
    e = utterance("ls251-engineer", snapshot(repo, d + "another_engineer.wav"), speaker=spk)
    p = utterance("ls251-poison", snapshot(repo, d + "i_tell_you.wav"), speaker=spk)
    door = utterance("ls3536-door", snapshot(repo, d + "another_door.wav"),
                     speaker="LibriSpeech 3536 (F)")
    return compose("librispeech-251" + suffix, [
        Say(t), Pause(1.4), FalseStart(e, 0.7), Pause(0.6), Say(e), Pause(1.0), Take(p),
        Pause(0.9), Say(p), Pause(2.0), FalseStart(door, 1.1), Pause(0.5), Say(door)],
        room or Room("pink", snr_db=22, hum_hz=50), seed=seed)


def _phrase_talk(name: str, ph: list[Utterance], room: Room, seed: int) -> Talk:
    """One speaker's phrases in order: false starts before odd phrases, a retake of one."""
    script = [Say(ph[0])]
    lengths = (0.6, 1.0, 1.4, 0.8, 1.2)
    gaps = (1.2, 0.9, 1.6, 2.4, 1.0, 0.7)
    for k, u in enumerate(ph[1:], start=1):
        script.append(Pause(gaps[k % len(gaps)]))
        if k % 2 == 1 and u.offset - u.onset > 1.6:
            script += [FalseStart(u, lengths[k % len(lengths)]), Pause(0.4 + 0.1 * (k % 4))]
        elif k % 4 == 2:
            script += [Take(u), Pause(0.8)]
        script.append(Say(u))
    return compose(name, script, room, seed=seed)


def talk_librosa(file: str, speaker: str, room: Room, seed: int) -> Talk:
    ph = phrases(f"ls{file.split('-')[0]}", snapshot("librosa/data", f"audio/{file}"),
                 speaker=speaker, style="read")
    return _phrase_talk(f"librispeech-{file.split('-')[0]}", ph, room, seed)


def talk_rtvc(room: Room | None = None, seed: int = 13, suffix: str = "") -> Talk:
    repo = "CorentinJ/Real-Time-Voice-Cloning"
    u = [utterance(f"ls{n}", snapshot(repo, f"samples/{n}_00000.mp3"),
                   speaker=f"LibriSpeech {n}") for n in ("1320", "3575", "6829", "8230")]
    return compose("librispeech-4spk" + suffix, [
        Say(u[0]), Pause(1.1), FalseStart(u[1], 0.9), Pause(0.6), Say(u[1]), Pause(1.7),
        Take(u[2]), Pause(0.7), Say(u[2]), Pause(1.2), FalseStart(u[3], 0.5), Pause(0.8),
        Say(u[3])], room or _noise("notebooks/exercise_bike.wav"), seed=seed)


def talk_vctk() -> Talk:
    rtvc = "CorentinJ/Real-Time-Voice-Cloning"
    p240 = utterance("vctk-p240", snapshot(rtvc, "samples/p240_00000.mp3"), speaker="VCTK p240")
    p260 = utterance("vctk-p260", snapshot(rtvc, "samples/p260_00000.mp3"), speaker="VCTK p260")
    return compose("vctk-accents", [
        FalseStart(p240, 0.8), Pause(0.6), Say(p240), Pause(1.5), Take(p260), Pause(0.8),
        Say(p260)], Room(), seed=14)


def talk_arctic(room: Room | None = None, seed: int = 15, suffix: str = "") -> Talk:
    repo, d = "LCAV/pyroomacoustics", "examples/input_samples/cmu_arctic_us_"
    aew = [utterance(f"aew-{k}", snapshot(repo, f"{d}aew_{k}.wav"), speaker="ARCTIC aew (US M)")
           for k in ("a0001", "a0002", "a0003")]
    axb = [utterance(f"axb-{k}", snapshot(repo, f"{d}axb_{k}.wav"),
                     speaker="ARCTIC axb (Indian F)") for k in ("a0004", "a0005", "a0006")]
    return compose("arctic-2spk" + suffix, [
        Say(aew[0]), Pause(1.0), Take(aew[1]), Pause(0.6), Say(aew[1]), Pause(1.4),
        FalseStart(aew[2], 1.0), Pause(0.5), Say(aew[2]), Pause(1.9), FalseStart(axb[0], 0.6),
        Pause(0.6), Say(axb[0]), Pause(1.2), Say(axb[1]), Pause(0.8), FalseStart(axb[2], 1.3),
        Pause(0.7), Say(axb[2])], room or Room("pink", snr_db=25, hum_hz=60, hum_below_db=18),
        seed=seed)


def _ami_phrases() -> list[Utterance]:
    """AMI 02's phrases: speech only inside its speaker turns, near the talker's level."""
    turns = _index()["02_ami-meeting-2spk-male.wav"]["speaker_turns"]
    return phrases("ami02", VOICES / "02_ami-meeting-2spk-male.wav",
                   speaker="AMI MEE009/MEE012 (M)", style="spontaneous",
                   turns=[(float(s), float(e)) for s, e, _ in turns],  # type: ignore[union-attr]
                   core_below_peak=15.0)


def talk_ami(room: Room | None = None, seed: int = 16, suffix: str = "") -> Talk:
    return _phrase_talk("ami-meeting" + suffix, _ami_phrases(), room or Room(), seed=seed)


def talk_jfk() -> Talk:
    ph = phrases("jfk", snapshot("SYSTRAN/faster-whisper", "tests/data/jfk.flac"),
                 speaker="J. F. Kennedy (M)", style="spontaneous", min_len=1.2)
    return _phrase_talk("jfk-address", ph, Room("pink", snr_db=30, hum_hz=50), seed=17)


def talk_lyra() -> Talk:
    m = shared("18_lyra-sample1-male-48k.wav", "Lyra sample 1 (M)", "spontaneous")
    f = shared("19_lyra-sample2-female-48k.wav", "Lyra sample 2 (F)", "spontaneous")
    c = shared("04_cards-command-male.wav", "pocketsphinx cards (M)")
    return compose("lyra-conversational", [
        Say(m), Pause(1.2), FalseStart(f, 0.5), Pause(0.6), Say(f), Pause(1.6), Take(c),
        Pause(0.8), Say(c)], Room("rumble", snr_db=24), seed=18)


FULL: list[Callable[[], Talk]] = [
    talk_librivox, talk_librispeech_alif,
    lambda: talk_librosa("198-209-0000.hq.ogg", "LibriSpeech 198 (F)", Room(), 19),
    lambda: talk_librosa("5703-47212-0000.hq.ogg", "LibriSpeech 5703 (M)",
                         Room("pink", snr_db=20, hum_hz=60), 20),
    lambda: talk_librosa("3436-172162-0000.hq.ogg", "LibriSpeech 3436 (M)",
                         _noise("examples/input_samples/doing_the_dishes.wav"), 21),
    talk_rtvc, talk_vctk, talk_arctic, talk_ami, talk_jfk, talk_lyra,
    # The same speech in another room (other fragment tempos, gains and tone loops).
    lambda: talk_librivox(Room("pink", snr_db=22, hum_hz=60), 31, "-hum"),
    lambda: talk_librispeech_alif(Room(), 32, "-clean"),
    lambda: talk_arctic(_noise("notebooks/exercise_bike.wav"), 33, "-room"),
    lambda: talk_rtvc(Room("pink", snr_db=24, hum_hz=50), 34, "-hum"),
    lambda: talk_ami(Room("rumble", snr_db=22), 35, "-rumble"),
]


def build(which: str = "full") -> tuple[list[Talk], list[str]]:
    """The talks of a set, and notes on what could not be built (a snapshot missing)."""
    talks, notes = ci_talks(), []
    if which == "full":
        for make in FULL:
            try:
                talks.append(make())
            except Missing as e:
                notes.append(f"skipped a talk: {e}")
    return talks, notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=["ci", "full"], default="full")
    ap.add_argument("--write", type=Path, help="write each talk's WAV and truth JSON here")
    args = ap.parse_args()
    talks, notes = build(args.set)
    for n in notes:
        print(f"note: {n}")
    total = 0.0
    for t in talks:
        tr = t.truth
        total += tr.duration
        long = sum(1 for a, b in tr.pauses if b - a >= 0.75)
        print(f"{t.name:<24}{tr.duration:6.1f} s  {t.style:<18}{t.room.label:<28}"
              f"false starts {len(tr.false_starts)}, takes {len(tr.takes)}, pauses >= 0.75 s "
              f"{long}, kept words {len(tr.kept_words)}  [{'; '.join(t.speakers)}]")
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            t.write(args.write / f"{t.name}.wav")
            (args.write / f"{t.name}.truth.json").write_text(json.dumps(tr.to_json(), indent=1))
    print(f"{len(talks)} talks, {total:.0f} s")


if __name__ == "__main__":
    main()

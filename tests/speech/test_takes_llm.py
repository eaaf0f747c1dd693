"""The LLM take detector against a loopback fake of the OpenAI API (real ``openai`` client)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

pytest.importorskip("openai")

from sapari_server.speech.takes import TakeDetectionError  # noqa: E402
from sapari_server.speech.takes_llm import LLMTakeDetector, chunks  # noqa: E402

from .fake_openai import (  # noqa: E402
    FakeOpenAI,
    Recorded,
    chat_completion,
    error_reply,
    rate_limited,
    server_error,
    slow,
)
from .wordlists import words_of  # noqa: E402

TEXT = "So the first thing... <0.6> So the first thing you want is power. Um, it is easy."


WORDS = words_of(TEXT)
GOOD = {
    "findings": [
        {"first_word": 0, "last_word": 3, "kind": "false_start", "reason": "abandoned, redone"},
        {"first_word": 11, "last_word": 11, "kind": "filler", "reason": "um"},
    ]
}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    # One server per module: stopping one costs half a second (serve_forever's poll).
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    server.chat.clear()
    server.requests.clear()
    return server


def detector(fake: FakeOpenAI, **kw: object) -> LLMTakeDetector:
    opts: dict = {"timeout": 5.0, "max_retries": 2} | kw
    return LLMTakeDetector(model="gpt-4o-mini", api_key=fake.api_key, base_url=fake.url, **opts)


def spans(found: list) -> list[tuple[int, int, str]]:
    return [(f.first_word, f.last_word, f.kind) for f in found]


def test_good_answer_and_what_was_asked(fake: FakeOpenAI) -> None:
    fake.chat.append(chat_completion(json.dumps(GOOD)))
    found = detector(fake).detect(WORDS)
    assert spans(found) == [(0, 3, "false_start"), (11, 11, "filler")]
    assert (found[0].start, found[0].end) == (WORDS[0].start, WORDS[3].end)
    assert found[0].reason == "abandoned, redone"
    (req,) = fake.requests_to("/chat/completions")
    assert req.json is not None
    assert req.json["response_format"]["type"] == "json_schema"
    prompt = req.json["messages"][-1]["content"]
    assert prompt.startswith("[0] So [1] the [2] first [3] thing...")
    assert "<pause 0.6s> [4] So" in prompt


def test_falls_back_to_json_object_when_json_schema_is_refused(fake: FakeOpenAI) -> None:
    fake.chat.append(error_reply(400, "response_format json_schema is not supported"))
    fake.chat.append(chat_completion(json.dumps(GOOD)))
    fake.chat.append(chat_completion(json.dumps(GOOD)))
    det = detector(fake)
    assert len(det.detect(WORDS)) == 2
    assert len(det.detect(WORDS)) == 2  # remembered: no second refusal
    kinds = [r.json["response_format"]["type"] for r in fake.requests_to("/chat/completions")]  # type: ignore[index]
    assert kinds == ["json_schema", "json_object", "json_object"]


def test_rate_limited_then_success(fake: FakeOpenAI) -> None:
    fake.chat.append(rate_limited(0.05))
    fake.chat.append(chat_completion(json.dumps(GOOD)))
    assert len(detector(fake).detect(WORDS)) == 2
    assert [r.status for r in fake.requests_to("/chat/completions")] == [429, 200]


def test_server_errors_become_a_readable_error(fake: FakeOpenAI) -> None:
    fake.chat.extend([server_error(500), server_error(503)])
    with pytest.raises(TakeDetectionError, match=r"HTTP 503 after 1 retries"):
        detector(fake, max_retries=1).detect(WORDS)
    fake.chat.extend([server_error(500), chat_completion(json.dumps(GOOD))])
    assert len(detector(fake, max_retries=1).detect(WORDS)) == 2


def test_timeout(fake: FakeOpenAI) -> None:
    fake.chat.append(slow(3.0, chat_completion(json.dumps(GOOD))))
    with pytest.raises(TakeDetectionError, match="did not answer within 0.3s"):
        detector(fake, timeout=0.3, max_retries=0).detect(WORDS)


def test_malformed_json_is_asked_again_then_refused(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.chat.extend([chat_completion('{"findings": [{"first_'), chat_completion(json.dumps(GOOD))])
    assert len(detector(fake).detect(WORDS)) == 2
    fake.chat.extend([chat_completion("I think word 3 is a false start."), chat_completion("{}")])
    with pytest.raises(TakeDetectionError, match="no usable answer"):
        detector(fake).detect(WORDS)


def test_invalid_items_are_dropped_and_logged(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    answer = {
        "findings": [
            {"first_word": 0, "last_word": 3, "kind": "false_start", "reason": "ok"},
            {"first_word": 12, "last_word": 99, "kind": "aside", "reason": "past the end"},
            {"first_word": -3, "last_word": 1, "kind": "filler", "reason": "negative"},
            {"first_word": 9, "last_word": 7, "kind": "filler", "reason": "reversed"},
            {"first_word": "5", "last_word": 6, "kind": "stutter", "reason": "string index"},
            {"first_word": 5, "last_word": 6, "kind": "mumble", "reason": "unknown kind"},
            "not an object",
        ]
    }
    fake.chat.append(chat_completion(json.dumps(answer)))
    with caplog.at_level(logging.WARNING):
        found = detector(fake).detect(WORDS)
    assert spans(found) == [(0, 3, "false_start")]
    assert caplog.text.count("LLM take finding dropped") == 6


def test_deleting_the_only_take_of_a_sentence_is_dropped(
    fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    answer = {
        "findings": [
            # Both takes: the final one must survive.
            {"first_word": 0, "last_word": 3, "kind": "false_start", "reason": "a"},
            {"first_word": 4, "last_word": 10, "kind": "repeated_take", "reason": "b"},
            # "Um, it is easy." has no retake: its content may not go.
            {"first_word": 11, "last_word": 14, "kind": "aside", "reason": "c"},
        ]
    }
    fake.chat.append(chat_completion(json.dumps(answer)))
    with caplog.at_level(logging.WARNING):
        found = detector(fake).detect(WORDS)
    assert spans(found) == [(0, 3, "false_start")]
    assert "only complete take" in caplog.text


def test_long_transcripts_go_in_overlapping_chunks(fake: FakeOpenAI) -> None:
    text = " ".join(f"Sentence {n} is here now." for n in range(12))
    text += " So the plan... So the plan is good."
    words = words_of(text)
    ranges = chunks(words, 16, 1)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(words) - 1
    assert all(b[0] <= a[1] for a, b in zip(ranges, ranges[1:], strict=False))  # overlap

    def answer(rec: Recorded) -> dict:
        prompt = rec.json["messages"][-1]["content"]  # type: ignore[index]
        hit = f"[{len(words) - 8}] So" in prompt and f"[{len(words) - 1}]" in prompt
        f = [
            {
                "first_word": len(words) - 8,
                "last_word": len(words) - 6,
                "kind": "false_start",
                "reason": "r",
            }
        ]
        return chat_completion(json.dumps({"findings": f if hit else []}))

    fake.chat.extend([answer] * len(ranges))
    found = detector(fake, chunk_words=16, overlap_sentences=1).detect(words)
    assert len(fake.requests_to("/chat/completions")) == len(ranges) > 1
    assert spans(found) == [(len(words) - 8, len(words) - 6, "false_start")]


def test_wordless_speech_is_added_from_the_audio(fake: FakeOpenAI) -> None:
    words = words_of("Hello there. <1.2> So it goes.")
    fake.chat.append(chat_completion('{"findings": []}'))
    found = detector(fake).detect(words, voiced=[(0.0, 0.6), (0.85, 1.3), (1.8, 2.7)])
    assert [(f.has_words, f.first_word, f.kind) for f in found] == [(False, 2, "false_start")]

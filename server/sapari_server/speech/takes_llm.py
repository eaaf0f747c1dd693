"""Judging takes with an LLM through the ``openai`` client (OpenAI, DeepSeek, any compatible
base_url).

The model sees the transcript as numbered words with pause markers ("[12] So [13] the
<pause 0.8s> [14] So ...") and answers JSON ``{"findings": [{"first_word", "last_word",
"kind", "reason"}]}``. It asks for json_schema structured output first and falls back to
``{"type": "json_object"}`` once a server refuses it (DeepSeek and most local servers).
Every item is parsed on its own with pydantic, so one bad item costs only itself; then
``validate_findings`` drops anything out of range or that would remove the last take of a
sentence. Transport errors are retried by the client (``max_retries``, with backoff and
Retry-After); an answer that is not JSON at all is asked for again once; when nothing usable
comes back a ``TakeDetectionError`` says what the endpoint did.

Long transcripts go in chunks of whole sentences that overlap by a few sentences (a retake
may sit just past a chunk edge); findings from overlapping chunks merge in validation.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai
from pydantic import BaseModel, Field, ValidationError

from .takes import (
    Kind,
    TakeDetectionError,
    TakeFinding,
    sentence_spans,
    unworded_speech,
    validate_findings,
)
from .types import Word

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

CHUNK_WORDS = 700  # words per request: well inside any context window, answers stay short
OVERLAP_SENTENCES = 3
PAUSE_MARK = 0.3  # gaps at least this long are shown to the model
ANSWER_ATTEMPTS = 2  # asks per chunk when the answer is not usable JSON

SYSTEM_PROMPT = """\
You edit transcripts of talking-head videos. You get the words of a recording, each with
its number in brackets, and <pause Ns> markers where the speaker was silent. Find the parts
an editor would cut:
- false_start: the speaker starts a sentence, abandons it, and starts again (cut the
  abandoned words, keep the retake).
- repeated_take: a whole sentence said again because the first take was flubbed (cut the
  earlier take, keep the last one).
- filler: um, uh, er, erm, hmm.
- stutter: a word repeated at once ("I I I think": cut all but the last).
- aside: a remark to the camera person or self-correction that is not content
  ("sorry, let me start again").
Rules: never cut the last complete take of a sentence; do not cut intentional repetition
(emphasis such as "very very", a summary that repeats an earlier point); when unsure, leave
it. Answer only JSON: {"findings": [{"first_word": <int>, "last_word": <int>, "kind":
"<kind>", "reason": "<one short line>"}]} with inclusive word numbers. No findings:
{"findings": []}."""

_JSON_SCHEMA: dict[str, Any] = {
    "name": "take_findings",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["findings"],
        "properties": {
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["first_word", "last_word", "kind", "reason"],
                    "properties": {
                        "first_word": {"type": "integer"},
                        "last_word": {"type": "integer"},
                        "kind": {
                            "type": "string",
                            "enum": ["false_start", "repeated_take", "filler", "aside", "stutter"],
                        },
                        "reason": {"type": "string"},
                    },
                },
            }
        },
    },
}


class _Item(BaseModel):
    first_word: int = Field(strict=True)
    last_word: int = Field(strict=True)
    kind: Kind
    reason: str = ""
    confidence: float = Field(default=0.8, ge=0.0, le=1.0)


class _UnusableAnswer(ValueError):
    """The model's answer has no findings list at all (not one bad item: the whole of it)."""


def parse_answer(text: str | None, lo: int, hi: int) -> list[_Item]:
    """Items of an answer; bad items and items outside words lo..hi are dropped and logged."""
    if not text:
        raise _UnusableAnswer("empty answer")
    body = text.strip()
    if body.startswith("```"):  # some servers wrap JSON in a Markdown fence despite the ask
        body = body.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise _UnusableAnswer(f"not JSON ({exc.msg} at char {exc.pos})") from exc
    raw = (
        data.get("findings") if isinstance(data, dict) else data if isinstance(data, list) else None
    )
    if not isinstance(raw, list):
        raise _UnusableAnswer('no "findings" list in the answer')
    items: list[_Item] = []
    for entry in raw:
        try:
            item = _Item.model_validate(entry)
        except ValidationError as exc:
            logger.warning("LLM take finding dropped (%s): %r", exc.errors()[0]["msg"], entry)
            continue
        if not (lo <= item.first_word <= item.last_word <= hi):
            logger.warning(
                "LLM take finding dropped: words %d..%d are outside %d..%d",
                item.first_word, item.last_word, lo, hi,
            )  # fmt: skip
            continue
        items.append(item)
    return items


def render_words(words: list[Word], lo: int, hi: int, pauses: list[tuple[float, float]]) -> str:
    """Words lo..hi as "[i] word" with <pause Ns> markers, a line per sentence."""
    parts: list[str] = []
    for i in range(lo, hi + 1):
        if i > lo:
            gap = words[i].start - words[i - 1].end
            mids = (
                (words[i - 1].start + words[i - 1].end) / 2,
                (words[i].start + words[i].end) / 2,
            )
            listed = [b - a for a, b in pauses if mids[0] <= a and b <= mids[1]]
            gap = max([gap, *listed])
            if gap >= PAUSE_MARK:
                parts.append(f"<pause {gap:.1f}s>")
        parts.append(f"[{i}] {words[i].word.strip()}")
        if i < hi and words[i].word.strip().endswith((".", "?", "!", "...", "…", "-", "—")):
            parts.append("\n")
    return " ".join(parts).replace(" \n ", "\n")


def chunks(words: list[Word], chunk_words: int, overlap: int) -> list[tuple[int, int]]:
    """Inclusive word ranges of whole sentences, about chunk_words each, overlapping."""
    spans = sentence_spans(words)
    out: list[tuple[int, int]] = []
    k = 0
    while k < len(spans):
        j = k
        while j + 1 < len(spans) and spans[j + 1][1] - spans[k][0] + 1 <= chunk_words:
            j += 1
        out.append((spans[k][0], spans[j][1]))
        if j == len(spans) - 1:
            break
        k = max(k + 1, j + 1 - overlap)
    return out


@dataclass
class LLMTakeDetector:
    model: str
    api_key: str
    base_url: str | None = None
    timeout: float = 120.0
    max_retries: int = 4
    chunk_words: int = CHUNK_WORDS
    overlap_sentences: int = OVERLAP_SENTENCES
    # "auto": json_schema, falling back to json_object when the server refuses it.
    structured: str = "auto"
    name: str = "llm"
    _client: Any = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMTakeDetector:
        return cls(
            model=settings.llm_model,
            api_key=settings.llm_api_key or settings.openai_api_key,
            base_url=settings.llm_base_url or settings.openai_base_url or None,
            timeout=settings.openai_timeout,
            max_retries=settings.openai_max_retries,
        )

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(
                api_key=self.api_key,
                base_url=self.base_url or None,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._client

    def detect(
        self,
        words: list[Word],
        *,
        pauses: list[tuple[float, float]] | None = None,
        voiced: list[tuple[float, float]] | None = None,
    ) -> list[TakeFinding]:
        if not words:
            return []
        found: list[TakeFinding] = []
        for lo, hi in chunks(words, self.chunk_words, self.overlap_sentences):
            for item in self._ask(words, lo, hi, pauses or []):
                found.append(
                    TakeFinding(
                        item.first_word,
                        item.last_word,
                        words[item.first_word].start,
                        words[item.last_word].end,
                        item.kind,
                        item.reason,
                        item.confidence,
                    )
                )
        if voiced:
            # The model cannot point at speech the transcript lacks; the audio can.
            found += unworded_speech(words, voiced, pauses)
        return validate_findings(words, found, log=logger, voiced=voiced)

    def _ask(
        self, words: list[Word], lo: int, hi: int, pauses: list[tuple[float, float]]
    ) -> list[_Item]:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": render_words(words, lo, hi, pauses)},
        ]
        problem = ""
        for _ in range(ANSWER_ATTEMPTS):
            text = self._complete(messages)
            try:
                return parse_answer(text, lo, hi)
            except _UnusableAnswer as exc:
                problem = str(exc)
                logger.warning(
                    "LLM %s gave an unusable answer (%s); asking again", self.model, problem
                )
        raise TakeDetectionError(
            f"The LLM {self.model!r} at {self._where()} gave no usable answer for words "
            f"{lo}..{hi} after {ANSWER_ATTEMPTS} tries ({problem}). Check that the model "
            "supports JSON output, or use take_detector 'heuristic'."
        )

    def _complete(self, messages: list[dict[str, str]]) -> str | None:
        """One completion; transport retries are the client's, errors become readable."""
        try:
            if self.structured in ("auto", "json_schema"):
                try:
                    return self._create(
                        messages, {"type": "json_schema", "json_schema": _JSON_SCHEMA}
                    )
                except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                    if self.structured == "json_schema":
                        raise
                    # The server does not do json_schema: json_object from now on.
                    logger.info(
                        "%s refused json_schema output (%s); using json_object", self._where(), exc
                    )
                    self.structured = "json_object"
            return self._create(messages, {"type": "json_object"})
        except openai.APITimeoutError as exc:
            raise TakeDetectionError(
                f"The LLM at {self._where()} did not answer within {self.timeout:g}s "
                f"({self.max_retries} retries). Raise SAPARI_OPENAI_TIMEOUT or check the endpoint."
            ) from exc
        except openai.APIConnectionError as exc:
            raise TakeDetectionError(
                f"Cannot reach the LLM at {self._where()} ({exc}). Check SAPARI_LLM_BASE_URL."
            ) from exc
        except openai.AuthenticationError as exc:
            raise TakeDetectionError(
                f"The LLM at {self._where()} refused the key (401). Check SAPARI_LLM_API_KEY."
            ) from exc
        except openai.RateLimitError as exc:
            raise TakeDetectionError(
                f"The LLM at {self._where()} kept rate-limiting (429) after "
                f"{self.max_retries} retries. Try again later or raise SAPARI_OPENAI_MAX_RETRIES."
            ) from exc
        except openai.APIStatusError as exc:
            raise TakeDetectionError(
                f"The LLM at {self._where()} answered HTTP {exc.status_code} after "
                f"{self.max_retries} retries: {_short(exc.message)}"
            ) from exc
        except ValueError as exc:  # the HTTP body itself was not JSON (a broken proxy/server)
            raise TakeDetectionError(
                f"The LLM at {self._where()} sent a response that is not valid JSON ({exc}). "
                "Check that SAPARI_LLM_BASE_URL points at an OpenAI-compatible API."
            ) from exc

    def _create(
        self, messages: list[dict[str, str]], response_format: dict[str, Any]
    ) -> str | None:
        resp = self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            response_format=response_format,  # type: ignore[arg-type]
            temperature=0,
        )
        if not resp.choices:
            return None
        return resp.choices[0].message.content

    def _where(self) -> str:
        return self.base_url or "api.openai.com"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""A local stand-in for the OpenAI HTTP API, on loopback, for tests with the real ``openai`` client.

    with FakeOpenAI() as fake:
        client = openai.OpenAI(api_key=fake.api_key, base_url=fake.url)
        fake.chat.append(chat_completion('{"takes": []}'))
        ...
        fake.requests  # everything the client sent, parsed

Endpoints:

- ``POST /v1/audio/transcriptions`` (multipart): by default answers ``verbose_json`` computed
  from the uploaded audio's content by ``burst_transcriber``: each burst of sound is a word
  named after its pitch (see ``tone_freq``), with times from the audio itself, rounded to
  10 ms like the real API. ``words`` is present only when ``timestamp_granularities[]``
  asks for ``word``.
- ``POST /v1/chat/completions`` (JSON): answers from the ``chat`` queue, one item per request.
- ``GET /v1/models``.

Scripting: ``fake.transcriptions`` and ``fake.chat`` are queues of actions consumed one per
request (transcriptions fall back to the default transcriber when their queue is empty; chat
answers a clear 400 when its queue is empty). An action is a ``Reply`` (any status, body,
headers, delay), a dict (200 JSON), for chat a str (the assistant's content), or a callable
taking the ``Recorded`` request and returning one of those. Helpers build the usual failures:
``rate_limited``, ``server_error``, ``slow``, ``malformed``. Checks made before the script:
a wrong bearer key gets 401, a model not in ``models`` gets 404 (``models=None``: any model).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import numpy as np

JSON = dict[str, Any]


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | JSON | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering: longer than the client's timeout = timeout


@dataclass
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: JSON | None = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)
    time: float = field(default_factory=time.monotonic)
    status: int = 0  # what the fake answered
    answer: Any = None  # the JSON it answered (None for non-JSON bodies)

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


Action = Reply | JSON | str | Callable[[Recorded], "Reply | JSON | str"]


# --- replies -----------------------------------------------------------------------------


def error_reply(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return Reply(status, body, dict(headers or {}))


def rate_limited(retry_after: float = 1.0) -> Reply:
    """A 429 with Retry-After (whole seconds) or retry-after-ms (fractions)."""
    headers = (
        {"Retry-After": str(int(retry_after))}
        if float(retry_after).is_integer()
        else {"retry-after-ms": str(int(retry_after * 1000))}
    )
    return error_reply(
        429, "Rate limit reached for requests", type_="requests", code="rate_limit_exceeded",
        headers=headers,
    )


def server_error(status: int = 500) -> Reply:
    return error_reply(status, "The server had an error while processing your request.", type_="server_error")


def slow(seconds: float, then: Reply | JSON | None = None) -> Callable[[Recorded], Reply]:
    """Answer only after ``seconds`` (the default answer, or ``then``)."""

    def act(rec: Recorded) -> Reply:
        return Reply(200, then if then is not None else None, delay=seconds)

    return act


def malformed(body: str = '{"text": "hello", "words": [{"word": "hel') -> Reply:
    return Reply(200, body, {"Content-Type": "application/json"})


def chat_completion(
    content: str | None = None,
    *,
    tool_calls: list[JSON] | None = None,
    model: str = "gpt-4o-mini",
    finish_reason: str = "stop",
    refusal: str | None = None,
) -> JSON:
    """A complete ``chat.completion`` object with one choice."""
    message: JSON = {"role": "assistant", "content": content, "refusal": refusal}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-fake{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


# --- the default transcriber: words from the uploaded audio itself ---------------------------

TONE_BASE = 300.0
TONE_STEP = 40.0
_RATE = 16000


def tone_freq(k: int) -> float:
    """Pitch of the tone that ``burst_transcriber`` hears as word ``f"w{k}"``."""
    return TONE_BASE + TONE_STEP * k


def decode_audio(data: bytes) -> np.ndarray:
    """Any container/codec PyAV reads, as 16 kHz mono float32."""
    with av.open(io.BytesIO(data)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=_RATE)
        parts = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in res.resample(fr)]
        parts += [f.to_ndarray().reshape(-1) for f in res.resample(None)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def find_bursts(x: np.ndarray, *, hop: int = 160, min_gap: float = 0.06) -> list[tuple[int, int]]:
    """Sample ranges of sound (10 ms frames above -35 dBFS), gaps under ``min_gap`` merged."""
    n = x.size // hop
    if n == 0:
        return []
    rms = np.sqrt(np.mean(np.square(x[: n * hop]).reshape(n, hop), axis=1))
    loud = np.concatenate(([False], rms > 10 ** (-35 / 20), [False]))
    edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
    runs = [(int(a) * hop, int(b) * hop) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] < min_gap * _RATE:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _pitch(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), n=max(x.size, 16384)))
    return float(np.argmax(spec)) * _RATE / max(x.size, 16384)


def burst_transcriber(rec: Recorded) -> Reply | JSON:
    upload = rec.files.get("file")
    if upload is None:
        return error_reply(400, "No file was uploaded.", code="missing_file")
    x = decode_audio(upload.data)
    words: list[JSON] = []
    for a, b in find_bursts(x):
        k = int(round((_pitch(x[a:b]) - TONE_BASE) / TONE_STEP))
        words.append({"word": f"w{k}", "start": round(a / _RATE, 2), "end": round(b / _RATE, 2)})
    # One segment per run of words without a pause of 0.5 s or more.
    segments: list[JSON] = []
    for w in words:
        if segments and w["start"] - segments[-1]["end"] < 0.5:
            segments[-1]["end"] = w["end"]
            segments[-1]["text"] += " " + w["word"]
        else:
            segments.append({
                "id": len(segments), "seek": 0, "start": w["start"], "end": w["end"],
                "text": w["word"], "tokens": [], "temperature": 0.0,
                "avg_logprob": -0.1 * (len(segments) % 3), "compression_ratio": 1.0,
                "no_speech_prob": 0.01,
            })
    out: JSON = {
        "task": "transcribe",
        "language": "english",
        "duration": round(x.size / _RATE, 2),
        "text": " ".join(w["word"] for w in words),
        "segments": segments,
    }
    if "word" in rec.form.get("timestamp_granularities[]", []):
        out["words"] = words
    return out


# --- the server ------------------------------------------------------------------------------


class FakeOpenAI:
    def __init__(
        self,
        *,
        api_key: str = "sk-test-fake",
        models: Iterable[str] | None = ("whisper-1", "gpt-4o-mini", "deepseek-chat"),
        transcribe: Callable[[Recorded], Reply | JSON | str] = burst_transcriber,
    ) -> None:
        self.api_key = api_key
        self.models = None if models is None else set(models)
        self.default_transcribe = transcribe
        self.transcriptions: deque[Action] = deque()
        self.chat: deque[Action] = deque()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client's pool expects

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True,
            name="fake-openai",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a scripted delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget scripts and recorded requests (one server shared by many tests)."""
        with self._lock:
            self.transcriptions.clear()
            self.chat.clear()
            self.requests.clear()

    @property
    def url(self) -> str:
        """The base_url to give the client."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def requests_to(self, path_end: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_end)]

    # request handling
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        rec = Recorded(method, path, {k.lower(): v for k, v in h.headers.items()})
        body = self._read_body(h)
        ctype = rec.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            self._parse_multipart(rec, ctype, body)
        elif body:
            try:
                rec.json = json.loads(body)
            except ValueError:
                rec.json = None
        with self._lock:
            self.requests.append(rec)
        reply = self._answer(rec)
        rec.status = reply.status
        rec.answer = reply.body if isinstance(reply.body, dict | list) else None
        if reply.delay and self._stopping.wait(reply.delay):
            return
        self._send(h, reply)

    def _answer(self, rec: Recorded) -> Reply:
        if rec.headers.get("authorization", "") != f"Bearer {self.api_key}":
            got = rec.headers.get("authorization", "").removeprefix("Bearer ")
            return error_reply(
                401,
                f"Incorrect API key provided: {got[:4]}***. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        if rec.method == "GET" and rec.path == "/v1/models":
            return Reply(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in sorted(self.models or ())
            ]})
        if rec.path == "/v1/audio/transcriptions":
            model, queue, default = rec.field("model"), self.transcriptions, self.default_transcribe
        elif rec.path == "/v1/chat/completions":
            model, queue, default = (rec.json or {}).get("model"), self.chat, None
        else:
            return error_reply(404, f"Invalid URL ({rec.method} {rec.path})")
        if self.models is not None and model not in self.models:
            return error_reply(
                404, f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        with self._lock:
            action: Action | None = queue.popleft() if queue else None
        if action is None:
            if default is None:
                return error_reply(400, "fake_openai: no scripted chat response left (append to fake.chat)")
            action = default
        return self._resolve(action, rec, default)

    def _resolve(self, action: Action, rec: Recorded, default: Callable[[Recorded], Any] | None) -> Reply:
        if callable(action):
            action = action(rec)
        if isinstance(action, Reply):
            if action.body is None and action.status == 200:
                # A delayed/empty scripted reply carries the default answer.
                inner = self._resolve(default, rec, None) if default else Reply(200, {})
                return Reply(inner.status, inner.body, {**inner.headers, **action.headers}, action.delay)
            return action
        if isinstance(action, str):
            if rec.path == "/v1/chat/completions":
                return Reply(200, chat_completion(action, model=(rec.json or {}).get("model", "gpt-4o-mini")))
            return Reply(200, action, {"Content-Type": "text/plain"})
        return Reply(200, action)

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(h.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    h.rfile.readline()
                    return bytes(out)
                out += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    @staticmethod
    def _parse_multipart(rec: Recorded, ctype: str, body: bytes) -> None:
        msg = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                rec.files[str(name)] = Upload(filename, part.get_content_type(), payload)
            else:
                rec.form.setdefault(str(name), []).append(payload.decode())

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, reply: Reply) -> None:
        headers = dict(reply.headers)
        if isinstance(reply.body, dict | list):
            data = json.dumps(reply.body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(reply.body, str):
            data = reply.body.encode()
        else:
            data = reply.body or b""
        try:
            h.send_response(reply.status)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test): nothing to tell it

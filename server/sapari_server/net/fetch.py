"""Stream a user-given URL to a local file: every hop vetted, size and type checked on the way.

Nothing here knows the database: the import job gives a URL, a byte limit and a file, and gets
the file filled or an ``ImportRefused`` with a message fit for the user.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from . import ssrf

MAX_REDIRECTS = 5
CHUNK = 1 << 16
SNIFF_BYTES = 512
USER_AGENT = "sapari-nb-import/1"
# Content types that are certainly not a recording: refused before any byte is read.
_NOT_MEDIA = re.compile(r"^(text/|image/|font/|multipart/|application/(json|xml|xhtml\+xml|"
                        r"javascript|pdf|zip|gzip|x-tar|x-www-form-urlencoded)\b)")


class ImportRefused(Exception):
    """A readable reason why the URL was not imported."""


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    size: int
    content_type: str
    sniffed: str | None  # file extension the first bytes say (".mp4", ".mkv", ...), if known
    redirects: int


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def sniff(head: bytes) -> str | None:
    """The media type the first bytes announce, as an extension; None when unknown."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return ".mov" if head[8:10] == b"qt" else ".mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm" if b"webm" in head[:64] else ".mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return ".wav"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return ".avi"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return ".aiff"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith(b"fLaC"):
        return ".flac"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return ".mp3" if not (len(head) >= 2 and head[1] & 0x06 == 0) else ".aac"
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return ".ts"
    return None


def looks_like_text(head: bytes) -> bool:
    """True for HTML, JSON, XML or plain text: an error page or an API answer, not media."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"<", b"{", b"["):
        return True
    if not head:
        return False
    printable = sum(1 for b in head if 32 <= b < 127 or b in (9, 10, 13))
    return printable / len(head) > 0.95


def _describe_text(head: bytes) -> str:
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:40].decode("utf-8", "replace")
    first = re.sub(r"\s+", " ", first).strip()
    return f"text (it starts with {first!r})"


def filename_from_url(url: str) -> str:
    """The last path segment of a URL, decoded, or "" (``/`` or no path)."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).strip()
    return re.sub(r"[\x00-\x1f/\\]", "_", name)[:200]


def _request_url(target: ssrf.Target, ip: ssrf.IPAddress) -> str:
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{target.scheme}://{host}:{target.port}{target.path}"


def _host_header(target: ssrf.Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == ssrf.DEFAULT_PORTS[target.scheme] else f"{host}:{target.port}"


def fetch_to_file(url: str, dest: Path, *, limit: int, limit_reason: str,
                  policy: ssrf.Policy, timeout: float = 30.0,
                  progress: Callable[[int, int | None], None] | None = None,
                  verify: ssl.SSLContext | bool = True) -> Fetched:
    """Download ``url`` into ``dest``; at most ``limit`` bytes (``limit_reason`` names that
    limit with its size, e.g. "the largest upload accepted (10.0 MiB)").

    Redirects are followed by hand (at most ``MAX_REDIRECTS``), each hop vetted like the
    first. ``progress(bytes_so_far, total_or_None)`` is called now and then; it may raise to
    stop the download (a cancelled job). ``verify``: TLS verification (an SSLContext
    trusting another CA, e.g. in tests); certificates are checked against the URL's name.
    """
    current = url
    with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                      follow_redirects=False, trust_env=False, verify=verify) as http:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                target = ssrf.parse(current)
                ip = ssrf.resolve(target, policy)
            except ssrf.UnsafeURL as e:
                where = "" if hop == 0 else f" (reached by a redirect from {url})"
                raise ImportRefused(f"{e}{where}") from None
            headers = {"Host": _host_header(target), "User-Agent": USER_AGENT,
                       "Accept": "video/*, audio/*, application/octet-stream;q=0.9, */*;q=0.1"}
            # TLS is checked against the name, not the IP we connect to.
            ext = {"sni_hostname": target.host} if target.scheme == "https" else {}
            try:
                with http.stream("GET", _request_url(target, ip), headers=headers,
                                 extensions=ext) as r:
                    if r.is_redirect:
                        location = r.headers.get("location", "")
                        if not location:
                            raise ImportRefused(f"{current} answered {r.status_code} without a "
                                                "Location to go to")
                        current = urljoin(current, location)
                        continue
                    return _save(r, url, current, dest, limit, limit_reason, progress, hop)
            except httpx.TimeoutException:
                raise ImportRefused(f"{current} did not answer within {timeout:.0f} s: try again "
                                    "later or check the URL") from None
            except httpx.HTTPError as e:
                raise ImportRefused(f"could not download {current}: {type(e).__name__}: {e}"
                                    ) from None
    raise ImportRefused(f"{url} redirects more than {MAX_REDIRECTS} times: give the final URL "
                        "of the file")


def _save(r: httpx.Response, url: str, current: str, dest: Path, limit: int, limit_reason: str,
          progress: Callable[[int, int | None], None] | None, redirects: int) -> Fetched:
    if r.status_code != 200:
        raise ImportRefused(f"{current} answered {r.status_code} {r.reason_phrase}: check that "
                            "the link is public and points at the file itself")
    ctype = r.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if _NOT_MEDIA.match(ctype):
        raise ImportRefused(f"{current} serves {ctype}, not a video or audio file: link to the "
                            "recording itself (not a web page about it)")
    declared = r.headers.get("content-length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > limit:
        raise ImportRefused(f"{current} is {_mib(total)}, larger than {limit_reason}")
    size = 0
    head = b""
    checked = False
    sniffed: str | None = None
    with dest.open("wb") as f:
        for chunk in r.iter_bytes(CHUNK):
            if not checked:
                # The first bytes decide, before the rest is downloaded.
                head += chunk[:SNIFF_BYTES - len(head)]
                if len(head) >= SNIFF_BYTES:
                    sniffed, checked = _check_head(current, head), True
            size += len(chunk)
            if size > limit:
                raise ImportRefused(f"{current} sent more than {limit_reason}: the download "
                                    "was stopped")
            f.write(chunk)
            if progress is not None:
                progress(size, total)
    if size == 0:
        raise ImportRefused(f"{current} sent an empty body (0 bytes): check the link")
    if not checked:
        sniffed = _check_head(current, head)
    return Fetched(url=current, size=size, content_type=ctype or "application/octet-stream",
                   sniffed=sniffed, redirects=redirects)


def _check_head(url: str, head: bytes) -> str | None:
    kind = sniff(head)
    if kind is None and looks_like_text(head):
        raise ImportRefused(f"{url} sent {_describe_text(head)}, not a video or audio file: "
                            "link to the recording itself")
    return kind

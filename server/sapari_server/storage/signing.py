"""HMAC-signed, expiring URLs scoped to one object key, one method and (for GET) one filename."""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(secret: str, method: str, key: str, expires: int, max_size: int | None = None,
         filename: str | None = None) -> str:
    # The filename is signed too: it names the download, so nobody may swap it for another.
    msg = (f"{method}\n{key}\n{expires}\n{'' if max_size is None else max_size}\n"
           f"{filename or ''}")
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


def part_scope(key: str, upload_id: str, part_number: int) -> str:
    """What a part URL is signed for: the object, its upload and one part number."""
    return f"{key}\n{upload_id}\n{part_number}"


def verify(secret: str, method: str, key: str, expires: int, signature: str,
           max_size: int | None = None, now: float | None = None,
           filename: str | None = None) -> str | None:
    """None when valid, else the reason for refusing, fit to show a client."""
    expected = sign(secret, method, key, expires, max_size, filename).encode()
    # Compare bytes: compare_digest raises on non-ASCII str, and a client chooses the
    # signature, so any text it sends must come back as a plain refusal.
    if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape")):
        return "signature does not match this object and method; ask the API for a new URL"
    if (now if now is not None else time.time()) > expires:
        return "signed URL has expired; ask the API for a new one"
    return None

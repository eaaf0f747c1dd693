"""Hand-written transcripts for the take-detection tests."""

from __future__ import annotations

from sapari_server.speech.types import Word


def words_of(text: str, step: float = 0.3) -> list[Word]:
    """Words 0.27 s long every 0.3 s; "<0.8>" inserts that many seconds of pause."""
    out: list[Word] = []
    t = 0.0
    for tok in text.split():
        if tok.startswith("<"):
            t += float(tok[1:-1])
            continue
        out.append(Word(tok, round(t, 3), round(t + step * 0.9, 3)))
        t += step
    return out

"""Multipart arithmetic shared by the API, the backends and the client: one plan per size.

The part size is a pure function of the declared size and the settings, so the presign,
the part URLs and the confirm all agree without storing anything beside the upload.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
# S3 and R2 accept at most 10 000 parts; the part size grows for files past that.
MAX_PARTS = 10_000


@dataclass(frozen=True)
class PartPlan:
    size: int
    part_size: int
    part_count: int

    def part_length(self, part_number: int) -> int:
        """Bytes of part ``part_number`` (1-based): all full but the last."""
        if not 1 <= part_number <= self.part_count:
            raise ValueError(f"part {part_number} is outside 1..{self.part_count}")
        if part_number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)

    def part_offset(self, part_number: int) -> int:
        return self.part_size * (part_number - 1)


def plan(size: int, part_size: int, min_part_size: int = 1) -> PartPlan:
    """Split ``size`` bytes into parts of ``part_size`` (at least the backend's minimum,
    rounded up to whole MiB when it must grow to stay within MAX_PARTS)."""
    if size <= 0:
        raise ValueError("a multipart upload needs at least one byte")
    ps = max(part_size, min_part_size, 1)
    if -(-size // ps) > MAX_PARTS:
        ps = -(-size // MAX_PARTS)
        ps = -(-ps // MiB) * MiB
    return PartPlan(size=size, part_size=ps, part_count=-(-size // ps))


def clean_etag(etag: str) -> str:
    """ETags travel quoted in HTTP headers and unquoted in JSON: compare them unquoted."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')

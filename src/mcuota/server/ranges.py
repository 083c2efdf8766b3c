"""HTTP byte ranges (RFC 9110 §14) as the download paths need them: one range per request.

OTA agents ask for one range at a time (the Infineon agent in 4096-byte steps), so a multi-range request
is answered with the whole file, which RFC 9110 allows; a syntactically invalid header is ignored the
same way. Only a well-formed range that starts past the end is refused (416). Pure: strings in,
numbers out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class Unsatisfiable(ValueError):
    """A well-formed range that selects no byte of the representation."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int
    """Inclusive, as in the header."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to serve from a representation of ``size`` bytes; None means "send it all"."""
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _SPEC.match(spec)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise Unsatisfiable(f"suffix range of {count} bytes of a {size}-byte file")
        return ByteRange(max(0, size - count), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise Unsatisfiable(f"range starts at byte {start}, the file has {size} bytes")
    return ByteRange(start, min(end, size - 1))


def etag_matches(if_range: str | None, etag: str) -> bool:
    """Whether an ``If-Range`` validator allows a partial response: only a strong, equal entity tag
    (a date never matches, since releases carry none)."""
    if if_range is None:
        return True
    value = if_range.strip()
    return not value.startswith("W/") and value == etag


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 prescribes for it)."""
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags

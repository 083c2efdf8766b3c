"""Firmware versions as MCUboot and the seed protocols spell them: ``major[.minor[.revision[+build]]]``.

One type serves the image header (u8 major, u8 minor, u16 revision, u32 build), the server's version
gating and the agent's INVALID_VERSION check, so "newer" means the same thing everywhere. As in
MCUboot, ordering ignores the build number unless a caller asks for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from mcuota.errors import UsageError

_VERSION_RE = re.compile(r"^(\d+)(?:\.(\d+)(?:\.(\d+)(?:\+(\d+))?)?)?$")
_LIMITS = (("major", 0xFF), ("minor", 0xFF), ("revision", 0xFFFF), ("build", 0xFFFFFFFF))


@total_ordering
@dataclass(frozen=True)
class ImageVersion:
    """A firmware version; compares by (major, minor, revision), the build number breaking no ties."""

    major: int = 0
    minor: int = 0
    revision: int = 0
    build: int = 0

    def __post_init__(self) -> None:
        for name, limit in _LIMITS:
            value = getattr(self, name)
            if not 0 <= value <= limit:
                raise UsageError(f"version {name} {value} is out of range (0..{limit})")

    @classmethod
    def parse(cls, text: str) -> ImageVersion:
        """Parse ``1``, ``1.2``, ``1.2.3`` or ``1.2.3+4``; anything else is a :class:`UsageError`."""
        match = _VERSION_RE.match(text.strip())
        if match is None:
            raise UsageError(f"invalid version {text!r}: expected major[.minor[.revision[+build]]]")
        parts = [int(group) if group is not None else 0 for group in match.groups()]
        return cls(*parts)

    @property
    def triple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.revision)

    def newer_than(self, other: ImageVersion, *, include_build: bool = False) -> bool:
        """Strictly newer; with ``include_build`` the build number decides between equal triples."""
        if include_build:
            return (*self.triple, self.build) > (*other.triple, other.build)
        return self.triple > other.triple

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, ImageVersion):
            return NotImplemented
        return self.triple < other.triple

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageVersion):
            return NotImplemented
        return self.triple == other.triple

    def __hash__(self) -> int:
        return hash(self.triple)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.revision}"
        return f"{text}+{self.build}" if self.build else text

"""What the YMODEM machines tell their caller; every call returns a :class:`Step`.

The data travels in the events (not into a file the machine opens) so that one machine serves a flash
slot, a staging file and a test's bytearray alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class FileInfo:
    """Block 0 was accepted: the sender is about to transfer ``size`` bytes (None: it did not say)."""

    name: str
    size: int | None


@dataclass(frozen=True)
class Data:
    """Bytes of the file at ``offset``, padding already removed; write them where they belong."""

    offset: int
    data: bytes


@dataclass(frozen=True)
class Progress:
    """The receiver has acknowledged ``done`` of ``total`` bytes (the sender's view)."""

    done: int
    total: int


@dataclass(frozen=True)
class Done:
    """The transfer ended cleanly; nothing more will be sent or received."""


class AbortedBy(Enum):
    LOCAL = "local"  # this side gave up (limits, protocol errors, the caller's abort())
    PEER = "peer"    # the other side sent CAN CAN


@dataclass(frozen=True)
class Aborted:
    """The transfer is over without a complete file; ``reason`` is one line for a user."""

    reason: str
    by: AbortedBy


Event = FileInfo | Data | Progress | Done | Aborted


@dataclass
class Step:
    """The outcome of feeding a machine: bytes to write to the line now, then events to handle."""

    outgoing: bytes = b""
    events: list[Event] = field(default_factory=list)

    def extend(self, other: Step) -> None:
        self.outgoing += other.outgoing
        self.events.extend(other.events)

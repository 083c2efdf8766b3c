"""Frozen copies of a flash device's state, cheap to take and to put back.

A power-cut sweep restores the same starting image thousands of times, so a snapshot is plain
immutable ``bytes`` (one memcpy to take, one slice assignment to restore) plus the small per-sector
wear list; nothing here walks bytes in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcuota.flash.part import Duration


@dataclass(frozen=True, slots=True)
class FlashSnapshot:
    """One device's contents, wear and modeled time at a moment; tied to its geometry id."""

    device: str
    geometry_id: str
    data: bytes
    wear: tuple[int, ...]
    elapsed: Duration
    ops: int

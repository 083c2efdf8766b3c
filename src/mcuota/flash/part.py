"""What a flash part is: geometry plus the physics a bootloader can trip over.

A :class:`FlashPart` is immutable data (one per preset, shared by every simulated device of that type);
the mutable contents live in :class:`~mcuota.flash.nor.NorFlash`. Keeping the rules here — erased value,
write unit, what programming over non-erased data does, endurance, timing — lets the same bootloader
code be exercised against the matrix MCUboot's simulator uses (alignment 1/2/4/8, erased 0xFF or 0x00)
by deriving variants with :meth:`FlashPart.variant`.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any, NamedTuple

from mcuota.errors import UsageError
from mcuota.flash.geometry import Geometry


class Duration(NamedTuple):
    """Modeled seconds as a (typical, maximum) pair: datasheets give both and timeouts need the max."""

    typical: float
    maximum: float

    def times(self, count: int) -> Duration:
        return Duration(self.typical * count, self.maximum * count)


ZERO_TIME = Duration(0.0, 0.0)


class OverwriteRule(StrEnum):
    """What programming a write unit that is not erased does, which differs from part to part."""

    FORBID = "forbid"
    """The controller refuses (STM32 PGERR/PGSERR): a :class:`FlashProgramError`."""
    ZERO_ONLY = "zero-only"
    """STM32F1: refused unless the new value is all-programmed (0x0000), which is how code invalidates
    a flag word in place without an erase."""
    AND = "and"
    """Cells only move towards programmed, so the result is old AND new (OR for erased 0x00): SPI NOR."""


_UNIT_NAMES = {1: "byte", 2: "half-word", 4: "word", 8: "double-word"}


def unit_name(size: int) -> str:
    """How an error message names a write unit (an STM32 user knows "half-word", not "2-byte unit")."""
    return _UNIT_NAMES.get(size, f"{size}-byte unit")


@dataclasses.dataclass(frozen=True)
class FlashPart:
    """One flash part's geometry and physics.

    ``program_time`` is the cost of programming ``program_time_unit`` bytes (the datasheet's tPROG is per
    half-word on an STM32F1, per 32-bit word at x32 parallelism on an STM32F4, per page on SPI NOR);
    ``erase_times`` maps an erase size (a sector size, an SPI block or the whole chip) to its duration.
    Sizes without an entry cost nothing, which suits ad-hoc test geometries.
    """

    name: str
    geometry: Geometry
    write_unit: int = 4
    erased: int = 0xFF
    overwrite: OverwriteRule = OverwriteRule.FORBID
    endurance: int = 10_000
    program_time: Duration = ZERO_TIME
    program_time_unit: int = 0
    erase_times: tuple[tuple[int, Duration], ...] = ()
    notes: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        unit = self.write_unit
        if unit < 1 or unit & (unit - 1):
            raise UsageError(f"{self.name}: write unit {unit} is not a power of two")
        for _, size in self.geometry.runs:
            if size % unit:
                raise UsageError(f"{self.name}: sector size {size} is not a multiple of the "
                                 f"{unit}-byte write unit")
        if self.erased not in (0x00, 0xFF):
            raise UsageError(f"{self.name}: erased value 0x{self.erased:02X} must be 0xFF or 0x00")
        if self.endurance < 1:
            raise UsageError(f"{self.name}: endurance {self.endurance} must be positive")
        if self.program_time_unit == 0:
            object.__setattr__(self, "program_time_unit", unit)
        elif self.program_time_unit < 1:
            raise UsageError(f"{self.name}: program time unit {self.program_time_unit} must be positive")

    @property
    def programmed(self) -> int:
        """The byte value of fully programmed cells (0x00 when erased is 0xFF, and vice versa)."""
        return self.erased ^ 0xFF

    @property
    def size(self) -> int:
        return self.geometry.size

    @property
    def geometry_id(self) -> str:
        """Everything that must match for saved contents to mean the same on reload."""
        return (f"{self.name}:{self.geometry.describe()}:erased=0x{self.erased:02X}:"
                f"unit={self.write_unit}:{self.overwrite.value}")

    def erase_time(self, size: int) -> Duration:
        for erase_size, duration in self.erase_times:
            if erase_size == size:
                return duration
        return ZERO_TIME

    def program_duration(self, length: int) -> Duration:
        """Modeled time to program ``length`` bytes in one call (whole timing units, rounded up)."""
        units = -(-length // self.program_time_unit)
        return self.program_time.times(units)

    def variant(self, **changes: Any) -> FlashPart:
        """The same part with some physics changed, e.g. ``variant(erased=0x00, write_unit=8)`` for the
        MCUboot-style matrix; validation runs again on the result. Timing stays per the original
        timing unit: an 8-byte write on a half-word part still costs four half-word programs."""
        return dataclasses.replace(self, **changes)

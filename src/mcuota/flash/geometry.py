"""Sector maps: where each erase unit starts and how big it is.

Real parts mix sector sizes (an STM32F4 bank is 4x16 KB, 1x64 KB, 7x128 KB), and every bootloader
layout question ("which sector holds the trailer?", "does this slot start on a sector?") reduces to a
lookup here. Lookups are bisections over a precomputed tuple so they cost the same on a 4096-sector
SPI chip as on a 12-sector STM32 bank.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from mcuota.errors import UsageError
from mcuota.flash.errors import FlashAddressError


@dataclass(frozen=True, slots=True)
class Sector:
    """One erase unit: its index on the device, absolute start address and size in bytes."""

    index: int
    start: int
    size: int

    @property
    def end(self) -> int:
        """First address after the sector (exclusive), so ``start <= a < end`` tests membership."""
        return self.start + self.size


def _size_text(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)}M"
    if size % 1024 == 0:
        return f"{size // 1024}K"
    return str(size)


@dataclass(frozen=True)
class Geometry:
    """Runs of ``(count, size)`` sectors laid end to end from ``base``."""

    runs: tuple[tuple[int, int], ...]
    base: int = 0
    sectors: tuple[Sector, ...] = field(init=False, repr=False, compare=False)
    size: int = field(init=False, repr=False, compare=False)
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _index_of_start: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        runs = tuple((int(count), int(size)) for count, size in self.runs)
        if not runs:
            raise UsageError("flash geometry needs at least one run of sectors")
        if self.base < 0:
            raise UsageError(f"flash base address 0x{self.base:X} is negative")
        sectors: list[Sector] = []
        address = self.base
        for count, size in runs:
            if count < 1 or size < 1:
                raise UsageError(f"flash geometry run {count}x{size} needs a positive count and size")
            for _ in range(count):
                sectors.append(Sector(len(sectors), address, size))
                address += size
        object.__setattr__(self, "runs", runs)
        object.__setattr__(self, "sectors", tuple(sectors))
        object.__setattr__(self, "size", address - self.base)
        object.__setattr__(self, "_starts", tuple(s.start for s in sectors))
        object.__setattr__(self, "_index_of_start", {s.start: s.index for s in sectors})

    @classmethod
    def uniform(cls, count: int, size: int, base: int = 0) -> Geometry:
        """The common case: ``count`` sectors of one size."""
        return cls(((count, size),), base)

    @classmethod
    def of(cls, runs: Iterable[tuple[int, int]], base: int = 0) -> Geometry:
        """Mixed sizes from any iterable of ``(count, size)`` runs."""
        return cls(tuple(runs), base)

    @property
    def end(self) -> int:
        """First address after the device (exclusive)."""
        return self.base + self.size

    @property
    def sector_sizes(self) -> frozenset[int]:
        """Distinct sector sizes, so a part can check it has an erase time for each."""
        return frozenset(size for _, size in self.runs)

    @property
    def min_sector_size(self) -> int:
        return min(size for _, size in self.runs)

    def describe(self) -> str:
        """A stable one-line id, e.g. ``4x16K+1x64K+7x128K@0x08000000``, used in saved flash files."""
        runs = "+".join(f"{count}x{_size_text(size)}" for count, size in self.runs)
        return f"{runs}@0x{self.base:08X}"

    def contains(self, address: int, length: int = 1) -> bool:
        return self.base <= address and address + length <= self.end and length >= 0

    def sector_at(self, address: int) -> Sector:
        """The sector holding ``address``; outside the device is a :class:`FlashAddressError`."""
        if not self.base <= address < self.end:
            raise FlashAddressError(f"address 0x{address:08X} is outside the flash "
                                    f"0x{self.base:08X}..0x{self.end - 1:08X}")
        return self.sectors[bisect_right(self._starts, address) - 1]

    def sector_starting_at(self, address: int) -> Sector:
        """The sector that starts exactly at ``address``: erases take whole sectors only."""
        index = self._index_of_start.get(address)
        if index is None:
            containing = self.sector_at(address)
            raise FlashAddressError(f"erase at 0x{address:08X} is not on a sector start (it is inside "
                                    f"sector {containing.index} at 0x{containing.start:08X}, "
                                    f"{containing.size} bytes)")
        return self.sectors[index]

    def sectors_in(self, address: int, length: int) -> tuple[Sector, ...]:
        """Sectors overlapping ``[address, address + length)``, e.g. to erase a slot before writing it."""
        if length <= 0:
            return ()
        if not self.contains(address, length):
            raise FlashAddressError(f"range 0x{address:08X}+{length} is outside the flash "
                                    f"0x{self.base:08X}..0x{self.end - 1:08X}")
        first = self.sector_at(address).index
        last = self.sector_at(address + length - 1).index
        return self.sectors[first:last + 1]

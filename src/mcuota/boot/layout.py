"""Named partitions over one or more flash devices: the map a bootloader and its application agree on.

A layout is data, validated once (partitions inside their device, sector-aligned, not overlapping), so
the same description drives the bootloader, the agent's staging writes, the sweep and ``mcuota boot
layouts``. Presets for the seed systems live in :mod:`mcuota.boot.presets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from mcuota.errors import UsageError
from mcuota.flash import FlashPart, get_part


@dataclass(frozen=True)
class FlashDevice:
    """One flash chip on the board: ``name`` as partitions refer to it, ``part`` a flash preset name.

    ``changes`` are :meth:`FlashPart.variant` overrides (erased value, write unit) so a layout can
    sweep the same chip with another alignment or erased value.
    """

    name: str
    part: str
    changes: Mapping[str, Any] = field(default_factory=dict)

    def flash_part(self) -> FlashPart:
        base = get_part(self.part)
        return base.variant(**dict(self.changes)) if self.changes else base


@dataclass(frozen=True)
class Partition:
    name: str
    device: str
    address: int
    size: int

    @property
    def end(self) -> int:
        return self.address + self.size


@dataclass(frozen=True)
class Layout:
    """A board's flash map and the bootloader strategy that runs on it.

    ``app_address`` is where the application's vector table sits when it runs (what the bootloader
    jumps to); ``sample_target`` names the shipped sample firmware linked for that address.
    ``options`` carries strategy parameters (header size, alignment, downgrade policy, …).
    """

    name: str
    description: str
    strategy: str
    cpu: str
    devices: tuple[FlashDevice, ...]
    partitions: tuple[Partition, ...]
    ram: tuple[int, int]
    app_address: int
    image_format: str
    sample_target: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def device(self, name: str) -> FlashDevice:
        for dev in self.devices:
            if dev.name == name:
                return dev
        raise UsageError(f"layout {self.name} has no flash device {name!r}")

    def partition(self, name: str) -> Partition:
        for part in self.partitions:
            if part.name == name:
                return part
        known = ", ".join(p.name for p in self.partitions)
        raise UsageError(f"layout {self.name} has no partition {name!r} (it has {known})")

    def has_partition(self, name: str) -> bool:
        return any(p.name == name for p in self.partitions)

    def validate(self) -> None:
        """Raise :class:`UsageError` naming the first partition that is outside, unaligned or overlapping."""
        parts = {dev.name: dev.flash_part() for dev in self.devices}
        if len(parts) != len(self.devices):
            raise UsageError(f"layout {self.name}: two flash devices share a name")
        for part in self.partitions:
            if part.device not in parts:
                raise UsageError(f"layout {self.name}: partition {part.name} is on unknown device "
                                 f"{part.device}")
            geometry = parts[part.device].geometry
            if part.size <= 0:
                raise UsageError(f"layout {self.name}: partition {part.name} has size {part.size}")
            if part.address < geometry.base or part.end > geometry.base + geometry.size:
                raise UsageError(
                    f"layout {self.name}: partition {part.name} 0x{part.address:08x}..0x{part.end:08x} "
                    f"is outside {part.device} "
                    f"(0x{geometry.base:08x}..0x{geometry.base + geometry.size:08x})")
            starts = {s.start for s in geometry.sectors} | {geometry.base + geometry.size}
            if part.address not in starts or part.end not in starts:
                raise UsageError(
                    f"layout {self.name}: partition {part.name} 0x{part.address:08x}..0x{part.end:08x} "
                    f"does not start and end on {part.device} sector boundaries")
        ordered = sorted(self.partitions, key=lambda p: (p.device, p.address))
        for first, second in pairwise(ordered):
            if first.device == second.device and second.address < first.end:
                raise UsageError(f"layout {self.name}: partitions {first.name} and {second.name} overlap "
                                 f"at 0x{second.address:08x}")

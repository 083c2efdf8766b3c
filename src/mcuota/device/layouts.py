"""A bootloader layout as a simulated device ships it: the preset plus the OTA agent's journal partition.

The agent keeps its download journal in flash (:mod:`mcuota.agent.storage`), so a device needs a few KB
its bootloader never touches. The presets describe the seed systems' maps exactly and leave no such
room on the 64 KB STM32F103C8, so a device built on one of those gets the 128 KB F103CB (same pages,
same timing: what GoKit-class boards actually carry) and the journal right after the last partition.
Elsewhere the journal takes the first free, sector-aligned space after the partitions of a device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from mcuota.boot.layout import FlashDevice, Layout, Partition
from mcuota.boot.presets import get_layout
from mcuota.errors import UsageError

JOURNAL = "agent"
JOURNAL_MIN = 4 * 1024
_LARGER_PART = {"stm32f103c8": "stm32f103cb"}


def device_layout(name: str, *, keys: Sequence[str] = ()) -> Layout:
    """Preset ``name`` with an ``agent`` journal partition; ``keys`` (PEM) are the keys an MCUboot
    bootloader trusts (its development key when none are given)."""
    layout = get_layout(name)
    if keys and layout.image_format == "mcuboot":
        layout = dataclasses.replace(layout, options={**layout.options, "keys": tuple(keys)})
    if any(p.name == JOURNAL for p in layout.partitions):
        return layout
    for attempt in (layout, _larger(layout)):
        if attempt is None:
            continue
        journal = _free_space(attempt)
        if journal is not None:
            return dataclasses.replace(attempt, partitions=(*attempt.partitions, journal))
    raise UsageError(f"layout {name} leaves no room for the OTA agent's journal ({JOURNAL_MIN} bytes)")


def _larger(layout: Layout) -> Layout | None:
    devices = tuple(dataclasses.replace(d, part=_LARGER_PART.get(d.part, d.part)) for d in layout.devices)
    return dataclasses.replace(layout, devices=devices) if devices != layout.devices else None


def _free_space(layout: Layout) -> Partition | None:
    for device in layout.devices:
        found = _after_partitions(layout, device)
        if found is not None:
            return found
    return None


def _after_partitions(layout: Layout, device: FlashDevice) -> Partition | None:
    geometry = device.flash_part().geometry
    ends = [p.end for p in layout.partitions if p.device == device.name]
    address = max(ends) if ends else geometry.base
    while geometry.contains(address):
        sector = geometry.sector_at(address)
        if sector.start != address:
            address = sector.end
            continue
        size = 0
        while size < JOURNAL_MIN and geometry.contains(address + size):
            size += geometry.sector_at(address + size).size
        if size >= JOURNAL_MIN:
            return Partition(JOURNAL, device.name, address, size)
        return None
    return None

"""Where the slots are in logical sectors, and what a layout's options ask of the MCUboot strategies.

Swapping moves whole erase units between slots, so every slot taking part is cut into *logical*
sectors: the least common multiple of the physical sector sizes of all of them. On most boards that
is simply the sector size; on a PSoC 6 with its secondary slot in a W25Q it is 4 KB (eight 512-byte
rows of the internal flash to one SPI sector), which is also what MCUboot's Cypress port has to
configure. A layout whose slots cannot be tiled that way is refused when the strategy is made, with
the address that does not line up.

The trailer is described once by :class:`~mcuota.image.mcuboot.TrailerLayout`; each slot gets its own
(same ``align`` and ``max_sectors``, its own flash's erased value), as bootutil reads each flash area
with that area's erased value.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import lcm
from typing import Any

from mcuota.boot.layout import Layout, Partition
from mcuota.errors import UsageError
from mcuota.image.mcuboot import TrailerLayout

DOWNGRADE_MODES = ("off", "version", "security-counter")
SIGNATURE_TYPES = ("ed25519", "ecdsa-p256", "rsa-2048", "rsa-3072", "none")
_VALID_ALIGNS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class SlotGeometry:
    """One slot (primary, secondary or scratch) cut into logical sectors of ``sector`` bytes."""

    name: str
    device: str
    address: int
    size: int
    sector: int
    erased: int
    trailer: TrailerLayout

    @property
    def count(self) -> int:
        return self.size // self.sector

    @property
    def end(self) -> int:
        return self.address + self.size

    def sector_address(self, index: int) -> int:
        return self.address + index * self.sector

    @property
    def trailer_offset(self) -> int:
        """Offset in the slot where the trailer starts: data must end at or before it."""
        return self.trailer.offset

    @property
    def first_trailer_sector(self) -> int:
        """Index of the first logical sector holding part of the trailer."""
        return self.trailer.offset // self.sector

    @property
    def trailer_sectors(self) -> range:
        return range(self.first_trailer_sector, self.count)

    def sectors_covering(self, offset: int, length: int) -> range:
        """Logical sectors overlapping ``[offset, offset + length)`` of the slot."""
        if length <= 0:
            return range(0)
        return range(offset // self.sector, (offset + length - 1) // self.sector + 1)


@dataclass(frozen=True)
class Options:
    """The layout options the strategies read (``Layout.options``), checked once.

    ``downgrade`` is ``off``, ``version`` or ``security-counter``; ``signature`` names the key type the
    bootloader trusts (``none``: hash check only). ``copy_chunk`` is the bootloader's copy buffer (1 KB
    as in bootutil), ``stage_chunk`` the agent's write size when it stages an update.
    """

    header_size: int
    align: int
    max_sectors: int
    downgrade: str
    signature: str
    copy_chunk: int
    stage_chunk: int
    validate_primary: bool
    check_vectors: bool
    keys: tuple[Any, ...]


def _downgrade(value: Any, default: str) -> str:
    if value is None:
        return default
    if value is True:
        return "version"
    if value is False:
        return "off"
    text = str(value).replace("_", "-").lower()
    if text not in DOWNGRADE_MODES:
        raise UsageError(f"downgrade_prevention {value!r} is not one of true, false, "
                         f"{', '.join(DOWNGRADE_MODES)}")
    return text


def parse_options(layout: Layout, write_units: list[int], *, downgrade_default: str) -> Options:
    opts = layout.options
    header_size = int(opts.get("header_size", 0x200))
    align = int(opts.get("align", max(write_units)))
    if align not in _VALID_ALIGNS:
        raise UsageError(f"layout {layout.name}: align {align} is not one of "
                         f"{', '.join(map(str, _VALID_ALIGNS))}")
    if align < max(write_units):
        raise UsageError(f"layout {layout.name}: align {align} is smaller than a slot's flash write unit "
                         f"({max(write_units)} bytes)")
    signature = str(opts.get("signature", "ed25519")).lower()
    if signature not in SIGNATURE_TYPES:
        raise UsageError(f"layout {layout.name}: signature {signature!r} is not one of "
                         f"{', '.join(SIGNATURE_TYPES)}")
    copy_chunk = int(opts.get("copy_chunk", 1024))
    stage_chunk = int(opts.get("stage_chunk", 4096))
    for label, chunk in (("copy_chunk", copy_chunk), ("stage_chunk", stage_chunk)):
        if chunk < align or chunk % align:
            raise UsageError(f"layout {layout.name}: {label} {chunk} must be a positive multiple of the "
                             f"alignment {align}")
    keys = opts.get("keys", ())
    return Options(
        header_size=header_size, align=align, max_sectors=int(opts.get("max_sectors", 128)),
        downgrade=_downgrade(opts.get("downgrade_prevention"), downgrade_default), signature=signature,
        copy_chunk=copy_chunk, stage_chunk=stage_chunk,
        validate_primary=bool(opts.get("validate_primary", True)),
        check_vectors=bool(opts.get("check_vectors", True)),
        keys=tuple(keys) if isinstance(keys, list | tuple) else (keys,),
    )


def logical_sector(layout: Layout, partitions: list[Partition]) -> int:
    """The smallest erase unit every partition can be cut into on physical sector boundaries."""
    size = 1
    for part in partitions:
        geometry = layout.device(part.device).flash_part().geometry
        for sector in geometry.sectors_in(part.address, part.size):
            size = lcm(size, sector.size)
    for part in partitions:
        geometry = layout.device(part.device).flash_part().geometry
        starts = {s.start for s in geometry.sectors_in(part.address, part.size)}
        if part.size % size:
            raise UsageError(f"layout {layout.name}: partition {part.name} ({part.size} bytes) is not a "
                             f"whole number of {size}-byte logical sectors")
        for address in range(part.address, part.end, size):
            if address not in starts:
                raise UsageError(f"layout {layout.name}: partition {part.name} cannot be cut into "
                                 f"{size}-byte sectors: 0x{address:08x} is not a sector start on "
                                 f"{part.device}")
    return size


def slot_geometry(layout: Layout, part: Partition, sector: int, options: Options, *,
                  overwrite_only: bool) -> SlotGeometry:
    flash_part = layout.device(part.device).flash_part()
    trailer = TrailerLayout(part.size, options.align, erased_val=flash_part.erased,
                            max_sectors=options.max_sectors, overwrite_only=overwrite_only)
    if trailer.size > part.size:
        raise UsageError(f"layout {layout.name}: the {trailer.size}-byte trailer does not fit partition "
                         f"{part.name} ({part.size} bytes)")
    return SlotGeometry(part.name, part.device, part.address, part.size, sector, flash_part.erased, trailer)

"""MCUboot swap-offset: the update is written from the secondary slot's second sector.

Upgrade, for each sector n from the bottom: primary[n] -> secondary[n], then secondary[n+1] ->
primary[n]; afterwards the old image sits at the start of the secondary slot. A revert runs the other
way, from the top sector down: primary[n] -> secondary[n+1], then secondary[n] -> primary[n], which
puts the rejected image back one sector in, where it was staged. Two status records per sector.

The secondary slot is one (logical) sector larger than the primary; an image whose header sits in
the secondary's first sector was uploaded to the wrong address and is refused, as bootutil does.
"""

from __future__ import annotations

from mcuota.boot.mcuboot.swap import Plan, Step, SwapStrategy
from mcuota.image.mcuboot import SwapType


class McubootSwapOffset(SwapStrategy):
    name = "mcuboot-swap-offset"
    mode = "swap-offset"
    algorithm = "offset"
    offset_row = True

    @property
    def staging_offset(self) -> int:
        return self.sector

    def secondary_offset(self, swap_type: SwapType) -> int:
        return 0 if swap_type is SwapType.REVERT else self.sector

    def plan(self, swap_type: SwapType, swap_size: int) -> Plan:
        sector = self.sector
        count = self.sectors_for(swap_size)
        steps: list[Step] = []
        if swap_type is SwapType.REVERT:
            for entry, index in enumerate(range(count - 1, -1, -1)):
                used = self.used(index, swap_size)
                above = index + 1
                steps.append(Step(2 * entry, 1, "secondary", range(above, above + 1), above * sector,
                                  "primary", index * sector, used))
                steps.append(Step(2 * entry + 1, 2, "primary", range(index, index + 1), index * sector,
                                  "secondary", index * sector, used))
        else:
            for index in range(count):
                used = self.used(index, swap_size)
                steps.append(Step(2 * index, 1, "secondary", range(index, index + 1), index * sector,
                                  "primary", index * sector, used))
                steps.append(Step(2 * index + 1, 2, "primary", range(index, index + 1), index * sector,
                                  "secondary", (index + 1) * sector, used))
        return Plan(tuple(steps))

    def fit_problem(self, swap_type: SwapType, swap_size: int) -> str | None:
        count = self.sectors_for(swap_size)
        if count > self.options.max_sectors:
            return (f"the images span {count} sectors, the swap status tracks at most "
                    f"{self.options.max_sectors}")
        if count > self.primary.first_trailer_sector:
            return (f"the images span {count} sectors; the primary slot has "
                    f"{self.primary.first_trailer_sector} below the sector holding its trailer")
        room = (self.secondary.first_trailer_sector - 1) * self.sector
        if swap_size > room:
            return (f"the images span {swap_size} bytes; from the second sector of the secondary slot only "
                    f"{room} fit below the sectors of its trailer (the request is erased before any data "
                    "moves)")
        return None

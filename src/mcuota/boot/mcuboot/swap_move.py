"""MCUboot swap-move: the primary slot keeps one spare sector, the swap needs no scratch area.

First every sector of the primary image moves up by one (from the top down), then for each sector n
from the bottom: secondary[n] -> primary[n], and primary[n+1] (the old sector n) -> secondary[n].
Status records: one per moved sector (``max_sectors`` entries), then two per swapped sector.

mcuota lets the image reach into the sector that holds the primary trailer, as long as the moved
image still ends below the trailer (MCUboot refuses that layout and keeps a whole sector for the
trailer): moving the top sector up then means erasing the primary trailer. That move is done before
the primary journal exists, while the request in the secondary slot still stands, and is recorded
in the journal when it is written; until the request is consumed a cut just starts the swap over,
which is safe because that move only wrote into the spare sector.
"""

from __future__ import annotations

from mcuota.boot.mcuboot.swap import Plan, Step, SwapStrategy
from mcuota.image.mcuboot import SwapType


class McubootSwapMove(SwapStrategy):
    name = "mcuboot-swap-move"
    mode = "swap-move"
    algorithm = "move"

    def plan(self, swap_type: SwapType, swap_size: int) -> Plan:
        sector = self.sector
        count = self.sectors_for(swap_size)
        steps: list[Step] = []
        for entry, index in enumerate(range(count, 0, -1)):
            steps.append(Step(entry, 1, "primary", range(index, index + 1), index * sector, "primary",
                              (index - 1) * sector, self.used(index - 1, swap_size)))
        base = self.options.max_sectors
        for index in range(count):
            used = self.used(index, swap_size)
            steps.append(Step(base + 2 * index, 1, "primary", range(index, index + 1), index * sector,
                              "secondary", index * sector, used))
            steps.append(Step(base + 2 * index + 1, 2, "secondary", range(index, index + 1), index * sector,
                              "primary", (index + 1) * sector, used))
        pre = 1 if count >= self.primary.first_trailer_sector else 0
        return Plan(tuple(steps), pre)

    def fit_problem(self, swap_type: SwapType, swap_size: int) -> str | None:
        count = self.sectors_for(swap_size)
        if count > self.options.max_sectors:
            return (f"the images span {count} sectors, the swap status tracks at most "
                    f"{self.options.max_sectors}")
        room = self.primary.trailer_offset - self.sector
        if swap_size > room:
            return (f"swap-move needs one free sector above the image in the primary slot: the images span "
                    f"{swap_size} bytes, at most {room} fit")
        room = self.secondary.first_trailer_sector * self.sector
        if swap_size > room:
            return (f"the images span {swap_size} bytes; the secondary slot has {room} in the sectors below "
                    "its trailer (the request is erased before any data moves)")
        return None

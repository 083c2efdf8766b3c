"""MCUboot swap-scratch: sector groups swapped from the top down through the scratch area.

For each group U (as many sectors as the scratch holds, the topmost first): secondary[U] -> scratch,
primary[U] -> secondary[U], scratch -> primary[U]; three status records per group (0x01, 0x02, 0x03).

The scratch area always carries the first journal of a swap, so neither the request in the secondary
trailer nor the revert request in the primary trailer is erased before a newer journal exists
elsewhere. When the images reach the trailer sectors, the topmost group holds both slot trailers:
its secondary data goes to the scratch area first and the scratch journal is written behind it (its
existence is step 1); step 2 erases the secondary's sectors (the request with them) and is recorded
in the scratch journal; step 3 erases the primary's, copies the data back and writes the primary
journal with all three records of the group already in it. From there the primary journal governs
and the scratch area is ordinary buffer space, erased again at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcuota.boot.layout import Layout
from mcuota.boot.mcuboot.base import Run
from mcuota.boot.mcuboot.swap import Plan, Step, SwapStrategy, Upgrade
from mcuota.boot.mcuboot.trailers import Journal, write_record
from mcuota.errors import UsageError
from mcuota.image.keys import PublicKey
from mcuota.image.mcuboot import SwapType


class McubootSwapScratch(SwapStrategy):
    name = "mcuboot-swap-scratch"
    mode = "swap-scratch"
    algorithm = "scratch"
    uses_scratch = True

    def __init__(self, layout: Layout, *, keys: Sequence[PublicKey] | None = None) -> None:
        super().__init__(layout, keys=keys)
        if self.primary.size != self.secondary.size:
            raise UsageError(f"layout {layout.name}: swap-scratch needs primary and secondary slots of one "
                             f"size ({self.primary.size} and {self.secondary.size} bytes)")
        assert self.scratch is not None
        self._scratch = self.scratch

    # -- sector groups --------------------------------------------------------------------------------
    def units(self, swap_size: int) -> tuple[list[tuple[int, int, int]], bool] | str:
        """``(first sector, sectors, data bytes)`` per group from the top, and whether the top group
        holds the trailers; or why the scratch area cannot carry the swap."""
        sector = self.sector
        per = self._scratch.size // sector
        top = self.sectors_for(swap_size) - 1
        first_trailer = self.primary.first_trailer_sector
        units: list[tuple[int, int, int]] = []
        trailer_unit = top >= first_trailer
        if trailer_unit:
            capacity = self._scratch.trailer_offset
            start = first_trailer
            if swap_size - start * sector > capacity:
                return (f"the scratch area holds {capacity} bytes of data besides its trailer, the sector(s) "
                        f"with the slot trailer hold {swap_size - start * sector}")
            while start > 0 and swap_size - (start - 1) * sector <= capacity:
                start -= 1
            units.append((start, self.primary.count - start, swap_size - start * sector))
            top = start - 1
        while top >= 0:
            start = max(0, top - per + 1)
            units.append((start, top - start + 1, min((top + 1) * sector, swap_size) - start * sector))
            top = start - 1
        return units, trailer_unit

    def plan(self, swap_type: SwapType, swap_size: int) -> Plan:
        found = self.units(swap_size)
        if isinstance(found, str):
            raise UsageError(found)
        units, trailer_unit = found
        sector = self.sector
        scratch = self._scratch
        steps: list[Step] = []
        for index, (start, count, data) in enumerate(units):
            held = range(scratch.count) if trailer_unit and index == 0 else scratch.sectors_covering(0, data)
            sectors = range(start, start + count)
            steps.append(Step(3 * index, 1, "scratch", held, 0, "secondary", start * sector, data))
            offset = start * sector
            steps.append(Step(3 * index + 1, 2, "secondary", sectors, offset, "primary", offset, data))
            steps.append(Step(3 * index + 2, 3, "primary", sectors, start * sector, "scratch", 0, data))
        return Plan(tuple(steps), 3 if trailer_unit else 0)

    def fit_problem(self, swap_type: SwapType, swap_size: int) -> str | None:
        if swap_size > self.primary.trailer_offset:
            return (f"the images span {swap_size} bytes, the slots have {self.primary.trailer_offset} before "
                    "their trailers")
        if self._scratch.size < self.sector:
            return f"the scratch area ({self._scratch.size} bytes) is smaller than a sector ({self.sector})"
        found = self.units(swap_size)
        if isinstance(found, str):
            return found
        if len(found[0]) > self.options.max_sectors:
            return (f"the swap takes {len(found[0])} scratch rounds, the swap status tracks at most "
                    f"{self.options.max_sectors}")
        return None

    # -- the scratch journal --------------------------------------------------------------------------
    def begin(self, run: Run, upgrade: Upgrade, base: int) -> None:
        swap_type, swap_size = upgrade
        run.log.append(f"Starting swap using scratch algorithm ({swap_size} bytes)")
        plan = self.plan(swap_type, swap_size)
        self.erase_sectors(run.flashes["scratch"], self._scratch, range(self._scratch.count))
        if plan.pre:
            first = plan.steps[0]
            self.copy(run, first.src, first.src_offset, "scratch", 0, length=first.length)
        self.write_side_journal(run, "scratch", swap_type, swap_size, base + 1)
        self._from_scratch(run, Upgrade(swap_type, swap_size), base + 1, plan, second_done=False)

    def resume(self, run: Run, journal: Journal) -> None:
        if journal.where != "scratch":
            super().resume(run, journal)
            return
        plan = self.plan(journal.swap_type, journal.swap_size)
        second_done = bool(plan.pre) and journal.trailer.record_written(plan.steps[1].entry)
        self._from_scratch(run, Upgrade(journal.swap_type, journal.swap_size), journal.gen, plan,
                           second_done=second_done)

    def _from_scratch(self, run: Run, upgrade: Upgrade, gen: int, plan: Plan, *, second_done: bool) -> None:
        """Carry on from the scratch journal up to the primary journal, then swap the rest."""
        swap_type, swap_size = upgrade
        if plan.pre:
            second = plan.steps[1]
            if not second_done:
                self.run_step(run, second)
                write_record(run.flashes["scratch"], self._scratch, second.entry, second.value)
            self.run_step(run, plan.steps[2])
        else:
            self.clear_secondary_trailer(run)
            self.erase_sectors(run.flashes["primary"], self.primary, self.primary.trailer_sectors)
        self.init_primary_journal(run, swap_type, swap_size, gen + 1, plan)
        self.run_plan(run, plan, plan.pre)
        self.finish(run, swap_type)

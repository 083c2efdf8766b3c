"""The swap engine the three swap strategies share: journals, the decision, resuming, finishing.

A swap is a list of :class:`Step` (erase some logical sectors of one slot, copy bytes into them from
another place), each recorded by a status record once it is complete. The algorithms differ only in
their step lists (:meth:`SwapStrategy.plan`) and in where their first journal lives; everything else is
here. The package docstring explains why the order of writes below survives torn operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from mcuota.boot.board import Board
from mcuota.boot.mcuboot.base import McubootStrategy, Run
from mcuota.boot.mcuboot.decision import swap_type_for
from mcuota.boot.mcuboot.images import locate_image
from mcuota.boot.mcuboot.trailers import (
    Journal,
    SlotTrailer,
    parse_journal,
    write_copy_done,
    write_image_ok,
    write_magic,
    write_record,
    write_swap_info,
    write_swap_size,
)
from mcuota.boot.strategy import BootResult
from mcuota.image.mcuboot import IMAGE_MAGIC, SwapType


class Step(NamedTuple):
    """Erase ``dst_sectors`` of slot ``dst`` (those not already erased), then copy ``length`` bytes from
    ``src`` at ``src_offset`` to ``dst`` at ``dst_offset``; record ``value`` at status ``entry``."""

    entry: int
    value: int
    dst: str
    dst_sectors: range
    dst_offset: int
    src: str
    src_offset: int
    length: int


class Plan(NamedTuple):
    """The steps of one swap; the first ``pre`` run before the primary journal exists and are recorded
    in it when it is written."""

    steps: tuple[Step, ...]
    pre: int = 0

    @property
    def entries(self) -> list[int]:
        return [step.entry for step in self.steps]


class Upgrade(NamedTuple):
    """A checked request: what to swap and how many bytes the larger image spans."""

    swap_type: SwapType
    swap_size: int


class SwapStrategy(McubootStrategy):
    """Common boot flow of swap-move, swap-offset and swap-scratch."""

    algorithm: ClassVar[str] = ""
    offset_row: ClassVar[bool] = False

    @property
    def can_revert(self) -> bool:
        return True

    # -- what a subclass provides --------------------------------------------------------------------
    def plan(self, swap_type: SwapType, swap_size: int) -> Plan:
        raise NotImplementedError

    def fit_problem(self, swap_type: SwapType, swap_size: int) -> str | None:
        """Why a swap of ``swap_size`` bytes cannot run on this layout, if it cannot."""
        raise NotImplementedError

    def secondary_offset(self, swap_type: SwapType) -> int:
        """Where the image to install sits in the secondary slot for a swap of ``swap_type``."""
        return 0

    # -- boot --------------------------------------------------------------------------------------------
    def boot(self, board: Board) -> BootResult:
        run = self.start(board)
        trailers = {geo.name: self.trailer(run, geo.name) for geo in self.slots}
        primary, secondary = trailers["primary"], trailers["secondary"]
        run.log.append(f"Primary slot: {primary.describe()}")
        run.log.append(f"Secondary slot: {secondary.describe()}")
        request = secondary.magic_good
        journals = self._journals(trailers)
        blocked = next((j for j in journals if j.where == "primary" and not j.finished and request), None)
        live = self._live([j for j in journals if j is not blocked])
        if live is not None:
            run.log.append(f"Resuming the {live.swap_type.name.lower()} swap journaled in the {live.where} "
                           f"slot (generation {live.gen}, {live.swap_size} bytes)")
            self.resume(run, live)
        else:
            base = max(t.gen for t in trailers.values())
            self._decide(run, primary, secondary, blocked, base)
        return self.jump(run)

    def _journals(self, trailers: dict[str, SlotTrailer]) -> list[Journal]:
        found = []
        for name, trailer in trailers.items():
            journal = parse_journal(trailer, primary=name == "primary", max_size=self.primary.size)
            if journal is not None:
                found.append(journal)
        return found

    @staticmethod
    def _live(journals: Sequence[Journal]) -> Journal | None:
        """The newest journal, if it is one still to be carried out (the primary one wins a tie)."""
        best: Journal | None = None
        for journal in journals:
            if best is None or journal.gen > best.gen:
                best = journal
        if best is None or best.finished:
            return None
        return best

    def _decide(self, run: Run, primary: SlotTrailer, secondary: SlotTrailer, blocked: Journal | None,
                base: int) -> None:
        swap = swap_type_for(primary.state, secondary.state, offset_row=self.offset_row)
        run.log.append(f"Swap type: {swap.name.lower()}")
        if swap in (SwapType.TEST, SwapType.PERM):
            if blocked is not None:
                run.log.append("The primary slot holds an unfinished swap journal but the secondary slot "
                               "still requests an update: no data was moved yet, so the swap starts over")
            checked = self._check(run, swap)
            if isinstance(checked, str):
                if blocked is not None:
                    self._abort(run)
                run.log.append(f"Image in the secondary slot is not valid: {checked}; erasing it")
                self.scramble_secondary(run)
                return
            self.begin(run, checked, base)
        elif swap is SwapType.REVERT:
            checked = self._check(run, swap)
            if isinstance(checked, str):
                run.log.append(f"Cannot revert: {checked}; keeping the running image and marking it ok, "
                               "erasing the secondary slot")
                write_image_ok(run.flashes["primary"], self.primary)
                self.scramble_secondary(run)
                return
            self.begin(run, checked, base)
        elif blocked is not None:
            self._torn_request(run, blocked)

    def _torn_request(self, run: Run, journal: Journal) -> None:
        """A standing magic that no longer reads as a request, next to a primary journal: a request the
        application writes is complete before its magic, so this one was torn while being erased, after
        the journal was committed. The journal is genuine then; carry on with it if the secondary image
        it swaps in is still intact, else drop it."""
        geo = self.secondary
        offset = self.secondary_offset(journal.swap_type)
        image = locate_image(run.flashes["secondary"], geo.address + offset, geo.trailer_offset - offset)
        problem = image if isinstance(image, str) else self.secondary_problem(run, image)[1]
        if journal.swap_type is SwapType.REVERT or problem is not None:
            self._abort(run)
            return
        run.log.append("The update request was cut while it was being consumed; carrying on with the "
                       "journaled swap")
        self.clear_secondary_trailer(run)
        self.resume(run, journal)

    def _abort(self, run: Run) -> None:
        """Drop a primary journal whose swap never got past its first erase (the old image is intact),
        before anything else changes: it must never be resumed against a different secondary."""
        geo = self.primary
        image = locate_image(run.flashes["primary"], geo.address, geo.trailer_offset)
        if not isinstance(image, str) and image.size > geo.first_trailer_sector * geo.sector:
            run.log.append("A stale swap journal shares its sector with the primary image: left in place")
            return
        run.log.append("Erasing the stale swap journal in the primary slot")
        self.erase_sectors(run.flashes["primary"], geo, geo.trailer_sectors)

    def _check(self, run: Run, swap: SwapType) -> Upgrade | str:
        geo = self.secondary
        offset = self.secondary_offset(swap)
        flash = run.flashes["secondary"]
        image = locate_image(flash, geo.address + offset, geo.trailer_offset - offset)
        if isinstance(image, str):
            return image
        if offset and swap is not SwapType.REVERT and \
                int.from_bytes(flash.read(geo.address, 4), "little") == IMAGE_MAGIC:
            return "an image header sits in the first sector of the secondary slot: wrong upload address?"
        result, problem = self.secondary_problem(run, image)
        if problem is not None or result is None:
            return problem or "not valid"
        primary_image, installed, _ = self.primary_image(run)
        if swap is not SwapType.REVERT:
            problem = self.downgrade(result, installed)
            if problem is not None:
                return problem
        size = max(image.size, 0 if primary_image is None else primary_image.size)
        swap_size = self.round_up(size)
        return self.fit_problem(swap, swap_size) or Upgrade(swap, swap_size)

    # -- running a swap ------------------------------------------------------------------------------------
    def begin(self, run: Run, upgrade: Upgrade, base: int) -> None:
        """Start a checked swap. Test and permanent swaps write the primary journal while the request
        still stands; a revert first writes a secondary journal, since its request *is* the primary
        trailer that the primary journal replaces."""
        run.log.append(f"Starting swap using {self.algorithm} algorithm ({upgrade.swap_size} bytes)")
        swap_type, swap_size = upgrade
        if swap_type is SwapType.REVERT:
            geo = self.secondary
            flash = run.flashes["secondary"]
            if not self.trailer(run, "secondary").region_erased:
                self.erase_sectors(flash, geo, geo.trailer_sectors)
            self.write_side_journal(run, "secondary", swap_type, swap_size, base + 1)
            self.from_side_journal(run, swap_type, swap_size, base + 1)
            return
        plan = self.plan(swap_type, swap_size)
        self.prepare_primary(run, plan)
        self.init_primary_journal(run, swap_type, swap_size, base + 1, plan)
        self.clear_secondary_trailer(run)
        self.run_plan(run, plan, plan.pre)
        self.finish(run, swap_type)

    def resume(self, run: Run, journal: Journal) -> None:
        if journal.where == "primary":
            plan = self.plan(journal.swap_type, journal.swap_size)
            done = journal.trailer.records_done(plan.entries)
            run.log.append(f"{done} of {len(plan.steps)} swap steps were complete")
            self.run_plan(run, plan, max(done, plan.pre))
            self.finish(run, journal.swap_type)
        else:
            self.from_side_journal(run, journal.swap_type, journal.swap_size, journal.gen)

    def from_side_journal(self, run: Run, swap_type: SwapType, swap_size: int, gen: int) -> None:
        """Carry on from a secondary journal: replace the primary trailer by the primary journal."""
        plan = self.plan(swap_type, swap_size)
        self.prepare_primary(run, plan)
        self.init_primary_journal(run, swap_type, swap_size, gen + 1, plan)
        self.run_plan(run, plan, plan.pre)
        self.finish(run, swap_type)

    def write_side_journal(self, run: Run, slot: str, swap_type: SwapType, swap_size: int, gen: int) -> None:
        """A journal in an erased secondary or scratch trailer: no magic ever, committed by copy_done."""
        geo = self._geo(slot)
        flash = run.flashes[slot]
        write_swap_size(flash, geo, swap_size, gen)
        write_swap_info(flash, geo, swap_type)
        write_copy_done(flash, geo)

    def prepare_primary(self, run: Run, plan: Plan) -> None:
        """Erase the primary trailer sectors and run the steps that write into them (swap-move's first
        move when the image reaches the trailer sector)."""
        self.erase_sectors(run.flashes["primary"], self.primary, self.primary.trailer_sectors)
        for step in plan.steps[:plan.pre]:
            self.run_step(run, step)

    def init_primary_journal(self, run: Run, swap_type: SwapType, swap_size: int, gen: int,
                             plan: Plan) -> None:
        """Size and generation, type, the records of the steps already done, and the magic last."""
        geo = self.primary
        flash = run.flashes["primary"]
        write_swap_size(flash, geo, swap_size, gen)
        write_swap_info(flash, geo, swap_type)
        for step in plan.steps[:plan.pre]:
            write_record(flash, geo, step.entry, step.value)
        write_magic(flash, geo)

    def clear_secondary_trailer(self, run: Run) -> None:
        """Consume the request (or drop a secondary journal): erase the secondary trailer sectors."""
        if not self.trailer(run, "secondary").region_erased:
            self.erase_sectors(run.flashes["secondary"], self.secondary, self.secondary.trailer_sectors)

    def run_step(self, run: Run, step: Step) -> None:
        geo = self._geo(step.dst)
        self.erase_sectors(run.flashes[step.dst], geo, step.dst_sectors)
        if step.length:
            self.copy(run, step.src, step.src_offset, step.dst, step.dst_offset, length=step.length)

    def run_plan(self, run: Run, plan: Plan, start: int) -> None:
        flash = run.flashes["primary"]
        for step in plan.steps[start:]:
            self.run_step(run, step)
            write_record(flash, self.primary, step.entry, step.value)

    def finish(self, run: Run, swap_type: SwapType) -> None:
        """All steps done: leave no journal but the primary one, then image_ok (permanent and revert)
        and copy_done, which closes the primary journal."""
        self.clear_secondary_trailer(run)
        if self.scratch is not None:
            self.erase_sectors(run.flashes["scratch"], self.scratch, range(self.scratch.count))
        geo = self.primary
        flash = run.flashes["primary"]
        trailer = self.trailer(run, "primary")
        if swap_type in (SwapType.PERM, SwapType.REVERT) and not trailer.image_ok_written:
            write_image_ok(flash, geo)
        if not trailer.copy_done_written:
            write_copy_done(flash, geo)
        run.log.append(f"Swap complete ({swap_type.name.lower()})")

    # -- helpers for the plans -------------------------------------------------------------------------------
    def used(self, index: int, swap_size: int) -> int:
        """Bytes of logical sector ``index`` that the larger image covers (0 above it)."""
        sector = self.sector
        return max(0, min(sector, swap_size - index * sector))

    def sectors_for(self, swap_size: int) -> int:
        return -(-swap_size // self.sector)

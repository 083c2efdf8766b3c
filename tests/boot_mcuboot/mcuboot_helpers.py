"""Shared helpers of the MCUboot strategy tests: boards, releases, settling, and two fault harnesses
that go beyond the generic sweep (field-level torn erases of trailer sectors, and random multi-fault
plans whose later faults may also tear an operation of the recovery).

A plain module imported by name: a conftest.py here would shadow tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mcuota.boot.board import Board
from mcuota.boot.layout import FlashDevice, Layout
from mcuota.boot.mcuboot import McubootStrategy
from mcuota.boot.presets import get_layout
from mcuota.boot.registry import strategy_for
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage
from mcuota.boot.verdict import Judge, Outcome
from mcuota.emu.machine import boot as emu_boot
from mcuota.emu.parts import part_for_sample
from mcuota.flash import FaultPlan, OpKind, PowerLoss, TornStyle
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path

MODES = ("overwrite", "swap-scratch", "swap-move", "swap-offset")
SWAP_MODES = MODES[1:]
BOARDS = ("f407", "nrf52840", "psoc6")


def layout_of(mode: str, board: str) -> Layout:
    return get_layout(f"mcuboot-{mode}-{board}")


def variant(layout: Layout, **changes: Any) -> Layout:
    """``layout`` with every flash device's physics changed (e.g. ``erased=0x00, write_unit=8``)."""
    devices = tuple(FlashDevice(d.name, d.part, {**d.changes, **changes}) for d in layout.devices)
    suffix = "-".join(f"{k}{v}" for k, v in changes.items())
    return dataclasses.replace(layout, name=f"{layout.name}-{suffix}", devices=devices)


def mcuboot(layout: Layout, **kwargs: Any) -> McubootStrategy:
    if kwargs:
        strategy = strategy_for(layout)
        return type(strategy)(layout, **kwargs)  # type: ignore[call-arg]
    strategy = strategy_for(layout)
    assert isinstance(strategy, McubootStrategy)
    return strategy


def release(strategy: McubootStrategy, version: str, *, target: str | None = None,
            signer: object | None = None) -> ReleaseImage:
    payload = sample_path(target or strategy.layout.sample_target, version, "bin").read_bytes()
    return strategy.make_release(payload, ImageVersion.parse(version), signer=signer)


def settle(strategy: McubootStrategy, board: Board, *, confirm: bool = True, max_boots: int = 12,
           judge: Judge | None = None, unconfirmed: ReleaseImage | None = None,
           log: list[str] | None = None) -> BootResult:
    """Reset until the bootloader does nothing new; the running application confirms itself when
    ``confirm`` (except ``unconfirmed``, the release that must be reverted). ``log`` collects the
    bootloader's log of every boot."""
    previous: BootResult | None = None
    for _ in range(max_boots):
        board.warm_reset()
        before = board.domain.op_count
        result = strategy.boot(board)
        if log is not None:
            log.extend(result.log)
        if result.action is BootAction.STAY:
            return result
        running = judge.running(board, result) if judge is not None else None
        if confirm and not (unconfirmed is not None and running is unconfirmed):
            strategy.confirm(board)
        if previous is not None and board.domain.op_count == before and \
                (previous.action, previous.address) == (result.action, result.address):
            return result
        previous = result
    return BootResult(BootAction.STAY, reason="boot loop")


@dataclass
class Device:
    """A board with a strategy, the releases of one update and helpers to drive it."""

    strategy: McubootStrategy
    board: Board
    old: ReleaseImage
    new: ReleaseImage
    judge: Judge = field(init=False)
    log: list[str] = field(default_factory=list)
    """The bootloader's log of every boot since the last :meth:`update` or :meth:`settle`."""

    def __post_init__(self) -> None:
        self.judge = Judge(self.strategy.layout, self.old, self.new)

    def boot(self) -> BootResult:
        self.board.warm_reset()
        return self.strategy.boot(self.board)

    def update(self, *, permanent: bool = False, revert: bool = False) -> BootResult:
        """Stage the new release and reset until settled; with ``revert`` it never confirms itself."""
        self.strategy.stage(self.board, self.new, permanent=permanent)
        return self.settle(revert=revert)

    def settle(self, *, revert: bool = False) -> BootResult:
        self.log = []
        return settle(self.strategy, self.board, judge=self.judge, unconfirmed=self.new if revert else None,
                      log=self.log)

    def outcome(self, result: BootResult) -> Outcome:
        return self.judge.judge(self.board, result).outcome

    def version_printed(self, result: BootResult) -> str | None:
        """What the emulated core prints when started where the bootloader jumped."""
        assert result.action is BootAction.JUMP
        assert result.address is not None
        flash = self.board.flashes[self.strategy.primary.device]
        image = flash.read(result.address, self.strategy.primary.end - result.address)
        run = emu_boot(image, result.address, part=part_for_sample(self.strategy.layout.sample_target))
        return run.version


def device(layout: Layout, old: str = "1.0.0", new: str = "2.0.0", *, history: str | None = None,
           target: str | None = None, **kwargs: Any) -> Device:
    """A board that leaves the factory with ``history`` (if given) and then runs ``old`` after a
    confirmed update to it, or with ``old`` installed directly; ``new`` is the release to stage."""
    strategy = mcuboot(layout, **kwargs)
    board = Board(layout)
    first = release(strategy, history or old, target=target)
    older = release(strategy, old, target=target)
    strategy.factory_install(board, first)
    settle(strategy, board)
    if history is not None:
        strategy.stage(board, older)
        settle(strategy, board)
    return Device(strategy, board, older, release(strategy, new, target=target))


def with_history(strategy: McubootStrategy, first: ReleaseImage) -> McubootStrategy:
    """The same strategy, except that ``factory_install(board, release)`` installs ``first`` and then
    updates to ``release`` (confirmed): the generic sweep then starts from a board whose trailers hold a
    finished swap, which is where torn erases of the primary trailer matter."""
    base = type(strategy)

    class Seasoned(base):  # type: ignore[valid-type,misc]
        def factory_install(self, board: Board, release: ReleaseImage) -> None:
            super().factory_install(board, first)
            settle(self, board)
            self.stage(board, release)
            settle(self, board)

    return Seasoned(strategy.layout, keys=strategy.keys)  # type: ignore[no-any-return]


# -- adversarial torn erases ---------------------------------------------------------------------------
@dataclass
class FaultReport:
    runs: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome, allowed: bool, what: str) -> None:
        self.runs += 1
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1
        if not allowed:
            self.failures.append(f"{what}: {outcome.value}")


def _allowed(outcome: Outcome, *, revert: bool, committed: bool) -> bool:
    if outcome in (Outcome.BRICKED, Outcome.WRONG):
        return False
    if revert:
        return outcome is Outcome.OLD
    return outcome is Outcome.NEW or not committed


def _trailer_fields(strategy: McubootStrategy, device_name: str, start: int, length: int
                    ) -> tuple[list[tuple[str, int, int]], int] | None:
    """Trailer fields (name, address, length) of the slot whose trailer lies in the erased range."""
    for geo in strategy.slots:
        trailer = geo.trailer
        low = geo.end - trailer.span
        if geo.device != device_name or not start <= low < start + length:
            continue
        base = geo.address
        fields = [("magic", base + trailer.magic_offset, 16), ("image_ok", base + trailer.image_ok_offset, 1),
                  ("copy_done", base + trailer.copy_done_offset, 1),
                  ("swap_info", base + trailer.swap_info_offset, 1),
                  ("swap_size", base + trailer.swap_size_offset, 4),
                  ("generation", base + trailer.swap_size_offset + 4, 4)]
        if not trailer.overwrite_only:
            records = trailer.swap_size_offset - trailer.status_offset
            fields.append(("records", base + trailer.status_offset, records))
        return fields, low
    return None


HALF_ERASED = ("magic", "image_ok", "copy_done", "generation")


def _rewinds(before: bytes, start: int, fields: list[tuple[str, int, int]], low: int, *, erased: int,
             half: int) -> Iterator[tuple[str, bytes]]:
    """Partial erases of a sector: every combination of each field kept or erased and of the data below
    the trailer kept or erased, plus ``half`` seeded combinations in which the fields of
    :data:`HALF_ERASED` may also be half erased (every other bit). A torn erase can leave any of these,
    and it rewinds a sector to any earlier state since its last erase, which these cover field by
    field."""
    whole = list(itertools.product(*[(0, 1)] * (len(fields) + 1)))
    rng = random.Random(f"rewinds/{start}/{len(before)}")
    levels = [(0, 1, 2) if name in HALF_ERASED else (0, 1) for name, _, _ in fields] + [(0, 1)]
    mixed = [tuple(rng.choice(level) for level in levels) for _ in range(half)]
    for choice in whole + mixed:
        data = bytearray(before)
        for (_, address, size), level in zip(fields, choice, strict=False):
            offset = address - start
            if level == 1:
                data[offset:offset + size] = bytes((erased,)) * size
            elif level == 2:
                for i in range(offset, offset + size):
                    data[i] = data[i] | 0xAA if erased == 0xFF else data[i] & 0x55
        if choice[-1]:
            data[:low - start] = bytes((erased,)) * (low - start)
        if data != before:
            names = [f"{name}={('kept', 'erased', 'half')[level]}" for (name, _, _), level
                     in zip(fields, choice, strict=False) if level]
            yield ", ".join(names + (["data=erased"] if choice[-1] else [])), bytes(data)


def torn_trailer_erases(dev: Device, *, permanent: bool = False, revert: bool = False, half: int = 200
                        ) -> FaultReport:
    """Replace every erase of a sector holding a trailer, in a whole update (and revert), by each of the
    field-level partial erases of :func:`_rewinds`, then power up and let the board settle."""
    strategy, board = dev.strategy, dev.board
    base = board.snapshot()
    board.domain.disarm()
    log: list[tuple[OpKind, str, int, int]] = []
    recorder = _OpLog(board, log)
    with recorder:
        dev.update(permanent=permanent, revert=revert)
    report = FaultReport()
    for op, (kind, device_name, address, length) in enumerate(log, 1):
        found = _trailer_fields(strategy, device_name, address, length) if kind is OpKind.ERASE else None
        if found is None:
            continue
        fields, low = found
        board.restore(base)
        board.domain.arm(FaultPlan.cut_before(op))
        with contextlib.suppress(PowerLoss):
            dev.update(permanent=permanent, revert=revert)
        flash = board.flashes[device_name]
        state = board.snapshot()
        before = flash.read(address, length)
        for what, partial in _rewinds(before, address, fields, low, erased=flash.erased_value, half=half):
            board.restore(state)
            flash.poke(address, partial)
            committed = bool(strategy.committed(board, dev.new))
            board.power_cycle()
            outcome = dev.outcome(dev.settle(revert=revert))
            report.add(outcome, _allowed(outcome, revert=revert, committed=committed),
                       f"op {op} (erase 0x{address:08x} on {device_name}) left {what}")
    board.restore(base)
    return report


class _OpLog:
    """Notes (kind, device, address, length) of every flash operation while active."""

    def __init__(self, board: Board, log: list[tuple[OpKind, str, int, int]]) -> None:
        self.domain = board.domain
        self.log = log
        self._start = self.domain.start_op

    def __enter__(self) -> _OpLog:
        def start_op(device: str, kind: OpKind, address: int, length: int) -> Any:
            self.log.append((kind, device, address, length))
            return self._start(device, kind, address, length)

        self.domain.start_op = start_op  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.domain.start_op


# -- random multi-fault plans ----------------------------------------------------------------------------
def random_faults(dev: Device, *, plans: int, faults: int = 3, revert: bool = False,
                  style: TornStyle = TornStyle.SCATTER, seed: int = 0) -> FaultReport:
    """``plans`` seeded plans of ``faults`` faults each (cut or torn, half and half) over the update and
    its recovery: after each loss the board powers up and boots again, and later faults of the plan can
    hit (and tear) that recovery."""
    strategy, board = dev.strategy, dev.board
    base = board.snapshot()
    board.domain.disarm()
    dev.update(revert=revert)
    total = board.domain.ops_since_arm
    report = FaultReport()
    for index in range(plans):
        board.restore(base)
        plan = FaultPlan.random(seed * 100_000 + index, within=total + total // 2, count=faults,
                                torn_share=0.5, style=style)
        board.domain.arm(plan)
        committed: bool | None = None
        result: BootResult | None = None
        try:
            result = dev.update(revert=revert)
        except PowerLoss:
            committed = bool(strategy.committed(board, dev.new))
        for _ in range(faults + 1):
            if result is not None:
                break
            try:
                board.power_cycle()
                result = dev.settle(revert=revert)
            except PowerLoss:
                continue
        assert result is not None
        outcome = dev.outcome(result)
        report.add(outcome, _allowed(outcome, revert=revert, committed=bool(committed)),
                   f"plan {plan.faults} seed {plan.seed}")
    board.restore(base)
    return report

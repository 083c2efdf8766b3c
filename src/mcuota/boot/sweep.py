"""The power-cut sweep: does an update on this layout survive a cut at every flash operation?

For any :class:`~mcuota.boot.strategy.Strategy`: factory-install the old release and boot it, then run
one clean update (stage the new release, reboot until the board settles, confirming where the system
needs it) and count its flash operations, N. Then, for every operation k in 1..N, put the board in
the state a power cut at k leaves (cut before k; with ``torn``, also k half-done, seeded), power-cycle,
and boot to completion; for a seeded sample of those, cut the power again during the recovery. Each
settled board is judged by :mod:`mcuota.boot.verdict`: runs new / runs old / bricked / wrong image
(or waits in a download mode, which is recoverable, not a brick).

"Settled" means a boot cycle (bootloader, then whatever the started application does: confirming
itself, unless the sweep tests a revert) that touched no flash and started the same thing as the
cycle before it, or a bootloader that stays. A board that never settles within ``max_boots`` is a
boot loop, counted as bricked.

Old is not always acceptable. Each update has a commit point after which only the new release may
run, and a later cut that ends in the old one is a failure (the update was silently lost). The
strategy declares it (:meth:`~mcuota.boot.strategy.Strategy.committed`, evaluated between operations
of the clean run); otherwise it is inferred from the cut points' recoveries: where they start ending
in the new release for a system that cannot revert, after the last one that ends in the old release
for one that can (an image that started but did not confirm yet is rightly rolled back). With
``revert`` the new release never confirms, so the old one must be back at the end. An update the
system refuses (stage raised, or the bootloader declined the image) must leave the old release
running after any cut. A bootloader that raises a flash error (programming over unerased cells)
counts as bricked at that point: the controller refuses and the boot goes nowhere.

Speed. A naive sweep replays the update up to op k for every k: O(N^2) strategy code. This one runs
the update once with a recording power domain that journals, for every operation, the board state
before it and the bytes the operation left; the state at a cut at k is then the factory flash plus
the journal's first k-1 results (a memcpy each), and only the recovery runs strategy code. A torn
operation is rebuilt from the journal with the flash model's own torn-operation arithmetic and seed
derivation, so a point computed here equals the same :class:`~mcuota.flash.FaultPlan` armed at the
start of a real run (``engine="rerun"`` does exactly that, and :func:`replay` runs one point that
way with the operation log on for diagnosis). Devices the recovery did not touch are not restored.
Large sweeps fork worker processes after the clean run; each inherits the settled board and the
journal and takes every n-th operation, so the report does not depend on how many there were.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

from mcuota.boot.board import Board, BoardSnapshot, BoardState
from mcuota.boot.layout import Layout
from mcuota.boot.registry import strategy_for
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.boot.verdict import OUTCOME_ORDER, EmulatedBoot, Emulator, Judge, Outcome, Verdict, emulate
from mcuota.errors import McuotaError, UsageError
from mcuota.flash import (
    FaultKind,
    FaultPlan,
    FlashError,
    FlashSnapshot,
    NorFlash,
    OpKind,
    OpRecord,
    PowerDomain,
    PowerLoss,
)
from mcuota.flash.power import TornOp
from mcuota.image.version import ImageVersion

DEFAULT_MAX_BOOTS = 12
DEFAULT_RECOVERY_SHARE = 0.1
_MAX_LOSSES = 16
_PARALLEL_FROM = 3000  # points; below this, forking costs more than it saves
Engine = Literal["journal", "rerun"]


# -- faults and results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """One sweep point: power fails at update op ``op`` (``cut`` before it, ``torn`` during it, with
    the partial state drawn from ``seed``), then again before each of ``recovery_cuts``, counted in
    operations since the board first powered up again."""

    kind: FaultKind
    op: int
    seed: int = 0
    recovery_cuts: tuple[int, ...] = ()

    def plan(self) -> FaultPlan:
        """The same faults as one plan armed when the update starts (what :func:`replay` uses)."""
        later = tuple((self.op + r, FaultKind.CUT) for r in self.recovery_cuts)
        return FaultPlan(((self.op, self.kind), *later), self.seed)

    def __str__(self) -> str:
        if self.kind is FaultKind.CUT:
            text = f"cut before op {self.op}"
        else:
            text = f"torn op {self.op} (seed {self.seed})"
        if self.recovery_cuts:
            text += ", then cut before recovery op " + ", ".join(map(str, self.recovery_cuts))
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "op": self.op, "seed": self.seed,
                "recovery_cuts": list(self.recovery_cuts)}


@dataclass(frozen=True)
class Failure:
    """A sweep point whose outcome the promise does not allow, with what the operation was."""

    fault: Fault
    outcome: Outcome
    reason: str
    operation: str

    def to_dict(self) -> dict[str, Any]:
        return {"fault": self.fault.to_dict(), "description": str(self.fault), "outcome": self.outcome.value,
                "reason": self.reason, "operation": self.operation}


@dataclass
class SweepReport:
    """What a sweep found; ``outcomes`` counts every point (cut, torn and recovery-fault points)."""

    layout: str
    strategy: str
    old_version: str
    new_version: str
    torn: bool
    revert: bool
    seed: int
    engine: str
    flash_ops: int
    cut_points: int
    torn_points: int
    recovery_points: int
    outcomes: dict[str, int]
    failures: list[Failure]
    commit_op: int | None
    commit_source: str
    clean: Outcome
    clean_reason: str
    refused: str | None
    clean_log: list[str]
    modeled_install_s: float
    modeled_install_max_s: float
    erases_total: int
    minimum_erases: int
    bytes_programmed: int
    emulations: int
    workers: int = 1
    wall_s: float = 0.0

    @property
    def points(self) -> int:
        return self.cut_points + self.torn_points + self.recovery_points

    @property
    def points_per_s(self) -> float:
        return self.points / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        """No point failed and the clean update itself ended somewhere allowed."""
        return not self.failures and self.clean not in (Outcome.BRICKED, Outcome.WRONG)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["clean"] = self.clean.value
        data["failures"] = [failure.to_dict() for failure in self.failures]
        data["points"] = self.points
        data["points_per_s"] = round(self.points_per_s, 1)
        data["wall_s"] = round(self.wall_s, 3)
        data["ok"] = self.ok
        return data


@dataclass(frozen=True)
class Replay:
    """One point run the slow way, with the operation log: for explaining a failure."""

    fault: Fault
    verdict: Verdict
    boot_log: list[str]
    operations: list[OpRecord]


# -- recording the clean run ----------------------------------------------------------------------------
class _Op:
    __slots__ = ("address", "after", "device", "kind", "length", "state")

    def __init__(self, device: str, kind: OpKind, address: int, length: int, state: BoardState) -> None:
        self.device = device
        self.kind = kind
        self.address = address
        self.length = length
        self.state = state
        self.after: bytes | None = None

    def __str__(self) -> str:
        return f"{self.kind.value} of {self.length} bytes at 0x{self.address:08x} on {self.device}"


class _Recorder(PowerDomain):
    """A power rail that, while ``journal`` is a list, notes every operation, the board state before
    it and (once the next one starts) the bytes it left."""

    def __init__(self, *, log: bool = False) -> None:
        super().__init__(log=log)
        self.journal: list[_Op] | None = None
        self.board: Board | None = None

    def start_op(self, device: str, kind: OpKind, address: int, length: int) -> TornOp | None:
        journal = self.journal
        if journal is not None and self.powered and self.board is not None:
            self._seal()
            journal.append(_Op(device, kind, address, length, self.board.state.copy()))
        return super().start_op(device, kind, address, length)

    def _seal(self) -> None:
        journal = self.journal
        if journal and journal[-1].after is None and self.board is not None:
            op = journal[-1]
            op.after = self.board.flashes[op.device].read(op.address, op.length)

    def stop(self) -> list[_Op]:
        self._seal()
        journal, self.journal = self.journal or [], None
        return journal


# -- driving a board -----------------------------------------------------------------------------------
def _same(first: BootResult, second: BootResult) -> bool:
    return (first.action, first.address, first.slot) == (second.action, second.address, second.slot)


class _Driver:
    """Runs the update procedure and recoveries on one board, as the device and its user would."""

    def __init__(self, strategy: Strategy, board: Board, judge: Judge, new: ReleaseImage, *,
                 revert: bool, max_boots: int) -> None:
        self.strategy = strategy
        self.board = board
        self.judge = judge
        self.new = new
        self.revert = revert
        self.max_boots = max_boots
        self.log: list[str] = []
        self.refusal: str | None = None

    def update(self) -> BootResult:
        """Stage the new release (the running application's part), then reboot until settled."""
        self.refusal = None
        try:
            self.strategy.stage(self.board, self.new)
        except FlashError:  # not a refusal: the staging code drives the flash wrongly
            raise
        except McuotaError as exc:  # the application side refused it: nothing requested
            self.refusal = str(exc)
        return self.settle(cold=False)

    def settle(self, *, cold: bool) -> BootResult:
        self.log = []
        previous: BootResult | None = None
        for count in range(self.max_boots):
            if cold and count == 0:
                self.board.power_cycle()
            else:
                self.board.warm_reset()
            before = self.board.domain.op_count
            try:
                result = self.strategy.boot(self.board)
            except McuotaError as exc:  # e.g. a program over unerased cells: the flash controller refuses
                result = BootResult(BootAction.STAY, reason=f"bootloader failed: {exc}")
            self.log.extend(result.log)
            if result.action is BootAction.STAY:
                return result
            running = self.judge.running(self.board, result)
            if running is not None and not (self.revert and running is self.new):
                self.strategy.confirm(self.board)
            if previous is not None and self.board.domain.op_count == before and _same(previous, result):
                return result
            previous = result
        return BootResult(BootAction.STAY, reason=f"boot loop: no stable state after {self.max_boots} boots",
                          log=list(self.log))

    def recover(self) -> BootResult:
        """Power comes back (again and again, if the plan says so) until the board settles."""
        for _ in range(_MAX_LOSSES):
            try:
                return self.settle(cold=True)
            except PowerLoss:
                continue
        return BootResult(BootAction.STAY, reason=f"power lost {_MAX_LOSSES} times during recovery")


# -- the sweep -----------------------------------------------------------------------------------------
@dataclass
class _Point:
    fault: Fault
    verdict: Verdict
    recovery_ops: int
    committed: bool | None = None

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.fault.op, self.fault.kind is FaultKind.TORN, bool(self.fault.recovery_cuts))


@dataclass
class _Setup:
    """The board the points run on (plain power rail: no recording cost per operation), settled
    with the old release, and everything needed to drive and judge it."""

    layout: Layout
    strategy: Strategy
    board: Board
    judge: Judge
    driver: _Driver
    base: BoardSnapshot


@dataclass
class _CleanRun:
    journal: list[_Op]
    final: BootResult
    verdict: Verdict
    refusal: str | None
    log: list[str]
    elapsed: tuple[float, float]


def _setup(layout: Layout, old: ReleaseImage, new: ReleaseImage, *, strategy: Strategy | None, revert: bool,
           max_boots: int, log_ops: bool = False) -> _Setup:
    chosen = strategy or strategy_for(layout)
    if revert and not chosen.can_revert:
        raise UsageError(f"strategy {chosen.name} cannot revert an unconfirmed image: sweep it without "
                         "--revert")
    board = Board(layout, log_ops=log_ops)
    judge = Judge(layout, old, new, Emulator(layout))
    driver = _Driver(chosen, board, judge, new, revert=revert, max_boots=max_boots)
    chosen.factory_install(board, old)
    settled = driver.settle(cold=True)
    verdict = judge.judge(board, settled)
    if verdict.outcome is not Outcome.OLD:
        raise UsageError(f"{layout.name}: the factory-installed old release {old.version} does not run "
                         f"({verdict.outcome.value}: {verdict.reason})")
    return _Setup(layout, chosen, board, judge, driver, board.snapshot())


def _record(setup: _Setup) -> _CleanRun:
    """The clean update on a second board whose power rail journals every operation."""
    recorder = _Recorder()
    board = Board(setup.layout, domain=recorder)
    recorder.board = board
    board.restore(setup.base)
    plain = setup.driver
    driver = _Driver(setup.strategy, board, setup.judge, plain.new, revert=plain.revert,
                     max_boots=plain.max_boots)
    before = board.domain.elapsed
    recorder.journal = []
    final = driver.update()
    journal = recorder.stop()
    after = board.domain.elapsed
    return _CleanRun(journal, final, setup.judge.judge(board, final), driver.refusal, list(driver.log),
                     (after.typical - before.typical, after.maximum - before.maximum))


def sweep(layout: Layout, old: ReleaseImage, new: ReleaseImage, *, torn: bool = False, revert: bool = False,
          seed: int = 0, recovery_share: float = DEFAULT_RECOVERY_SHARE, max_boots: int = DEFAULT_MAX_BOOTS,
          strategy: Strategy | None = None, engine: Engine = "journal", workers: int | None = None,
          progress: Callable[[int, int], None] | None = None) -> SweepReport:
    """Cut (and with ``torn`` tear) every flash operation of the update from ``old`` to ``new`` on
    ``layout`` and report what the board ends up running; see the module docstring.

    ``workers`` processes share the points (forked after the clean run, so each starts from the same
    journal); ``None`` uses up to two when the sweep is large enough to repay the fork."""
    started = time.perf_counter()
    if not 0.0 <= recovery_share <= 1.0:
        raise UsageError(f"recovery share {recovery_share} must be between 0 and 1")
    setup = _setup(layout, old, new, strategy=strategy, revert=revert, max_boots=max_boots)
    clean = _record(setup)
    journal = clean.journal
    declared = setup.strategy.committed(setup.board, new) is not None
    options = _RunOptions(engine, torn, seed, recovery_share, declared)
    count = _workers(workers, len(journal) * (2 if torn else 1))
    if count > 1:
        points = _run_forked(setup, journal, options, count)
    else:
        points = _runner(setup, journal, options.engine).run(options, progress=progress)

    if revert:
        commit_op, source = None, "none: in revert mode the new release must not stay"
    else:
        commit_op, source = _commit_point(points, len(journal), clean.verdict.outcome, declared=declared,
                                          revertible=setup.strategy.can_revert)
    refused_update = clean.verdict.outcome is not Outcome.NEW
    failures = [failure for point in points if (failure := _judge_point(
        point, journal, commit_op, revert=revert, refused=refused_update))]
    counts = {outcome.value: 0 for outcome in OUTCOME_ORDER}
    for point in points:
        counts[point.verdict.outcome.value] += 1
    programs = [op for op in journal if op.kind is OpKind.PROGRAM]
    refused = None
    if clean.refusal:
        refused = clean.refusal
    elif refused_update and not revert:  # the bootloader's own words on why it kept the old release
        refused = " / ".join(clean.log) or clean.final.reason
    report = SweepReport(
        layout=layout.name, strategy=setup.strategy.name, old_version=str(old.version),
        new_version=str(new.version), torn=torn, revert=revert, seed=seed, engine=engine,
        flash_ops=len(journal),
        cut_points=sum(1 for p in points if p.fault.kind is FaultKind.CUT and not p.fault.recovery_cuts),
        torn_points=sum(1 for p in points if p.fault.kind is FaultKind.TORN and not p.fault.recovery_cuts),
        recovery_points=sum(1 for p in points if p.fault.recovery_cuts),
        outcomes=counts, failures=failures, commit_op=commit_op, commit_source=source,
        clean=clean.verdict.outcome, clean_reason=clean.verdict.reason, refused=refused,
        clean_log=([f"stage refused: {clean.refusal}"] if clean.refusal else []) + clean.log,
        modeled_install_s=round(clean.elapsed[0], 6), modeled_install_max_s=round(clean.elapsed[1], 6),
        erases_total=len(journal) - len(programs), minimum_erases=minimum_erases(layout, new),
        bytes_programmed=sum(op.length for op in programs), emulations=setup.judge.emulator.count,
        workers=count,
    )
    report.wall_s = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class _RunOptions:
    engine: Engine
    torn: bool
    seed: int
    recovery_share: float
    declared: bool


def _workers(requested: int | None, points: int) -> int:
    if requested is not None:
        if requested < 1:
            raise UsageError(f"workers must be at least 1, not {requested}")
        return requested if _can_fork() else 1
    if points < _PARALLEL_FROM or not _can_fork():
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


_FORKED: tuple[_Setup, list[_Op], _RunOptions] | None = None


def _run_forked(setup: _Setup, journal: list[_Op], options: _RunOptions, count: int) -> list[_Point]:
    """Share the points among ``count`` forked processes; each inherits the settled board and the
    journal, takes every ``count``-th operation, and sends its points back."""
    global _FORKED  # noqa: PLW0603 - handed to the forked children by inheritance, not by pickling
    _FORKED = (setup, journal, options)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
            parts = list(pool.map(_forked_share, range(count), [count] * count))
    finally:
        _FORKED = None
    for _points, runs in parts:
        setup.judge.emulator.merge(runs)
    return sorted((point for part, _runs in parts for point in part), key=lambda point: point.order)


def _forked_share(index: int, count: int) -> tuple[list[_Point], dict[bytes, EmulatedBoot]]:
    if _FORKED is None:
        raise RuntimeError("sweep worker started without the parent's state (not forked?)")
    setup, journal, options = _FORKED
    points = _runner(setup, journal, options.engine).run(options, share=(index, count))
    return points, setup.judge.emulator.runs


def _runner(setup: _Setup, journal: list[_Op], engine: Engine) -> _Runner:
    if engine == "journal":
        return _JournalRunner(setup, journal)
    if engine == "rerun":
        return _RerunRunner(setup, journal)
    raise UsageError(f"unknown sweep engine {engine!r} (journal or rerun)")


def minimum_erases(layout: Layout, release: ReleaseImage) -> int:
    """Sector erases needed to write the release's application once where it runs."""
    devices = {dev.name: dev.flash_part() for dev in layout.devices}
    for part in layout.partitions:
        if part.address <= layout.app_address < part.end:
            geometry = devices[part.device].geometry
            length = min(len(release.payload), geometry.end - layout.app_address)
            return len(geometry.sectors_in(layout.app_address, length))
    return 0


def _commit_point(points: Sequence[_Point], total: int, clean: Outcome, *, declared: bool,
                  revertible: bool) -> tuple[int | None, str]:
    """The commit point: ops 1..j done means only the new release may run afterwards (None if the
    clean update does not install it).

    Declared by the strategy: the first state it calls committed. Otherwise inferred from the cut
    points' recoveries: for a system that cannot revert, the first state that recovers to the new
    release (it has no business going back after that); for one that can, the state after the last
    one that recovers to the old release, since an image that started but did not confirm yet is
    rightly rolled back, however far the update had got."""
    if clean is not Outcome.NEW:
        return None, "none: the clean update does not end in the new release"
    base = {p.fault.op: p for p in points if p.fault.kind is FaultKind.CUT and not p.fault.recovery_cuts}
    if declared:
        for op in range(1, total + 1):
            if op in base and base[op].committed:
                return op - 1, "declared by the strategy"
        return total, "declared by the strategy"
    if revertible:
        olds = [op for op, point in base.items() if point.verdict.outcome is Outcome.OLD]
        return (max(olds) if olds else 0), "inferred: after the last cut that rolls back"
    for op in range(1, total + 1):
        if op in base and base[op].verdict.outcome is Outcome.NEW:
            return op - 1, "inferred: before the first cut that ends in the new release"
    return total, "inferred: before the first cut that ends in the new release"


def _judge_point(point: _Point, journal: Sequence[_Op], commit_op: int | None, *, revert: bool,
                 refused: bool) -> Failure | None:
    outcome, reason = point.verdict.outcome, point.verdict.reason
    operation = str(journal[point.fault.op - 1])
    if outcome in (Outcome.BRICKED, Outcome.WRONG):
        return Failure(point.fault, outcome, reason, operation)
    if outcome is Outcome.RECOVERABLE:
        return None
    if revert or refused:
        if outcome is Outcome.NEW:
            why = "it never confirmed and had to be reverted" if revert else "the clean update refuses it"
            return Failure(point.fault, outcome, f"the new release runs although {why}", operation)
        return None
    if outcome is Outcome.OLD and commit_op is not None and point.fault.op > commit_op:
        return Failure(point.fault, outcome, f"the old release runs after the commit point (op {commit_op}): "
                       f"{reason}", operation)
    return None


# -- two ways to reach a cut state -------------------------------------------------------------------------
class _Runner:
    def __init__(self, setup: _Setup, journal: list[_Op]) -> None:
        self.setup = setup
        self.journal = journal

    def run(self, options: _RunOptions, *, share: tuple[int, int] = (0, 1),
            progress: Callable[[int, int], None] | None = None) -> list[_Point]:
        points: list[_Point] = []
        total = len(self.journal)
        kinds = (FaultKind.CUT, FaultKind.TORN) if options.torn else (FaultKind.CUT,)
        index, count = share
        for k in range(1 + index, total + 1, count):
            self.advance_to(k)
            for kind in kinds:
                fault = Fault(kind, k, options.seed)
                point = self.point(fault, declared=options.declared and kind is FaultKind.CUT)
                points.append(point)
                rng = random.Random(f"mcuota-sweep/{options.seed}/{kind.value}/{k}")
                if point.recovery_ops and rng.random() < options.recovery_share:
                    first = rng.randint(1, point.recovery_ops)
                    cuts: tuple[int, ...] = (first,)
                    if rng.random() < 0.5:
                        cuts = (first, first + rng.randint(1, point.recovery_ops))
                    points.append(self.point(dataclasses.replace(fault, recovery_cuts=cuts), declared=False))
            if progress is not None:
                progress(k, total)
        return points

    def advance_to(self, k: int) -> None:
        """Prepare for points at op ``k`` (the journal runner keeps the state after ops 1..k-1)."""

    def point(self, fault: Fault, *, declared: bool) -> _Point:
        raise NotImplementedError


class _RerunRunner(_Runner):
    """Restore the settled old board, arm the fault's plan and run the update for real."""

    def point(self, fault: Fault, *, declared: bool) -> _Point:
        setup = self.setup
        board, driver = setup.board, setup.driver
        board.restore(setup.base)
        board.domain.arm(fault.plan())
        committed: bool | None = None
        try:
            result = driver.update()
        except PowerLoss:
            if declared:
                committed = bool(setup.strategy.committed(board, driver.new))
            result = driver.recover()
        recovery_ops = max(0, board.domain.ops_since_arm - fault.op)
        return _Point(fault, setup.judge.judge(board, result), recovery_ops, committed)


class _JournalRunner(_Runner):
    """Rebuild each cut state from the journal and only run the recovery.

    The prefix state lives in one buffer per device, advanced by the journal; a device is restored
    from it only when the buffer changed or the last recovery operated on the device, so a 16 MB SPI
    chip a recovery never touches costs nothing per point."""

    def __init__(self, setup: _Setup, journal: list[_Op]) -> None:
        super().__init__(setup, journal)
        base_devices: tuple[FlashSnapshot, ...] = setup.base.flash.devices
        self.flashes: dict[str, NorFlash] = setup.board.flashes
        self.templates = {snap.device: snap for snap in base_devices}
        self.current = {snap.device: bytearray(snap.data) for snap in base_devices}
        self.version = dict.fromkeys(self.current, 0)
        self.loaded: dict[str, tuple[int, int]] = {}  # device -> (buffer version, device ops after restore)
        self.applied = 0

    def advance_to(self, k: int) -> None:
        while self.applied < k - 1:
            op = self.journal[self.applied]
            assert op.after is not None
            offset = op.address - self.flashes[op.device].base
            self.current[op.device][offset:offset + op.length] = op.after
            self.version[op.device] += 1
            self.applied += 1

    def _load(self, name: str) -> None:
        flash = self.flashes[name]
        version = self.version[name]
        if self.loaded.get(name) != (version, flash.ops):
            # NorFlash.restore copies the contents in place at once, so the live buffer can stand in
            # for the frozen bytes a snapshot normally holds (saving a full copy per point).
            data = cast(bytes, self.current[name])
            flash.restore(dataclasses.replace(self.templates[name], data=data))
            self.loaded[name] = (version, flash.ops)

    def point(self, fault: Fault, *, declared: bool) -> _Point:
        setup = self.setup
        board, driver = setup.board, setup.driver
        op = self.journal[fault.op - 1]
        for name in self.current:
            if name != op.device or fault.kind is not FaultKind.TORN:
                self._load(name)
        if fault.kind is FaultKind.TORN:
            self._load_torn(op, fault)
        board.domain.disarm()
        board.domain.power_on()
        board.state = op.state.copy()
        committed = bool(setup.strategy.committed(board, driver.new)) if declared else None
        if fault.recovery_cuts:
            board.domain.arm(FaultPlan.cut_before(*fault.recovery_cuts))
        result = driver.recover()
        return _Point(fault, setup.judge.judge(board, result), board.domain.ops_since_arm, committed)

    def _load_torn(self, op: _Op, fault: Fault) -> None:
        """Load the device as op ``fault.op`` leaves it when torn, computed as
        :class:`~mcuota.flash.NorFlash` does under ``FaultPlan.torn_at(op, seed=seed)`` armed when the
        update starts (same seed derivation, same torn-operation arithmetic)."""
        flash = self.flashes[op.device]
        buffer = self.current[op.device]
        offset = op.address - flash.base
        before = bytes(buffer[offset:offset + op.length])
        assert op.after is not None
        rng = random.Random(f"mcuota-torn/{fault.seed}/{fault.op}")
        loss = PowerLoss(fault="torn", seq=0, op=fault.op, device=op.device, kind=op.kind.value,
                         address=op.address, length=op.length)
        tear = TornOp(rng, FaultPlan().torn_style, loss)
        if op.kind is OpKind.ERASE:
            partial = tear.erase_result(before, op.after)
        else:
            partial = tear.program_result(before, op.after, flash.write_unit)
        buffer[offset:offset + op.length] = partial
        try:
            flash.restore(dataclasses.replace(self.templates[op.device], data=cast(bytes, buffer)))
        finally:
            buffer[offset:offset + op.length] = before
        self.loaded.pop(op.device, None)


# -- one point, the slow way ---------------------------------------------------------------------------
def replay(layout: Layout, old: ReleaseImage, new: ReleaseImage, fault: Fault, *, revert: bool = False,
           max_boots: int = DEFAULT_MAX_BOOTS, strategy: Strategy | None = None) -> Replay:
    """Run one sweep point from the start with ``fault.plan()`` armed and the operation log on."""
    setup = _setup(layout, old, new, strategy=strategy, revert=revert, max_boots=max_boots,
                   log_ops=True)
    board, driver = setup.board, setup.driver
    board.restore(setup.base)
    board.domain.arm(fault.plan())
    try:
        result = driver.update()
    except PowerLoss:
        result = driver.recover()
    operations = list(board.domain.log or ())
    return Replay(fault, setup.judge.judge(board, result), list(driver.log), operations)


# -- turning user input into releases ------------------------------------------------------------------
_VERSION_IN_NAME = re.compile(r"(\d+\.\d+\.\d+)")


def prepare_release(layout: Layout, strategy: Strategy, data: bytes, *, name: str = "firmware",
                    signer: object | None = None, version: ImageVersion | None = None) -> ReleaseImage:
    """A release from what a user has: an image already built in the layout's format, or raw firmware
    (.bin taken at the layout's application address, .hex/.elf where they are linked). The version of
    raw firmware is what it prints when it boots, else one in the file name, unless given."""
    built = strategy.parse_release(data)
    if built is None and layout.image_format == "mcuboot":
        built = _mcuboot_release(data)
    if built is not None:
        return built
    from mcuota.image.firmware import detect_kind, parse_firmware  # noqa: PLC0415 - loads pyelftools

    kind = detect_kind(data, name)
    firmware = parse_firmware(data, kind=kind, load_address=layout.app_address if kind == "bin" else None,
                              name=name)
    if firmware.start != layout.app_address:
        raise UsageError(f"{name} is linked for 0x{firmware.start:08x}, but {layout.name} runs applications "
                         f"at 0x{layout.app_address:08x}")
    payload = firmware.contiguous()
    if version is None:
        version = _version_of(layout, payload, name)
    return strategy.make_release(payload, version, signer=signer)


def _version_of(layout: Layout, payload: bytes, name: str) -> ImageVersion:
    announced = emulate(payload, layout.app_address, layout).version
    if announced is not None:
        return ImageVersion.parse(announced.split("-")[0].split("+")[0])
    match = _VERSION_IN_NAME.search(name.rsplit("/", 1)[-1])
    if match:
        return ImageVersion.parse(match.group(1))
    raise UsageError(f"cannot tell the version of {name}: it prints no version banner when booted and its "
                     "name holds none (give an image built in the layout's format)")


def _mcuboot_release(data: bytes) -> ReleaseImage | None:
    from mcuota.image.mcuboot import looks_like_mcuboot, parse_image  # noqa: PLC0415 - only for MCUboot

    if not looks_like_mcuboot(data):
        return None
    image = parse_image(data)
    return ReleaseImage(bytes(data), image.payload(data), image.version)

"""One device's power rail: the operation counter and fault plan its flash parts share.

A simulated board has one supply. When it browns out, the internal flash and the external SPI NOR lose
power together, so "cut at operation N" has to count the erases and programs of *both* in one sequence.
Every :class:`~mcuota.flash.nor.NorFlash` attaches to a :class:`PowerDomain` and asks it, before each
erase or program, whether that operation happens, is cut before it starts, or is torn half-way.

Faults are planned, never random at run time: a :class:`FaultPlan` names operation numbers counted from
the moment it is armed, and torn operations draw their partial state from an RNG seeded by
``(plan.seed, op)`` — so any failing sweep iteration replays bit for bit from two integers.

MCUboot's simulator interrupts *between* operations only (its known gap: a torn trailer write bricked
swap-move, mcuboot issue 1966). Here a torn erase leaves the sector with some bits erased and some not,
and a torn program leaves only some of its bit flips done — always bitwise between the old contents and
what the operation would have written.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

from mcuota.errors import UsageError
from mcuota.flash.errors import PowerLoss, PowerOff
from mcuota.flash.part import Duration
from mcuota.flash.state import FlashSnapshot


class FaultKind(StrEnum):
    CUT = "cut"
    """Power fails just before the operation: it does not happen at all."""
    TORN = "torn"
    """Power fails while the operation runs: its cells are left part-way."""


class TornStyle(StrEnum):
    """How a torn *program* leaves its bytes (a torn erase is always scattered: it is one analog step)."""

    SEQUENTIAL = "sequential"
    """Write units before a random cut point are done, the one at the cut has a random subset of its bit
    flips, the rest are untouched: how a controller that programs unit by unit fails."""
    SCATTER = "scatter"
    """Any random subset of the operation's bit flips took, anywhere in the buffer: the adversarial case."""


class OpKind(StrEnum):
    ERASE = "erase"
    PROGRAM = "program"


class OpRecord(NamedTuple):
    """One line of the optional operation log: what happened at domain sequence number ``seq``."""

    seq: int
    device: str
    kind: OpKind
    address: int
    length: int
    outcome: str  # "done", "cut" or "torn"


@dataclass(frozen=True)
class FaultPlan:
    """Which operations fail and how; op 1 is the first erase or program after :meth:`PowerDomain.arm`.

    Several faults in one plan model repeated brown-outs: after a loss the simulator powers on again and
    the count continues, so a later fault can hit the recovery itself.
    """

    faults: tuple[tuple[int, FaultKind], ...] = ()
    seed: int = 0
    torn_style: TornStyle = TornStyle.SEQUENTIAL
    _by_op: dict[int, FaultKind] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_op: dict[int, FaultKind] = {}
        for op, kind in self.faults:
            if op < 1:
                raise UsageError(f"fault at op {op}: operations are numbered from 1")
            if op in by_op:
                raise UsageError(f"two faults planned at op {op}")
            by_op[op] = FaultKind(kind)
        object.__setattr__(self, "faults", tuple(sorted(by_op.items())))
        object.__setattr__(self, "_by_op", by_op)

    @classmethod
    def cut_before(cls, *ops: int) -> FaultPlan:
        """Power fails before each of ``ops``: those operations do not happen."""
        return cls(tuple((op, FaultKind.CUT) for op in ops))

    @classmethod
    def torn_at(cls, *ops: int, seed: int = 0, style: TornStyle = TornStyle.SEQUENTIAL) -> FaultPlan:
        """Power fails during each of ``ops``, leaving a partial state drawn from ``seed``."""
        return cls(tuple((op, FaultKind.TORN) for op in ops), seed, style)

    @classmethod
    def random(cls, seed: int, within: int, count: int = 1, torn_share: float = 0.5,
               style: TornStyle = TornStyle.SEQUENTIAL) -> FaultPlan:
        """``count`` distinct faults among ops ``1..within``, each torn with probability ``torn_share``;
        the same arguments always give the same plan (multi-fault sweeps are replayable)."""
        if not 0 < count <= within:
            raise UsageError(f"cannot place {count} faults among {within} operations")
        rng = random.Random(f"mcuota-fault-plan/{seed}")
        ops = sorted(rng.sample(range(1, within + 1), count))
        faults = tuple((op, FaultKind.TORN if rng.random() < torn_share else FaultKind.CUT) for op in ops)
        return cls(faults, seed, style)

    def fault_at(self, op: int) -> FaultKind | None:
        return self._by_op.get(op)

    def __bool__(self) -> bool:
        return bool(self.faults)


_NO_FAULTS = FaultPlan()


def _partial_mask(rng: random.Random, nbits: int) -> int:
    """Random bits each set with probability k/8 (k drawn 1..7), from at most three ``getrandbits``.

    A cut early in an operation leaves few cells changed and a cut late leaves most; drawing the
    progress first and then the bits models both without a per-bit Python loop: with the progress in
    binary 0.b1b2b3, fold random words from the last set digit up, OR for a 1 and AND for a 0.
    """
    eighths = rng.randint(1, 7)
    digits = [(eighths >> 2) & 1, (eighths >> 1) & 1, eighths & 1]
    while digits[-1] == 0:
        digits.pop()
    mask = rng.getrandbits(nbits)
    for digit in reversed(digits[:-1]):
        mask = (rng.getrandbits(nbits) | mask) if digit else (rng.getrandbits(nbits) & mask)
    return mask


def _scatter(rng: random.Random, old: bytes, target: bytes) -> bytes:
    """Some of the bits that differ between ``old`` and ``target`` flipped, none of the others."""
    n = len(old)
    before = int.from_bytes(old, "little")
    flips = before ^ int.from_bytes(target, "little")
    if not flips:
        return bytes(target)
    return (before ^ (flips & _partial_mask(rng, n * 8))).to_bytes(n, "little")


class TornOp:
    """A torn operation in progress: the device asks it for the partial bytes, then raises ``loss``."""

    __slots__ = ("loss", "rng", "style")

    def __init__(self, rng: random.Random, style: TornStyle, loss: PowerLoss) -> None:
        self.rng = rng
        self.style = style
        self.loss = loss

    def erase_result(self, old: bytes, erased: bytes) -> bytes:
        return _scatter(self.rng, old, erased)

    def program_result(self, old: bytes, target: bytes, unit: int) -> bytes:
        """Partial programming of ``target`` over ``old``; ``unit`` is the write unit for SEQUENTIAL."""
        if self.style is TornStyle.SCATTER or len(old) <= unit:
            return _scatter(self.rng, old, target)
        cut = self.rng.randrange(len(old) // unit) * unit
        middle = _scatter(self.rng, old[cut:cut + unit], target[cut:cut + unit])
        return b"".join((target[:cut], middle, old[cut + unit:]))


class PoweredDevice(Protocol):
    """What the domain needs from a device on its rail (implemented by ``NorFlash``)."""

    @property
    def name(self) -> str: ...

    @property
    def elapsed(self) -> Duration: ...

    def power_on_reset(self) -> None: ...

    def snapshot(self) -> FlashSnapshot: ...

    def restore(self, snapshot: FlashSnapshot) -> None: ...


@dataclass(frozen=True, slots=True)
class DomainSnapshot:
    """Every device on the rail plus the operation counter, restored together by one call."""

    op_count: int
    devices: tuple[FlashSnapshot, ...]


class PowerDomain:
    """The shared operation counter, fault plan, power state and (optional) operation log of one board.

    ``log=True`` keeps an :class:`OpRecord` per operation for diagnostics; without it the hot path pays
    one ``is None`` test.
    """

    def __init__(self, plan: FaultPlan | None = None, *, log: bool = False) -> None:
        self._count = 0
        self._origin = 0
        self._plan = _NO_FAULTS
        self._fault_at: Callable[[int], FaultKind | None] | None = None
        self._powered = True
        self._lost_at = 0
        self._log: list[OpRecord] | None = [] if log else None
        self._devices: dict[str, PoweredDevice] = {}
        if plan is not None:
            self.arm(plan)

    # -- devices -------------------------------------------------------------------------------------
    def attach(self, device: PoweredDevice) -> None:
        """Put a device on this rail; names must be unique so logs and snapshots can tell them apart."""
        if device.name in self._devices:
            raise UsageError(f"a flash device named {device.name!r} is already on this power domain")
        self._devices[device.name] = device

    @property
    def devices(self) -> tuple[PoweredDevice, ...]:
        return tuple(self._devices.values())

    # -- faults and counting ------------------------------------------------------------------------
    def arm(self, plan: FaultPlan) -> None:
        """Start counting ops for ``plan`` from here: the next erase or program is op 1."""
        self._plan = plan
        self._fault_at = plan.fault_at if plan else None
        self._origin = self._count

    def disarm(self) -> None:
        self.arm(_NO_FAULTS)

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @property
    def op_count(self) -> int:
        """Operations started on this rail since it was created (or as of the restored snapshot)."""
        return self._count

    @property
    def ops_since_arm(self) -> int:
        """Operations since :meth:`arm`: after a clean run, the N to sweep over."""
        return self._count - self._origin

    @property
    def log(self) -> list[OpRecord] | None:
        return self._log

    @property
    def powered(self) -> bool:
        return self._powered

    @property
    def elapsed(self) -> Duration:
        """Modeled flash time of all devices on the rail (they share one CPU, so times add up)."""
        typical = maximum = 0.0
        for device in self._devices.values():
            spent = device.elapsed
            typical += spent.typical
            maximum += spent.maximum
        return Duration(typical, maximum)

    def start_op(self, device: str, kind: OpKind, address: int, length: int) -> TornOp | None:
        """Called by a device right before it changes cells.

        Returns ``None`` when the operation goes ahead, raises :class:`PowerLoss` when it is cut, and
        returns a :class:`TornOp` when it is torn (the device writes the partial state, then raises).
        """
        if not self._powered:
            raise PowerOff(seq=self._lost_at, device=device, kind=kind.value, address=address,
                           length=length)
        self._count += 1
        fault = None if self._fault_at is None else self._fault_at(self._count - self._origin)
        if fault is None:
            if self._log is not None:
                self._log.append(OpRecord(self._count, device, kind, address, length, "done"))
            return None
        self._powered = False
        self._lost_at = self._count
        op = self._count - self._origin
        if self._log is not None:
            self._log.append(OpRecord(self._count, device, kind, address, length, fault.value))
        loss = PowerLoss(fault=fault.value, seq=self._count, op=op, device=device, kind=kind.value,
                         address=address, length=length)
        if fault is FaultKind.CUT:
            raise loss
        rng = random.Random(f"mcuota-torn/{self._plan.seed}/{op}")
        return TornOp(rng, self._plan.torn_style, loss)

    # -- power -----------------------------------------------------------------------------------------
    def cut_power(self) -> None:
        """Lose power between operations (e.g. a reset planned by time rather than by op number)."""
        self._powered = False
        self._lost_at = self._count

    def power_on(self) -> None:
        """Power returns: volatile device state (SPI write-enable latch, busy flag) resets, flash keeps
        whatever the cut left. The armed plan stays, so later faults can hit the recovery."""
        self._powered = True
        for device in self._devices.values():
            device.power_on_reset()

    # -- snapshots -----------------------------------------------------------------------------------
    def snapshot(self) -> DomainSnapshot:
        return DomainSnapshot(self._count, tuple(d.snapshot() for d in self._devices.values()))

    def restore(self, snapshot: DomainSnapshot) -> None:
        """Put every device and the counter back, power on, and disarm: arm a fresh plan afterwards."""
        names = tuple(s.device for s in snapshot.devices)
        if names != tuple(self._devices):
            raise UsageError(f"snapshot holds devices {list(names)}, this domain has {list(self._devices)}")
        for snap in snapshot.devices:
            self._devices[snap.device].restore(snap)
        self._count = snapshot.op_count
        self._powered = True
        self.disarm()
        if self._log is not None:
            self._log.clear()
        for device in self._devices.values():
            device.power_on_reset()


def count_ops(domain: PowerDomain, run: Callable[[], object]) -> int:
    """Run ``run`` with no faults armed and return how many erases and programs it made: the N of a
    power-cut sweep. The domain is left as the run left it (restore a snapshot to go back)."""
    domain.disarm()
    run()
    return domain.ops_since_arm


def sweep_plans(total: int, *, torn: bool = False, seeds: Iterable[int] = (0,)) -> list[FaultPlan]:
    """Every single-fault plan for a run of ``total`` ops: cut before 1..total, or torn at each op for
    each seed. A convenience for the exhaustive sweep; order is op-major so failures show early ops first."""
    if not torn:
        return [FaultPlan.cut_before(op) for op in range(1, total + 1)]
    seed_list = tuple(seeds)
    return [FaultPlan.torn_at(op, seed=seed) for op in range(1, total + 1) for seed in seed_list]

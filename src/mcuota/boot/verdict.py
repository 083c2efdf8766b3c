"""What a board runs after its bootloader settled: the new release, the old one, something else, nothing.

"Runs X" needs three things to agree: the bootloader jumped to the layout's application address, the
bytes there are X's application, and an emulated Cortex-M started from those bytes prints X's version
on its console. The first two catch a wrong decision or a half-copied image; the third catches an
image that is in place but would not boot (linked for another address, a bad stack pointer), and what
the device *claims* to run is never trusted over what it prints.

Emulation is the slow part (a few milliseconds) and a sweep lands on the same few images thousands of
times, so :class:`Emulator` memoises by a hash of the executed bytes: each distinct image boots once.
The dependency on :mod:`mcuota.emu` is confined to :func:`emulate`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from mcuota.boot.board import Board
from mcuota.boot.layout import Layout
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage
from mcuota.errors import McuotaError, UsageError


class Outcome(StrEnum):
    NEW = "new"
    """The new release runs."""
    OLD = "old"
    """The release installed before the update runs."""
    BRICKED = "bricked"
    """Nothing runs and the bootloader cannot take an update: a bootloader that stays put without a
    download path, a boot loop, or a jump into something that faults."""
    WRONG = "wrong"
    """Something runs that is neither release (a mix of both, a jump to the wrong address)."""
    RECOVERABLE = "recoverable"
    """The bootloader waits in a mode that can still receive firmware (dapboot DFU, Interrupt loader
    DFU): not running an application, but not a brick either."""


OUTCOME_ORDER: tuple[Outcome, ...] = (Outcome.NEW, Outcome.OLD, Outcome.BRICKED, Outcome.WRONG,
                                      Outcome.RECOVERABLE)


@dataclass(frozen=True)
class EmulatedBoot:
    version: str | None
    fault: bool
    summary: str


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str


def emulate(image: bytes, address: int, layout: Layout) -> EmulatedBoot:
    """Boot ``image`` (the bytes at ``address``) on the emulated core of ``layout``'s chip: the part
    the sample target was built for, else a representative part for the layout's CPU."""
    from mcuota.emu.machine import boot  # noqa: PLC0415 - unicorn loads only when something boots
    from mcuota.emu.parts import part_for_cpu, part_for_sample  # noqa: PLC0415

    try:
        part = part_for_sample(layout.sample_target)
    except McuotaError:
        part = part_for_cpu(layout.cpu)
    try:
        result = boot(image, address, part=part)
    except McuotaError as exc:  # an image the core cannot even load there
        return EmulatedBoot(None, True, str(exc))
    return EmulatedBoot(result.version, result.fault, result.summary())


class Emulator:
    """:func:`emulate`, memoised by a hash of the executed bytes (and where they run)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._runs: dict[bytes, EmulatedBoot] = {}

    def run(self, image: bytes | memoryview, address: int, digest: bytes | None = None) -> EmulatedBoot:
        key = (digest or hashlib.blake2b(image, digest_size=20).digest()) + address.to_bytes(8, "little")
        found = self._runs.get(key)
        if found is None:
            found = emulate(bytes(image), address, self.layout)
            self._runs[key] = found
        return found

    @property
    def count(self) -> int:
        """Distinct images emulated so far."""
        return len(self._runs)

    def merge(self, other: dict[bytes, EmulatedBoot]) -> None:
        """Take over the boots another process emulated (a forked sweep worker)."""
        self._runs.update(other)

    @property
    def runs(self) -> dict[bytes, EmulatedBoot]:
        return dict(self._runs)


class Judge:
    """Classifies a settled board against the two releases of a sweep."""

    def __init__(self, layout: Layout, old: ReleaseImage, new: ReleaseImage, emulator: Emulator | None = None
                 ) -> None:
        self.layout = layout
        self.old = old
        self.new = new
        self.emulator = emulator or Emulator(layout)
        self._digests = {id(r): hashlib.blake2b(r.payload, digest_size=20).digest() for r in (old, new)}
        device = next((p.device for p in layout.partitions if p.address <= layout.app_address < p.end), None)
        if device is None:
            raise UsageError(f"layout {layout.name}: no partition holds the application address "
                             f"0x{layout.app_address:08x}")
        self._device = device

    def running(self, board: Board, result: BootResult) -> ReleaseImage | None:
        """The release whose application bytes sit where ``result`` jumped (no emulation)."""
        if result.action is not BootAction.JUMP or result.address != self.layout.app_address:
            return None
        flash = board.flashes[self._device]
        for release in (self.new, self.old):
            end = result.address + len(release.payload)
            if end <= flash.end and flash.read(result.address, len(release.payload)) == release.payload:
                return release
        return None

    def judge(self, board: Board, result: BootResult) -> Verdict:
        if result.action is BootAction.STAY:
            if result.recoverable:
                return Verdict(Outcome.RECOVERABLE, result.reason or "bootloader waits for a download")
            return Verdict(Outcome.BRICKED, result.reason or "the bootloader stays and cannot take an update")
        address = result.address
        if address != self.layout.app_address:
            where = "nowhere" if address is None else f"0x{address:08x}"
            return Verdict(Outcome.WRONG, f"jumped to {where}, not the application at "
                                          f"0x{self.layout.app_address:08x}")
        release = self.running(board, result)
        if release is not None:
            label = "new" if release is self.new else "old"
            run = self.emulator.run(release.payload, address, self._digests[id(release)])
            if run.version == str(release.version):
                return Verdict(Outcome.NEW if release is self.new else Outcome.OLD,
                               f"{label} image in place and it prints v{run.version}")
            return Verdict(Outcome.BRICKED, f"{label} image in place, but on the emulated core it "
                                            f"{_printed(run)}")
        flash = board.flashes[self._device]
        length = min(max(len(self.new.payload), len(self.old.payload)), flash.end - address)
        run = self.emulator.run(flash.view(address, length), address)
        if run.version is not None and not run.fault:
            return Verdict(Outcome.WRONG, f"the application area holds neither release; it prints "
                                          f"v{run.version}")
        return Verdict(Outcome.BRICKED, f"the application area holds neither release; on the emulated core "
                                        f"it {_printed(run)}")


def _printed(run: EmulatedBoot) -> str:
    if run.version is None:
        return f"prints no version ({run.summary})"
    return f"prints v{run.version} ({run.summary})"

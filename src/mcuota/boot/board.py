"""One simulated board: its flash devices on one power rail, plus the state outside flash that a
bootloader and its application share.

Two kinds of non-flash state matter to the seed systems: no-init RAM (the Interrupt cookbook's shared
boot flags and boot counter) survives a warm reset but not a power cut, and backup registers (dapboot's
BKP_DR1) survive a reset too. Keeping them here, next to the flash, lets a sweep snapshot and restore a
whole board in one call and lets ``power_cycle`` and ``warm_reset`` differ exactly as hardware does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcuota.boot.layout import Layout, Partition
from mcuota.flash import DomainSnapshot, NorFlash, PowerDomain, new_flash


@dataclass
class BoardState:
    """What a snapshot of a board holds besides its flash."""

    noinit: dict[str, int] = field(default_factory=dict)
    backup: dict[str, int] = field(default_factory=dict)
    buttons: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class BoardSnapshot:
    flash: DomainSnapshot
    state: BoardState


class Board:
    def __init__(self, layout: Layout, *, log_ops: bool = False) -> None:
        layout.validate()
        self.layout = layout
        self.domain = PowerDomain(log=log_ops)
        self.flashes: dict[str, NorFlash] = {
            dev.name: new_flash(dev.flash_part(), self.domain, name=dev.name) for dev in layout.devices
        }
        self.state = BoardState()

    # -- addressing -----------------------------------------------------------------------------------
    def flash_of(self, partition: str | Partition) -> tuple[NorFlash, Partition]:
        part = self.layout.partition(partition) if isinstance(partition, str) else partition
        return self.flashes[part.device], part

    def read(self, partition: str, offset: int = 0, length: int | None = None) -> bytes:
        flash, part = self.flash_of(partition)
        size = part.size - offset if length is None else length
        return flash.read(part.address + offset, size)

    # -- power ----------------------------------------------------------------------------------------
    def power_cycle(self) -> None:
        """Power off and on: flash keeps its contents, no-init RAM is lost (backup domain kept: VBAT)."""
        self.domain.power_on()
        self.state.noinit.clear()

    def warm_reset(self) -> None:
        """A software or watchdog reset: RAM marked no-init keeps its contents."""
        self.domain.power_on()

    def snapshot(self) -> BoardSnapshot:
        return BoardSnapshot(self.domain.snapshot(),
                             BoardState(dict(self.state.noinit), dict(self.state.backup), dict(self.state.buttons)))

    def restore(self, snapshot: BoardSnapshot) -> None:
        self.domain.restore(snapshot.flash)
        self.state = BoardState(dict(snapshot.state.noinit), dict(snapshot.state.backup),
                                dict(snapshot.state.buttons))

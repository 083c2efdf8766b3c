"""One simulated board: its flash devices on one power rail, plus the state outside flash that a
bootloader and its application share.

Two kinds of non-flash state matter to the seed systems: no-init RAM (the Interrupt cookbook's shared
boot flags and boot counter) survives a warm reset but not a power cut, and backup registers (dapboot's
BKP_DR1) survive a reset too. Keeping them here, next to the flash, lets a sweep snapshot and restore a
whole board in one call and lets ``power_cycle`` and ``warm_reset`` differ exactly as hardware does.

``host`` is the world on the other end of a bootloader's own download channel (a USB DFU host with a
file queued, dapboot; the Interrupt loader's DFU mode): it is outside the board, so it survives resets
and power cuts, and a snapshot carries it so a sweep puts the host back with the flash.

``flash_factory`` lets a test put a device model with a physical defect (a cell that will not program)
on the rail in place of the preset part, the only way to reach a bootloader's "verify after copy
failed" branch without mocking the strategy itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mcuota.boot.layout import FlashDevice, Layout, Partition
from mcuota.flash import DomainSnapshot, NorFlash, PowerDomain, new_flash

FlashFactory = Callable[[FlashDevice, PowerDomain], NorFlash]


@dataclass
class BoardState:
    """What a snapshot of a board holds besides its flash."""

    noinit: dict[str, int] = field(default_factory=dict)
    backup: dict[str, int] = field(default_factory=dict)
    buttons: dict[str, bool] = field(default_factory=dict)
    host: dict[str, bytes] = field(default_factory=dict)
    """What a host attached to the bootloader's download channel offers, by channel name."""

    def copy(self) -> BoardState:
        return BoardState(dict(self.noinit), dict(self.backup), dict(self.buttons), dict(self.host))


@dataclass(frozen=True)
class BoardSnapshot:
    flash: DomainSnapshot
    state: BoardState


class Board:
    def __init__(self, layout: Layout, *, log_ops: bool = False, domain: PowerDomain | None = None,
                 flash_factory: FlashFactory | None = None) -> None:
        layout.validate()
        self.layout = layout
        self.domain = domain if domain is not None else PowerDomain(log=log_ops)
        make = flash_factory or _preset_flash
        self.flashes: dict[str, NorFlash] = {dev.name: make(dev, self.domain) for dev in layout.devices}
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
        return BoardSnapshot(self.domain.snapshot(), self.state.copy())

    def restore(self, snapshot: BoardSnapshot) -> None:
        self.domain.restore(snapshot.flash)
        self.state = snapshot.state.copy()


def _preset_flash(device: FlashDevice, domain: PowerDomain) -> NorFlash:
    return new_flash(device.flash_part(), domain, name=device.name)

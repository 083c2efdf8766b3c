"""Shared helpers of the DFU tests: a dapboot-f103 board with its virtual DFU device, clock and host.

A plain module imported by name (a second conftest.py would shadow tests/conftest.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from mcuota.boot.board import Board, FlashFactory
from mcuota.boot.dapboot import DapbootStrategy
from mcuota.boot.presets import get_layout
from mcuota.boot.strategy import BootAction
from mcuota.boot.verdict import emulate
from mcuota.flash import NorFlash
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.transport.dfu import DAPBOOT, DfuHost, Profile, VirtualClock, VirtualDapboot

LAYOUT = "dapboot-f103"
APP = 0x08002000


def payload(version: str = "2.0.0") -> bytes:
    return sample_path(LAYOUT, version, "bin").read_bytes()


@dataclass
class Rig:
    board: Board
    device: VirtualDapboot
    clock: VirtualClock
    host: DfuHost

    @property
    def flash(self) -> NorFlash:
        return self.board.flashes["internal"]

    def reconnect(self) -> None:
        """A new host on the device as it enumerates now (after a detach or a reset)."""
        self.host = DfuHost(self.device, self.device.info, sleep=self.clock.sleep)

    def to_dfu_mode(self) -> None:
        """Detach a running application so that the bootloader takes downloads (as dfu-util does)."""
        self.reconnect()
        if self.device.info.runtime:
            self.host.detach()
            self.reconnect()

    def power_up(self) -> None:
        """Power returns after a cut: the board boots and a new device object enumerates."""
        self.board.power_cycle()
        self.device = VirtualDapboot(self.board, clock=self.clock, profile=self.device.profile)
        self.reconnect()


def rig(profile: Profile = DAPBOOT, installed: str | None = None,
        flash_factory: FlashFactory | None = None) -> Rig:
    """A board in DFU mode (blank) or running the sample ``installed`` release."""
    board = Board(get_layout(LAYOUT), flash_factory=flash_factory)
    if installed is not None:
        strategy = DapbootStrategy(board.layout)
        release = strategy.make_release(payload(installed), ImageVersion.parse(installed))
        strategy.factory_install(board, release)
    clock = VirtualClock()
    device = VirtualDapboot(board, clock=clock, profile=profile)
    return Rig(board, device, clock, DfuHost(device, device.info, sleep=clock.sleep))


def settle(r: Rig) -> None:
    """Let the device finish what time alone finishes (its self-reset after manifestation)."""
    r.clock.sleep(1.0)
    r.device.advance()


def runs_version(r: Rig) -> str | None:
    """The version the application prints if dapboot starts it, else None."""
    settle(r)
    result = r.device.boot_result
    if result.action is not BootAction.JUMP:
        return None
    app = r.board.layout.partition("app")
    return emulate(r.flash.read(app.address, app.size), APP, r.board.layout).version

"""Shared helpers of the bootloader tests: boards with a strategy and the shipped sample releases.

A plain module, imported by name: a second conftest.py here would shadow tests/conftest.py.
"""

from __future__ import annotations

from mcuota.boot.board import Board
from mcuota.boot.layout import FlashDevice
from mcuota.boot.presets import get_layout
from mcuota.boot.registry import strategy_for
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.flash import NorFlash, PowerDomain
from mcuota.flash.nor import BytesLike
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path


def sample_release(strategy: Strategy, version: str) -> ReleaseImage:
    """The shipped sample application of ``version`` built for the strategy's layout."""
    payload = sample_path(strategy.layout.sample_target, version).read_bytes()
    return strategy.make_release(payload, ImageVersion.parse(version))


def installed(layout_name: str, version: str = "1.0.0") -> tuple[Strategy, Board, ReleaseImage]:
    """A board of ``layout_name`` as it leaves production with the sample ``version`` installed."""
    layout = get_layout(layout_name)
    strategy = strategy_for(layout)
    board = Board(layout)
    old = sample_release(strategy, version)
    strategy.factory_install(board, old)
    return strategy, board, old


def runs(board: Board, result: BootResult, release: ReleaseImage) -> bool:
    """The bootloader jumped to the application and the release's bytes are there."""
    if result.action is not BootAction.JUMP or result.address != board.layout.app_address:
        return False
    flash, part = next((board.flashes[p.device], p) for p in board.layout.partitions
                       if p.address <= board.layout.app_address < p.end)
    assert part.address <= board.layout.app_address
    return flash.read(board.layout.app_address, len(release.payload)) == release.payload


class MarginalFlash(NorFlash):
    """A flash device with one weak cell: while ``failures`` lasts, programming it leaves ``bit`` set
    (the cell does not take the charge), which only a read-back check can notice."""

    def __init__(self, device: FlashDevice, domain: PowerDomain, *, address: int, bit: int) -> None:
        super().__init__(device.flash_part(), domain, name=device.name)
        self.weak = address
        self.bit = bit
        self.failures = 0

    def program(self, address: int, data: BytesLike) -> None:
        if self.failures and address <= self.weak < address + len(data):
            self.failures -= 1
            data = bytearray(data)
            data[self.weak - address] |= self.bit
        super().program(address, data)


def weak_board(layout_name: str, payload: bytes, device: str = "internal") -> tuple[Board, MarginalFlash]:
    """A board whose ``device`` has a weak cell under the first non-0xFF byte of ``payload`` once it
    is installed at the application address (at a bit that byte has programmed)."""
    layout = get_layout(layout_name)
    offset = next(i for i, byte in enumerate(payload) if byte != 0xFF)
    bit = next(1 << b for b in range(8) if not payload[offset] >> b & 1)
    address = layout.app_address + offset

    def make(dev: FlashDevice, domain: PowerDomain) -> NorFlash:
        if dev.name == device:
            return MarginalFlash(dev, domain, address=address, bit=bit)
        return NorFlash(dev.flash_part(), domain, name=dev.name)

    board = Board(layout, flash_factory=make)
    flash = board.flashes[device]
    assert isinstance(flash, MarginalFlash)
    return board, flash

"""MCUboot swap-offset on the three boards: the update staged one sector into the secondary slot, every
operation cut and torn, the revert that puts it back there, confirm, and the wrong-address check."""

from __future__ import annotations

import pytest
from mcuboot_helpers import BOARDS, device, layout_of

from mcuota.boot.mcuboot import McubootSwapOffset
from mcuota.boot.registry import strategy_class
from mcuota.boot.strategy import BootAction
from mcuota.boot.verdict import Outcome

MODE = "swap-offset"


def test_registered_under_its_name() -> None:
    assert strategy_class("mcuboot-swap-offset") is McubootSwapOffset


@pytest.mark.parametrize("board", BOARDS)
def test_clean_update_from_the_second_sector(board: str) -> None:
    dev = device(layout_of(MODE, board))
    strategy, board_ = dev.strategy, dev.board
    strategy.stage(board_, dev.new)
    secondary = board_.flashes[strategy.secondary.device]
    new = strategy.image_bytes(dev.new)
    assert secondary.read(strategy.secondary.address + strategy.sector, len(new)) == new
    assert secondary.is_erased(strategy.secondary.address, strategy.sector)
    result = dev.settle()
    assert result.action is BootAction.JUMP
    assert dev.outcome(result) is Outcome.NEW
    assert dev.version_printed(result) == "2.0.0"
    assert any("Starting swap using offset algorithm" in line for line in dev.log)
    old = strategy.image_bytes(dev.old)
    assert secondary.read(strategy.secondary.address, len(old)) == old  # the old image, at offset 0


def test_revert_puts_the_rejected_image_back_one_sector_in() -> None:
    dev = device(layout_of(MODE, "nrf52840"))
    strategy, board = dev.strategy, dev.board
    strategy.stage(board, dev.new)
    assert dev.outcome(dev.boot()) is Outcome.NEW
    result = dev.boot()
    assert dev.outcome(result) is Outcome.OLD
    assert any("Swap type: revert" in line for line in result.log)
    secondary = board.flashes[strategy.secondary.device]
    new = strategy.image_bytes(dev.new)
    assert secondary.read(strategy.secondary.address + strategy.sector, len(new)) == new
    assert dev.outcome(dev.boot()) is Outcome.OLD
    # staging it again (after a fix, say) works from the same place
    strategy.stage(board, dev.new)
    assert dev.outcome(dev.settle()) is Outcome.NEW


def test_confirm_makes_the_test_image_permanent() -> None:
    dev = device(layout_of(MODE, "psoc6"))
    dev.strategy.stage(dev.board, dev.new)
    assert dev.outcome(dev.boot()) is Outcome.NEW
    dev.strategy.confirm(dev.board)
    for _ in range(3):
        assert dev.outcome(dev.boot()) is Outcome.NEW


def test_image_uploaded_to_the_first_sector_is_refused() -> None:
    """bootutil's "wrong upload address?" check: a header at the secondary's start means the image is
    not where swap-offset expects it."""
    dev = device(layout_of(MODE, "f407"))
    strategy, board = dev.strategy, dev.board
    strategy.stage(board, dev.new)
    secondary = board.flashes[strategy.secondary.device]
    new = strategy.image_bytes(dev.new)
    secondary.program(strategy.secondary.address, new + bytes(-len(new) % secondary.write_unit))
    result = dev.boot()
    assert dev.outcome(result) is Outcome.OLD
    assert any("wrong upload address" in line for line in result.log)

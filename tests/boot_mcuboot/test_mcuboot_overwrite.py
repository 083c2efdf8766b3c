"""MCUboot overwrite-only on the three boards: install, every operation cut and torn, no revert, no
downgrade, and what is left of the secondary slot."""

from __future__ import annotations

import pytest
from mcuboot_helpers import BOARDS, device, layout_of, mcuboot, release, with_history

from mcuota.boot.mcuboot import McubootOverwrite
from mcuota.boot.registry import strategy_class
from mcuota.boot.strategy import BootAction
from mcuota.boot.sweep import sweep
from mcuota.boot.verdict import Outcome
from mcuota.errors import UsageError

MODE = "overwrite"


def test_registered_under_its_name() -> None:
    assert strategy_class("mcuboot-overwrite") is McubootOverwrite
    assert not McubootOverwrite(layout_of(MODE, "f407")).can_revert


@pytest.mark.parametrize("board", BOARDS)
def test_clean_install(board: str) -> None:
    dev = device(layout_of(MODE, board))
    strategy = dev.strategy
    strategy.stage(dev.board, dev.new)
    ops = dev.board.domain.op_count
    result = dev.boot()  # no confirm needed: the next boots change nothing
    assert result.action is BootAction.JUMP
    assert dev.outcome(result) is Outcome.NEW
    assert dev.version_printed(result) == "2.0.0"
    assert any("Image upgrade secondary slot -> primary slot" in line for line in result.log)
    assert dev.board.domain.op_count > ops
    ops = dev.board.domain.op_count
    assert dev.outcome(dev.boot()) is Outcome.NEW
    assert dev.board.domain.op_count == ops
    secondary = dev.board.flashes[strategy.secondary.device]
    geo = strategy.secondary
    assert secondary.is_erased(geo.address, geo.sector)  # header sector
    assert secondary.is_erased(geo.end - geo.trailer.span, geo.trailer.span)


@pytest.mark.parametrize("board", BOARDS)
def test_every_operation_cut_and_torn(board: str) -> None:
    layout = layout_of(MODE, board)
    strategy = mcuboot(layout)
    report = sweep(layout, release(strategy, "1.0.0"), release(strategy, "2.0.0"), torn=True,
                   strategy=strategy, workers=1)
    assert report.ok, report.failures[:3]
    assert report.clean is Outcome.NEW
    # from the request's magic on, every cut ends in the new image
    assert report.commit_op is not None
    assert report.commit_op < report.flash_ops


def test_sweep_from_a_board_that_already_updated_once() -> None:
    layout = layout_of(MODE, "nrf52840")
    strategy = mcuboot(layout)
    seasoned = with_history(strategy, release(strategy, "1.0.0"))
    report = sweep(layout, release(strategy, "1.1.0"), release(strategy, "2.0.0"), torn=True,
                   strategy=seasoned, workers=1)
    assert report.ok, report.failures[:3]


def test_large_image() -> None:
    layout = layout_of(MODE, "f407")
    strategy = mcuboot(layout)
    report = sweep(layout, release(strategy, "1.0.0", target="large-f407"),
                   release(strategy, "2.0.0", target="large-f407"), torn=True, strategy=strategy, workers=1)
    assert report.ok, report.failures[:3]


def test_no_revert_and_confirm_is_a_no_op() -> None:
    dev = device(layout_of(MODE, "f407"))
    dev.strategy.stage(dev.board, dev.new)
    assert dev.outcome(dev.boot()) is Outcome.NEW
    ops = dev.board.domain.op_count
    dev.strategy.confirm(dev.board)
    assert dev.board.domain.op_count == ops
    with pytest.raises(UsageError, match="cannot revert"):
        sweep(dev.strategy.layout, dev.old, dev.new, revert=True, strategy=dev.strategy)


def test_lower_version_is_refused_by_default() -> None:
    """Overwrite-only has no way back, so it refuses downgrades unless the layout says otherwise."""
    dev = device(layout_of(MODE, "nrf52840"), "2.0.0", "1.1.0")
    dev.strategy.stage(dev.board, dev.new)
    result = dev.boot()
    assert dev.outcome(result) is Outcome.OLD
    assert any("downgrade refused" in line for line in result.log)
    geo = dev.strategy.secondary
    assert dev.board.flashes[geo.device].is_erased(geo.address, geo.size)
    # the same version again is not a downgrade: it is installed (over itself)
    dev.strategy.stage(dev.board, dev.old)
    result = dev.boot()
    assert dev.outcome(result) is Outcome.OLD
    assert any("Image upgrade" in line for line in result.log)

"""Exhaustive power-cut sweeps shared by the three swap modes: every flash operation of the update (and
of a revert) cut before it runs and torn half-way, on every board, and once more from a board whose
trailers already hold a finished swap."""

from __future__ import annotations

import pytest
from mcuboot_helpers import BOARDS, layout_of, mcuboot, release, with_history

from mcuota.boot.sweep import sweep
from mcuota.boot.verdict import Outcome

SWAP_MODES = ("swap-move", "swap-offset", "swap-scratch")
# The board each mode's "already swapped once" sweep runs on (one per mode keeps the suite fast).
SEASONED_BOARD = {"swap-move": "nrf52840", "swap-offset": "f407", "swap-scratch": "nrf52840"}


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("mode", SWAP_MODES)
def test_every_operation_cut_and_torn(mode: str, board: str) -> None:
    layout = layout_of(mode, board)
    strategy = mcuboot(layout)
    report = sweep(layout, release(strategy, "1.0.0"), release(strategy, "2.0.0"), torn=True,
                   strategy=strategy, workers=1)
    assert report.ok, report.failures[:3]
    assert report.clean is Outcome.NEW
    assert report.outcomes["bricked"] == report.outcomes["wrong"] == 0
    assert report.commit_op == report.flash_ops  # the application's confirm is the point of no return


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("mode", SWAP_MODES)
def test_unconfirmed_image_is_reverted_with_every_operation_cut_and_torn(mode: str, board: str) -> None:
    layout = layout_of(mode, board)
    strategy = mcuboot(layout)
    report = sweep(layout, release(strategy, "1.0.0"), release(strategy, "2.0.0"), torn=True, revert=True,
                   strategy=strategy, workers=1)
    assert report.ok, report.failures[:3]
    assert report.clean is Outcome.OLD
    assert report.outcomes["new"] == 0


@pytest.mark.parametrize("mode", SWAP_MODES)
def test_sweep_from_a_board_that_already_swapped_once(mode: str) -> None:
    """The primary trailer then holds a finished journal, which the next swap has to erase."""
    layout = layout_of(mode, SEASONED_BOARD[mode])
    strategy = mcuboot(layout)
    seasoned = with_history(strategy, release(strategy, "1.0.0"))
    for revert in (False, True):
        report = sweep(layout, release(strategy, "1.1.0"), release(strategy, "2.0.0"), torn=True,
                       revert=revert, strategy=seasoned, workers=1)
        assert report.ok, report.failures[:3]

"""MCUboot swap-scratch on the three boards, and on small slots where the images reach the trailer
sectors, so that the topmost group carries both slot trailers through the scratch area."""

from __future__ import annotations

import dataclasses

import pytest
from mcuboot_helpers import (
    BOARDS,
    device,
    layout_of,
    mcuboot,
    release,
    torn_trailer_erases,
    with_history,
)

from mcuota.boot.layout import Layout, Partition
from mcuota.boot.mcuboot import McubootSwapScratch
from mcuota.boot.registry import strategy_class
from mcuota.boot.strategy import BootAction
from mcuota.boot.sweep import sweep
from mcuota.boot.verdict import Outcome
from mcuota.errors import UsageError
from mcuota.image.mcuboot import SwapType

MODE = "swap-scratch"
KB = 1024


def small_slots(scratch_sectors: int) -> Layout:
    """nRF52840 slots of two 4 KB pages: the 6.5 KB sample reaches the page holding the trailer."""
    base = layout_of(MODE, "nrf52840")
    return dataclasses.replace(
        base, name=f"mcuboot-swap-scratch-small-{scratch_sectors}",
        partitions=(Partition("bootloader", "internal", 0x0, 48 * KB),
                    Partition("primary", "internal", 0xC000, 8 * KB),
                    Partition("secondary", "internal", 0xE000, 8 * KB),
                    Partition("scratch", "internal", 0x10000, scratch_sectors * 4 * KB)))


def test_registered_under_its_name() -> None:
    assert strategy_class("mcuboot-swap-scratch") is McubootSwapScratch


@pytest.mark.parametrize("board", BOARDS)
def test_clean_update_through_the_scratch_area(board: str) -> None:
    dev = device(layout_of(MODE, board))
    result = dev.update()
    assert result.action is BootAction.JUMP
    assert dev.outcome(result) is Outcome.NEW
    assert dev.version_printed(result) == "2.0.0"
    assert any("Starting swap using scratch algorithm" in line for line in dev.log)
    strategy = dev.strategy
    assert strategy.scratch is not None
    scratch = dev.board.flashes[strategy.scratch.device]
    assert scratch.is_erased(strategy.scratch.address, strategy.scratch.size)  # left clean


@pytest.mark.parametrize(("scratch_sectors", "groups"), [(1, 2), (2, 1)])
def test_groups_holding_the_trailers(scratch_sectors: int, groups: int) -> None:
    layout = small_slots(scratch_sectors)
    strategy = mcuboot(layout)
    assert isinstance(strategy, McubootSwapScratch)
    old, new = release(strategy, "1.0.0"), release(strategy, "1.0.1")
    size = strategy.round_up(max(len(strategy.image_bytes(old)), len(strategy.image_bytes(new))))
    found = strategy.units(size)
    assert not isinstance(found, str)
    units, trailer_unit = found
    assert trailer_unit
    assert len(units) == groups
    assert strategy.plan(SwapType.TEST, size).pre == 3
    for revert in (False, True):
        report = sweep(layout, old, new, torn=True, revert=revert, strategy=strategy, workers=1)
        assert report.ok, report.failures[:3]
        assert report.clean is (Outcome.OLD if revert else Outcome.NEW)
    seasoned = with_history(strategy, release(strategy, "1.0.0"))
    report = sweep(layout, new, release(strategy, "1.0.0"), torn=True, strategy=seasoned, workers=1)
    assert report.ok, report.failures[:3]


@pytest.mark.parametrize("revert", [False, True])
def test_torn_erases_of_the_trailer_groups(revert: bool) -> None:
    dev = device(small_slots(1), "1.0.0", "1.0.1", history="1.0.0")
    report = torn_trailer_erases(dev, revert=revert)
    assert report.runs > 1000
    assert not report.failures, report.failures[:5]


def test_slots_of_different_sizes_are_refused() -> None:
    base = small_slots(1)
    layout = dataclasses.replace(base, partitions=(
        base.partitions[0], base.partitions[1], Partition("secondary", "internal", 0xE000, 4 * KB),
        base.partitions[3]))
    with pytest.raises(UsageError, match="slots of one size"):
        McubootSwapScratch(layout)

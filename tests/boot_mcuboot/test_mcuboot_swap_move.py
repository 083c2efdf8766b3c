"""MCUboot swap-move on the three boards: clean update, every operation cut and torn, revert, confirm,
and the 230 KB image that reaches into the primary trailer's sector."""

from __future__ import annotations

import dataclasses

import pytest
from mcuboot_helpers import BOARDS, device, layout_of, mcuboot, release

from mcuota.boot.layout import Partition
from mcuota.boot.mcuboot import McubootSwapMove
from mcuota.boot.registry import strategy_class
from mcuota.boot.strategy import BootAction
from mcuota.boot.sweep import sweep
from mcuota.boot.verdict import Outcome
from mcuota.image.mcuboot import SwapType, decode_trailer
from mcuota.image.version import ImageVersion

MODE = "swap-move"


def test_registered_under_its_name() -> None:
    assert strategy_class("mcuboot-swap-move") is McubootSwapMove
    assert McubootSwapMove(layout_of(MODE, "f407")).can_revert


@pytest.mark.parametrize("board", BOARDS)
def test_clean_update_swaps_and_the_new_image_boots(board: str) -> None:
    dev = device(layout_of(MODE, board))
    result = dev.update()
    assert result.action is BootAction.JUMP
    assert dev.outcome(result) is Outcome.NEW
    assert dev.version_printed(result) == "2.0.0"
    assert any("Starting swap using move algorithm" in line for line in dev.log)
    # the old image went to the secondary slot, at its start
    strategy = dev.strategy
    flash = dev.board.flashes[strategy.secondary.device]
    old = strategy.image_bytes(dev.old)
    assert flash.read(strategy.secondary.address, len(old)) == old
    # the primary trailer is what bootutil leaves: magic, copy_done, image_ok (confirmed by the app)
    primary = dev.board.read("primary")
    state = decode_trailer(primary, strategy.primary.trailer)
    assert (state.magic.value, state.copy_done.value, state.image_ok.value) == ("good", "set", "set")
    assert state.swap_type is SwapType.TEST
    assert dev.board.read("secondary")[-strategy.secondary.trailer.span:].count(0xFF) == \
        strategy.secondary.trailer.span


def test_revert_then_confirm_semantics() -> None:
    dev = device(layout_of(MODE, "f407"))
    strategy, board = dev.strategy, dev.board
    strategy.stage(board, dev.new)
    first = dev.boot()
    assert dev.outcome(first) is Outcome.NEW
    assert any("Swap type: test" in line for line in first.log)
    second = dev.boot()  # the test image never confirmed: the watchdog reset reverts it
    assert dev.outcome(second) is Outcome.OLD
    assert any("Swap type: revert" in line for line in second.log)
    third = dev.boot()
    assert dev.outcome(third) is Outcome.OLD
    assert not any("Starting swap" in line for line in third.log)
    # the reverted-to image is marked ok: nothing more happens, and confirming touches no flash
    ops = board.domain.op_count
    strategy.confirm(board)
    assert board.domain.op_count == ops


def test_confirm_makes_the_test_image_permanent() -> None:
    dev = device(layout_of(MODE, "nrf52840"))
    dev.strategy.stage(dev.board, dev.new)
    assert dev.outcome(dev.boot()) is Outcome.NEW
    dev.strategy.confirm(dev.board)
    for _ in range(3):
        result = dev.boot()
        assert dev.outcome(result) is Outcome.NEW
        assert not any("Starting swap" in line for line in result.log)


def test_permanent_request_needs_no_confirm() -> None:
    dev = device(layout_of(MODE, "psoc6"))
    dev.strategy.stage(dev.board, dev.new, permanent=True)
    for _ in range(3):
        assert dev.outcome(dev.boot()) is Outcome.NEW
    state = decode_trailer(dev.board.read("primary"), dev.strategy.primary.trailer)
    assert state.swap_type is SwapType.PERM
    assert state.image_ok.value == "set"


def test_status_records_follow_bootutil_layout() -> None:
    """One move record per sector from entry 0, then two swap records per sector from max_sectors."""
    dev = device(layout_of(MODE, "nrf52840"))
    strategy = dev.strategy
    dev.strategy.stage(dev.board, dev.new)
    dev.boot()
    trailer = dev.board.read("primary")[-strategy.primary.trailer.size:]
    align = strategy.options.align
    sectors = strategy.sectors_for(strategy.round_up(max(len(strategy.image_bytes(dev.old)),
                                                         len(strategy.image_bytes(dev.new)))))
    records = [trailer[i * align] for i in range(3 * strategy.options.max_sectors)]
    assert records[:sectors] == [1] * sectors
    assert records[sectors:128] == [0xFF] * (128 - sectors)
    assert records[128:128 + 2 * sectors] == [1, 2] * sectors
    assert set(records[128 + 2 * sectors:]) == {0xFF}


def test_large_image_reaching_the_trailer_sector() -> None:
    """The ~230 KB build spans two of the three 128 KB sectors: moving it up puts data in the sector of
    the primary trailer, which bootutil refuses and mcuota handles before its journal exists."""
    layout = layout_of(MODE, "f407")
    strategy = mcuboot(layout)
    old = release(strategy, "1.0.0", target="large-f407")
    new = release(strategy, "2.0.0", target="large-f407")
    plan = strategy.plan(SwapType.TEST, strategy.round_up(len(strategy.image_bytes(new))))
    assert plan.pre == 1
    report = sweep(layout, old, new, torn=True, strategy=strategy, workers=1)
    assert report.ok, report.failures[:3]
    assert report.clean is Outcome.NEW
    assert report.flash_ops > 600


def test_image_without_a_spare_sector_is_refused() -> None:
    """On the F407 slots of 3 x 128 KB, an image over 256 KB - trailer leaves no sector to move into."""
    layout = layout_of(MODE, "f407")
    strategy = mcuboot(layout)
    dev = device(layout)
    payload = bytearray((strategy.primary.trailer_offset - strategy.sector) + 512)
    payload[:0x2000] = (dev.new.payload * 2)[:0x2000]
    big = strategy.make_release(bytes(payload), ImageVersion(3, 0, 0))
    strategy.stage(dev.board, big)
    result = dev.boot()
    assert dev.outcome(result) is Outcome.OLD
    assert any("needs one free sector" in line for line in result.log)
    assert dev.board.read("secondary").count(0xFF) == strategy.secondary.size  # scrambled


def test_primary_one_sector_larger_than_the_secondary() -> None:
    """MCUboot's preferred swap-move layout (primary = secondary + 1 sector) works, and an image that
    would share the secondary's trailer sector is refused: the request there is erased before any data
    moves, so image data in that sector would be lost."""
    base = layout_of(MODE, "nrf52840")
    layout = dataclasses.replace(base, name="mcuboot-swap-move-optimal", partitions=(
        base.partitions[0], Partition("primary", "internal", 0xC000, 0x4000),
        Partition("secondary", "internal", 0x10000, 0x3000)))
    strategy = mcuboot(layout)
    for revert in (False, True):
        report = sweep(layout, release(strategy, "1.0.0"), release(strategy, "1.0.1"), torn=True,
                       revert=revert, strategy=strategy, workers=1)
        assert report.ok, report.failures[:3]
    dev = device(layout, "1.0.0", "1.0.1")
    payload = dev.new.payload + bytes(9000 - len(dev.new.payload))
    wide = strategy.make_release(payload, ImageVersion(1, 2, 0))
    assert len(strategy.image_bytes(wide)) <= strategy.secondary.trailer_offset
    strategy.stage(dev.board, wide)
    result = dev.boot()
    assert dev.outcome(result) is Outcome.OLD
    assert any("in the sectors below its trailer" in line for line in result.log)

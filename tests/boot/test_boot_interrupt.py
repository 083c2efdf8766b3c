"""Interrupt DFU cookbook chain: sweep, boot counter -> DFU, mark-stable, refused images, and the
updater path that rewrites the loader."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from boot_helpers import installed, runs, sample_release

from mcuota.boot.board import Board
from mcuota.boot.interrupt import CHANNEL_LOADER, InterruptStrategy
from mcuota.boot.presets import get_layout
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage
from mcuota.boot.sweep import sweep
from mcuota.errors import UsageError
from mcuota.flash import FaultPlan, PowerLoss, count_ops
from mcuota.image.interrupt import HEADER_SIZE, ImageType, parse_interrupt_header
from mcuota.image.version import ImageVersion

LAYOUT = "interrupt-f429"


def _installed() -> tuple[InterruptStrategy, Board, ReleaseImage]:
    strategy, board, old = installed(LAYOUT)
    assert isinstance(strategy, InterruptStrategy)
    return strategy, board, old


def _boot(strategy: InterruptStrategy, board: Board, *, stable: bool = True) -> BootResult:
    """A warm reset and a boot; an application that starts marks itself stable unless told not to."""
    board.warm_reset()
    result = strategy.boot(board)
    if stable and result.action is BootAction.JUMP:
        strategy.confirm(board)
    return result


@pytest.mark.parametrize("torn", [False, True])
def test_sweep_never_bricks(torn: bool) -> None:
    strategy, _board, old = _installed()
    new = sample_release(strategy, "2.0.0")
    report = sweep(get_layout(LAYOUT), old, new, torn=torn, seed=2, recovery_share=0.5)
    assert report.ok, report.failures[:3]
    assert report.clean.value == "new"
    assert report.outcomes["bricked"] == report.outcomes["wrong"] == 0
    assert report.outcomes["new"] > report.outcomes["old"]
    assert report.commit_source.startswith("inferred")
    assert report.commit_op is not None
    assert report.commit_op < report.flash_ops


def test_an_app_that_never_marks_itself_stable_ends_in_dfu_mode() -> None:
    strategy, board, old = _installed()
    limit = int(get_layout(LAYOUT).options["max_boot_count"])
    for boot_number in range(1, limit + 1):
        result = _boot(strategy, board, stable=False)
        assert runs(board, result, old)
        assert board.state.noinit["boot_counter"] == boot_number
    result = _boot(strategy, board, stable=False)
    assert result.action is BootAction.STAY
    assert result.recoverable, "DFU mode can still take an image"
    assert any(f"boot counter reached {limit}" in line for line in result.log)
    assert board.state.noinit["boot_counter"] == 0


def test_mark_stable_keeps_the_app_running_and_a_power_cut_resets_the_shared_ram() -> None:
    strategy, board, old = _installed()
    for _ in range(10):
        result = _boot(strategy, board)
        assert runs(board, result, old)
    board.state.noinit["boot_counter"] = 2
    board.power_cycle()
    assert "boot_counter" not in board.state.noinit
    result = strategy.boot(board)
    assert runs(board, result, old)
    assert board.state.noinit["boot_counter"] == 1


def test_dfu_flag_survives_a_warm_reset_but_not_a_power_cut() -> None:
    strategy, board, old = _installed()
    new = sample_release(strategy, "1.1.0")
    strategy.stage(board, new)
    board.power_cycle()  # the reset after "dfu-mode" turned into a power cut: the request is lost
    assert runs(board, strategy.boot(board), old)
    strategy.stage(board, new)
    result = _boot(strategy, board)
    assert runs(board, result, new)
    assert CHANNEL_LOADER not in board.state.host, "the host stops offering after success"


def _refused(strategy: InterruptStrategy, board: Board, data: bytes, old: ReleaseImage) -> BootResult:
    slot2_before = board.read("slot2", 0, 64 * 1024)
    strategy.stage(board, dataclasses.replace(old, data=data))
    result = _boot(strategy, board)
    assert runs(board, result, old)
    assert board.read("slot2", 0, 64 * 1024) == slot2_before
    return result


def test_wrong_magic_oversized_downgrade_and_foreign_images_are_refused_before_erasing() -> None:
    strategy, board, _old = _installed()
    current = sample_release(strategy, "1.1.0")
    strategy.stage(board, current)
    assert runs(board, _boot(strategy, board), current)
    good = sample_release(strategy, "2.0.0").data
    slot2 = get_layout(LAYOUT).partition("slot2")

    result = _refused(strategy, board, struct.pack("<H", 0xBEEF) + good[2:], current)
    assert any("bad magic" in line for line in result.log)

    header = parse_interrupt_header(good)
    huge = dataclasses.replace(header, data_size=slot2.size)
    result = _refused(strategy, board, huge.pack() + good[HEADER_SIZE:], current)
    assert any("does not fit slot2" in line for line in result.log)

    result = _refused(strategy, board, sample_release(strategy, "1.0.0").data, current)
    assert any("downgrade from 1.1.0 to 1.0.0" in line for line in result.log)

    elsewhere = dataclasses.replace(header, vector_addr=slot2.address + 0x200)
    result = _refused(strategy, board, elsewhere.pack() + good[HEADER_SIZE:], current)
    assert any("linked for another slot" in line for line in result.log)


def test_a_tampered_image_is_never_started_and_the_loader_waits_in_dfu() -> None:
    strategy, board, _old = _installed()
    good = sample_release(strategy, "2.0.0")
    data = bytearray(good.data)
    data[0x80 + 500] ^= 0x10
    strategy.stage(board, dataclasses.replace(good, data=bytes(data)))
    result = _boot(strategy, board)
    assert result.action is BootAction.STAY
    assert result.recoverable
    assert any("does not match its header" in line for line in result.log)
    with pytest.raises(Exception, match="bad magic"):  # the header was never committed
        parse_interrupt_header(board.read("slot2", 0, HEADER_SIZE))
    strategy.offer(board, good)
    assert runs(board, _boot(strategy, board), good), "DFU mode takes the next good image"


def test_without_a_loader_the_bootloader_starts_slot2_directly() -> None:
    strategy, board, old = _installed()
    flash, slot1 = board.flash_of("slot1")
    flash.program(slot1.address, bytes(HEADER_SIZE))  # invalidated
    result = _boot(strategy, board)
    assert runs(board, result, old)
    assert any("starting slot 2 directly" in line for line in result.log)


def test_a_loader_is_only_written_by_the_updater() -> None:
    strategy, board, _old = _installed()
    with pytest.raises(UsageError, match="install an updater"):
        strategy.stage(board, strategy.make_loader(ImageVersion(2, 0, 0)))


def _updater_running(strategy: InterruptStrategy, board: Board) -> None:
    strategy.stage(board, strategy.make_updater(ImageVersion(1, 0, 0)))
    result = _boot(strategy, board)
    assert result.action is BootAction.JUMP
    assert result.slot == "slot2"
    assert "updater 1.0.0 running" in result.reason


def _loader_version(board: Board) -> ImageVersion:
    header = parse_interrupt_header(board.read("slot1", 0, HEADER_SIZE))
    assert header.image_type == ImageType.LOADER
    return header.version


def test_the_updater_replaces_the_loader_and_the_new_loader_restores_the_app() -> None:
    strategy, board, _old = _installed()
    app = sample_release(strategy, "2.0.0")
    _updater_running(strategy, board)
    strategy.offer(board, app)
    strategy.stage(board, strategy.make_loader(ImageVersion(2, 0, 0)))
    assert _loader_version(board) == ImageVersion(2, 0, 0)
    result = _boot(strategy, board)
    assert runs(board, result, app)
    assert any("the application requested DFU mode" in line for line in result.log)


def test_a_power_cut_anywhere_in_the_loader_rewrite_recovers() -> None:
    strategy, board, _old = _installed()
    app = sample_release(strategy, "2.0.0")
    loader = strategy.make_loader(ImageVersion(2, 0, 0))
    _updater_running(strategy, board)
    strategy.offer(board, app)
    start = board.snapshot()
    total = count_ops(board.domain, lambda: strategy.stage(board, loader))
    assert total > 3
    for op in range(1, total + 1):
        for plan in (FaultPlan.cut_before(op), FaultPlan.torn_at(op, seed=op)):
            board.restore(start)
            board.domain.arm(plan)
            with pytest.raises(PowerLoss):
                strategy.stage(board, loader)
            board.power_cycle()
            result = strategy.boot(board)
            if result.slot == "slot2" and "updater" in result.reason:  # cut before slot 1 was touched
                assert _loader_version(board) == ImageVersion(1, 0, 0)
                strategy.stage(board, loader)
                result = _boot(strategy, board)
            assert runs(board, result, app), f"{plan}: {result.reason} {result.log}"
            assert _loader_version(board) == ImageVersion(2, 0, 0)

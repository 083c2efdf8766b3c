"""Gizwits copy-with-flag: the sweep, the MD5 checks on both sides, and the bounded retry."""

from __future__ import annotations

import dataclasses

import pytest
from boot_helpers import installed, runs, sample_release, weak_board

from mcuota.boot.board import Board
from mcuota.boot.gizwits import ANNOUNCE_SIZE, GizwitsStrategy
from mcuota.boot.presets import get_layout
from mcuota.boot.strategy import BootAction
from mcuota.boot.sweep import sweep
from mcuota.errors import CapacityError, IntegrityError
from mcuota.flash import count_ops
from mcuota.image.gizwits import FLAG_SIZE, decode_flag

LAYOUT = "gizwits-f103"


@pytest.mark.parametrize("torn", [False, True])
def test_sweep_never_bricks_and_commits_at_the_flag(torn: bool) -> None:
    strategy, board, old = installed(LAYOUT)
    new = sample_release(strategy, "2.0.0")
    stage_ops = count_ops(board.domain, lambda: strategy.stage(board, new))
    report = sweep(get_layout(LAYOUT), old, new, torn=torn, seed=5)
    assert report.ok, report.failures[:3]
    assert report.clean.value == "new"
    assert report.outcomes["bricked"] == report.outcomes["wrong"] == 0
    assert report.cut_points == report.flash_ops
    assert report.torn_points == (report.flash_ops if torn else 0)
    assert sum(report.outcomes.values()) == report.points
    assert report.commit_source == "declared by the strategy"
    assert report.commit_op == stage_ops, "the FLAG status half-word (the stage's last op) is the commit"
    assert report.outcomes["old"] >= report.commit_op, "every cut during staging keeps the old app"
    assert report.erases_total > report.minimum_erases > 0


def test_copy_is_redone_after_a_cut_in_the_middle() -> None:
    strategy, board, _old = installed(LAYOUT)
    new = sample_release(strategy, "1.1.0")
    strategy.stage(board, new)
    start = board.snapshot()
    copy_ops = count_ops(board.domain, lambda: strategy.boot(board))
    board.restore(start)
    from mcuota.flash import FaultPlan, PowerLoss

    board.domain.arm(FaultPlan.cut_before(copy_ops // 2))
    with pytest.raises(PowerLoss):
        strategy.boot(board)
    board.power_cycle()
    flag = decode_flag(board.read("flag", 0, FLAG_SIZE))
    assert flag.pending, "the FLAG survives a cut during the copy"
    result = strategy.boot(board)
    assert runs(board, result, new)
    assert any("copied APP_BAK to APP" in line for line in result.log)


def test_bad_md5_of_app_bak_erases_the_flag_and_boots_the_old_app() -> None:
    strategy, board, old = installed(LAYOUT)
    new = sample_release(strategy, "2.0.0")
    strategy.stage(board, new)
    flash, bak = board.flash_of("app_bak")
    offset = next(i for i in range(0, len(new.payload), 2) if new.payload[i:i + 2] != b"\0\0")
    flash.program(bak.address + offset, b"\0\0")  # a half-word flips to 0 (allowed over data on the F1)
    result = strategy.boot(board)
    assert runs(board, result, old)
    assert any("MD5 of APP_BAK does not match" in line for line in result.log)
    assert not decode_flag(board.read("flag", 0, FLAG_SIZE)).pending


def test_stage_refuses_a_tampered_image_before_writing_the_flag() -> None:
    strategy, board, old = installed(LAYOUT)
    good = sample_release(strategy, "2.0.0")
    data = bytearray(good.data)
    data[ANNOUNCE_SIZE + 200] ^= 0x40
    tampered = dataclasses.replace(good, data=bytes(data))
    with pytest.raises(IntegrityError, match="MD5 of the received image"):
        strategy.stage(board, tampered)
    assert board.flash_of("flag")[0].is_erased(get_layout(LAYOUT).partition("flag").address, FLAG_SIZE)
    assert runs(board, strategy.boot(board), old)


def test_stage_refuses_an_oversized_image_without_writing() -> None:
    strategy, board, old = installed(LAYOUT)
    size = get_layout(LAYOUT).partition("app_bak").size + 2
    oversized = strategy.make_release(b"\x01" * 100, sample_release(strategy, "2.0.0").version)
    header = size.to_bytes(4, "big") + oversized.data[4:ANNOUNCE_SIZE]
    before = board.domain.op_count
    with pytest.raises(CapacityError, match="refuses the transfer"):
        strategy.stage(board, dataclasses.replace(oversized, data=header + b"\x01" * size))
    assert board.domain.op_count == before
    assert runs(board, strategy.boot(board), old)


def test_flag_size_over_the_app_area_is_refused_by_the_bootloader() -> None:
    strategy, board, old = installed(LAYOUT)
    flash, flag = board.flash_of("flag")
    record = bytes.fromhex("eeeeffff") + (60_000).to_bytes(4, "little") + bytes(16)
    flash.program(flag.address, record)
    result = strategy.boot(board)
    assert runs(board, result, old)
    assert any("does not fit APP" in line for line in result.log)


def test_a_copy_that_fails_its_md5_is_retried_with_the_flag_set() -> None:
    strategy = GizwitsStrategy(get_layout(LAYOUT))
    old, new = sample_release(strategy, "1.0.0"), sample_release(strategy, "2.0.0")
    board, flash = weak_board(LAYOUT, new.payload)
    strategy.factory_install(board, old)
    strategy.stage(board, new)
    flash.failures = 1
    result = strategy.boot(board)
    assert runs(board, result, new)
    assert any("MD5 of APP bad after copy attempt 1" in line for line in result.log)
    assert any("(attempt 2)" in line for line in result.log)


def test_a_copy_that_never_verifies_stops_after_the_bounded_retries() -> None:
    strategy = GizwitsStrategy(get_layout(LAYOUT))
    old, new = sample_release(strategy, "1.0.0"), sample_release(strategy, "2.0.0")
    board, flash = weak_board(LAYOUT, new.payload)
    strategy.factory_install(board, old)
    strategy.stage(board, new)
    flash.failures = 1_000
    result = strategy.boot(board)
    attempts = get_layout(LAYOUT).options["max_attempts"]
    assert result.action is BootAction.STAY
    assert not result.recoverable
    assert f"failed its MD5 check {attempts} times" in result.reason
    assert decode_flag(board.read("flag", 0, FLAG_SIZE)).pending, "the FLAG stays for a retry at reset"


def test_no_application_means_the_bootloader_stays() -> None:
    strategy = GizwitsStrategy(get_layout(LAYOUT))
    board = Board(get_layout(LAYOUT))
    result = strategy.boot(board)
    assert result.action is BootAction.STAY
    assert not result.recoverable
    assert "no application at APP" in result.reason

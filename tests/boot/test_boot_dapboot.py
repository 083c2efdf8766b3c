"""dapboot: DFU entry conditions, the held-back stack pointer that makes a cut download invalid, and
what the host refuses."""

from __future__ import annotations

import dataclasses

import pytest
from boot_helpers import installed, runs, sample_release

from mcuota.boot.board import Board
from mcuota.boot.dapboot import BKP_DR1, BUTTON, CHANNEL, CMD_BOOT, DapbootStrategy
from mcuota.boot.presets import get_layout
from mcuota.boot.strategy import BootAction, ReleaseImage
from mcuota.boot.sweep import sweep
from mcuota.flash import FaultPlan, PowerLoss, count_ops
from mcuota.image.dfu import add_dfu_suffix

LAYOUT = "dapboot-f103"


def _installed() -> tuple[DapbootStrategy, Board, ReleaseImage]:
    strategy, board, old = installed(LAYOUT)
    assert isinstance(strategy, DapbootStrategy)
    return strategy, board, old


@pytest.mark.parametrize("torn", [False, True])
def test_sweep_never_bricks(torn: bool) -> None:
    strategy, _board, old = _installed()
    new = sample_release(strategy, "2.0.0")
    report = sweep(get_layout(LAYOUT), old, new, torn=torn, seed=9, recovery_share=0.5)
    assert report.ok, report.failures[:3]
    assert report.clean.value == "new"
    assert report.outcomes["bricked"] == report.outcomes["wrong"] == 0
    assert report.minimum_erases == report.erases_total, "one pass over the pages, nothing copied twice"


def test_backup_register_flag_enters_dfu_once_and_is_cleared() -> None:
    strategy, board, old = _installed()
    board.state.backup[BKP_DR1] = CMD_BOOT
    result = strategy.boot(board)
    assert result.action is BootAction.STAY
    assert result.recoverable
    assert any("BKP_DR1 = 0x4F42" in line for line in result.log)
    assert board.state.backup[BKP_DR1] == 0
    board.power_cycle()  # the backup domain keeps its value (VBAT), now cleared
    assert runs(board, strategy.boot(board), old)


def test_button_held_enters_dfu_every_time() -> None:
    strategy, board, old = _installed()
    board.state.buttons[BUTTON] = True
    for _ in range(2):
        result = strategy.boot(board)
        assert result.action is BootAction.STAY
        assert any("button held" in line for line in result.log)
    board.state.buttons[BUTTON] = False
    assert runs(board, strategy.boot(board), old)


def test_an_invalid_stack_pointer_is_the_only_application_check() -> None:
    strategy = DapbootStrategy(get_layout(LAYOUT))
    board = Board(get_layout(LAYOUT))
    result = strategy.boot(board)
    assert result.action is BootAction.STAY
    assert result.recoverable
    assert "initial SP 0xffffffff" in " ".join(result.log)
    flash, app = board.flash_of("app")
    flash.program(app.address, (0x20005000).to_bytes(4, "little") + b"\xff" * 4)
    assert strategy.boot(board).action is BootAction.JUMP, "an SP in SRAM is all it takes"


def test_a_cut_download_never_leaves_a_startable_half_image() -> None:
    strategy, board, _old = _installed()
    new = sample_release(strategy, "2.0.0")
    strategy.stage(board, new)
    start = board.snapshot()
    total = count_ops(board.domain, lambda: strategy.boot(board))
    for op in range(1, total):  # every op but the manifestation write
        board.restore(start)
        board.domain.arm(FaultPlan.torn_at(op, seed=op))
        with pytest.raises(PowerLoss):
            strategy.boot(board)
        board.power_cycle()
        offered = board.state.host.pop(CHANNEL)
        result = strategy.boot(board)
        assert result.action is BootAction.STAY, f"op {op}: a half-written image was started"
        assert result.recoverable
        board.state.host[CHANNEL] = offered
        assert runs(board, strategy.boot(board), new), "the host's next download completes it"


def test_the_host_refuses_a_corrupted_dfu_file_without_touching_flash() -> None:
    strategy, board, old = _installed()
    good = sample_release(strategy, "2.0.0")
    data = bytearray(good.data)
    data[100] ^= 0x01
    strategy.stage(board, dataclasses.replace(good, data=bytes(data)))
    before = board.domain.op_count
    result = strategy.boot(board)
    assert result.action is BootAction.STAY
    assert result.recoverable
    assert "the host refused the file" in result.reason
    assert board.domain.op_count == before
    assert runs(board, strategy.boot(board), old), "the old application is intact for the next reset"


def test_a_file_for_another_device_is_refused_by_the_host() -> None:
    strategy, board, _old = _installed()
    good = sample_release(strategy, "2.0.0")
    foreign = add_dfu_suffix(good.payload, vid=0x0483, pid=0xDF11)
    strategy.stage(board, dataclasses.replace(good, data=foreign))
    result = strategy.boot(board)
    assert "the host refused the file" in result.reason


def test_an_oversized_download_stops_at_the_end_of_the_application_area() -> None:
    strategy, board, _old = _installed()
    app = get_layout(LAYOUT).partition("app")
    big = sample_release(strategy, "2.0.0").payload.ljust(app.size + 1024, b"\x5a")
    strategy.stage(board, strategy.make_release(big, sample_release(strategy, "2.0.0").version))
    result = strategy.boot(board)
    assert result.action is BootAction.STAY
    assert result.recoverable
    assert "errADDRESS" in result.reason
    again = strategy.boot(board)
    assert again.action is BootAction.STAY, "never jumps into the partial download"

"""The sweep itself: its two engines agree, failures replay, revert and refusal rules, worker processes,
and turning user files into releases."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from boot_helpers import installed, sample_release

from mcuota.boot.board import Board
from mcuota.boot.gizwits import GizwitsStrategy
from mcuota.boot.presets import get_layout
from mcuota.boot.registry import strategy_for
from mcuota.boot.stm32_header import Stm32HeaderStrategy
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage, Strategy
from mcuota.boot.sweep import prepare_release, replay, sweep
from mcuota.boot.verdict import Judge, Outcome
from mcuota.errors import UsageError
from mcuota.flash import FaultKind
from mcuota.image.gizwits import FLAG_SIZE, decode_flag
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path

GIZWITS = "gizwits-f103"
KB = 1024


class FlagFirst(GizwitsStrategy):
    """A Gizwits bootloader that erases the FLAG before copying: a cut mid-copy loses the update."""

    name = "gizwits-flag-first"

    def boot(self, board: Board) -> BootResult:
        flash, flag_part = board.flash_of("flag")
        flag = decode_flag(flash.read(flag_part.address, FLAG_SIZE))
        if flag.pending:
            flash.erase(flag_part.address)
            self._copy(flash, flag.rom_size)
        return self._jump(flash, [])


def _releases(strategy: Strategy) -> tuple[ReleaseImage, ReleaseImage]:
    return sample_release(strategy, "1.0.0"), sample_release(strategy, "2.0.0")


def test_a_bootloader_that_drops_its_flag_early_is_caught() -> None:
    layout = get_layout(GIZWITS)
    broken = FlagFirst(layout)
    old, new = _releases(broken)
    report = sweep(layout, old, new, strategy=broken)
    assert report.clean is Outcome.NEW
    assert not report.ok
    assert report.commit_op is not None
    assert report.outcomes["bricked"] + report.outcomes["wrong"] > 0, "cuts mid-copy leave half an image"
    lost = [f for f in report.failures if f.outcome is Outcome.OLD]
    assert lost, "a cut after the FLAG erase and before the copy quietly drops the update"
    assert all("after the commit point" in f.reason for f in lost)
    assert all(f.fault.op > report.commit_op for f in report.failures)
    half = [f for f in report.failures if f.outcome is not Outcome.OLD]
    assert all("holds neither release" in f.reason or "no application at APP" in f.reason for f in half)
    assert any(f.outcome is Outcome.WRONG and "prints v2.0.0" in f.reason for f in half), \
        "a half-copied image can print the new version: only the bytes tell"


def _same_reports(strategy: Strategy, **options: object) -> None:
    old, new = _releases(strategy)
    fast = sweep(strategy.layout, old, new, strategy=strategy, **options)  # type: ignore[arg-type]
    slow = sweep(strategy.layout, old, new, strategy=strategy, engine="rerun", **options)  # type: ignore[arg-type]
    ignore = {"engine", "wall_s", "workers", "points_per_s"}
    assert {k: v for k, v in fast.to_dict().items() if k not in ignore} == \
        {k: v for k, v in slow.to_dict().items() if k not in ignore}


def test_both_engines_give_the_same_report_for_failing_points() -> None:
    broken = FlagFirst(get_layout(GIZWITS))
    _same_reports(broken, torn=True, seed=4)


def test_both_engines_give_the_same_report_with_faults_during_recovery() -> None:
    trial = TrialWithoutRevert(None)
    old, new = _releases(trial)
    report = sweep(trial.layout, old, new, strategy=trial, torn=True, revert=True, recovery_share=0.5)
    assert report.recovery_points > 0
    assert report.failures
    _same_reports(trial, torn=True, revert=True, recovery_share=0.5, seed=6)


def test_a_failure_replays_from_its_fault() -> None:
    layout = get_layout(GIZWITS)
    broken = FlagFirst(layout)
    old, new = _releases(broken)
    report = sweep(layout, old, new, strategy=broken, torn=True, seed=8)
    torn_failures = [f for f in report.failures if f.fault.kind is FaultKind.TORN]
    assert torn_failures
    for failure in (report.failures[0], torn_failures[-1]):
        again = replay(layout, old, new, failure.fault, strategy=broken)
        assert again.verdict.outcome is failure.outcome
        assert failure.reason.endswith(again.verdict.reason)
        hit = again.operations[failure.fault.op - 1]
        assert hit.outcome == failure.fault.kind.value
        assert f"0x{hit.address:08x}" in failure.operation


def test_workers_split_the_points_without_changing_the_report() -> None:
    layout = get_layout(GIZWITS)
    broken = FlagFirst(layout)
    old, new = _releases(broken)
    one = sweep(layout, old, new, strategy=broken, torn=True, workers=1)
    two = sweep(layout, old, new, strategy=broken, torn=True, workers=2)
    assert two.workers in (1, 2)
    assert one.outcomes == two.outcomes
    assert one.failures == two.failures
    assert one.emulations == two.emulations, "boots emulated in the workers are counted"


def test_each_distinct_image_is_emulated_once() -> None:
    strategy, _board, old = installed(GIZWITS)
    report = sweep(get_layout(GIZWITS), old, sample_release(strategy, "1.1.0"), torn=True)
    assert report.points > 100
    assert report.emulations == 2


def test_a_refused_update_must_leave_the_old_release_at_every_point() -> None:
    layout = get_layout("stm32-header-f103")
    strategy = Stm32HeaderStrategy(layout)
    newer, older = sample_release(strategy, "2.0.0"), sample_release(strategy, "1.0.0")
    report = sweep(layout, newer, older, torn=True)
    assert report.clean is Outcome.OLD
    assert report.refused is not None
    assert report.ok
    assert report.commit_op is None
    assert report.outcomes["old"] == report.points
    assert any("downgrade" in line for line in report.clean_log)


# -- revert --------------------------------------------------------------------------------------------
SET = b"\0\0\0\0"
STAGED, BACKED_UP, COPIED, BOOTED, CONFIRMED, REVERTED = range(6)


class TrialCopy(Strategy):
    """A small revertible system on the Gizwits map, for testing the sweep's revert rules: the new
    application is staged in the low half of APP_BAK, the old one backed up to the high half, and an
    image that was started once and never confirmed is copied back. Progress is a row of words in
    the FLAG page, each set by programming it to zero (always allowed over anything on the F1)."""

    name = "trial-copy"
    half = 13 * KB

    def __init__(self, layout: object) -> None:
        super().__init__(get_layout(GIZWITS))
        self.app = self.layout.partition("app")
        self.bak = self.layout.partition("app_bak")
        self.flag = self.layout.partition("flag")

    def make_release(self, payload: bytes, version: ImageVersion, *,
                     signer: object | None = None) -> ReleaseImage:
        return ReleaseImage(payload, payload, version)

    def factory_install(self, board: Board, release: ReleaseImage) -> None:
        flash = board.flashes["internal"]
        flash.erase_range(self.app.address, self.half)
        flash.program(self.app.address, release.payload)

    def _is(self, board: Board, word: int) -> bool:
        return board.flashes["internal"].read(self.flag.address + 4 * word, 4) == SET

    def _set(self, board: Board, word: int) -> None:
        board.flashes["internal"].program(self.flag.address + 4 * word, SET)

    def _copy(self, board: Board, source: int, target: int) -> None:
        flash = board.flashes["internal"]
        flash.erase_range(target, self.half)
        for offset in range(0, self.half, KB):
            flash.program(target + offset, flash.read(source + offset, KB))

    def stage(self, board: Board, release: ReleaseImage, *, permanent: bool = False) -> None:
        flash = board.flashes["internal"]
        flash.erase_range(self.bak.address, self.half)
        flash.program(self.bak.address, release.payload)
        self._set(board, STAGED)

    def confirm(self, board: Board) -> None:
        if self._is(board, BOOTED) and not self._is(board, CONFIRMED) and not self._is(board, REVERTED):
            self._set(board, CONFIRMED)

    @property
    def can_revert(self) -> bool:
        return True

    def boot(self, board: Board) -> BootResult:
        jump = BootResult(BootAction.JUMP, self.app.address, "app")
        if not self._is(board, STAGED):
            return jump
        if not self._is(board, BACKED_UP):
            self._copy(board, self.app.address, self.bak.address + self.half)
            self._set(board, BACKED_UP)
        if not self._is(board, COPIED):
            self._copy(board, self.bak.address, self.app.address)
            self._set(board, COPIED)
        if self._is(board, CONFIRMED) or self._is(board, REVERTED):
            return jump
        if not self._is(board, BOOTED):
            self._set(board, BOOTED)
            return jump
        self.revert(board)
        return jump

    def revert(self, board: Board) -> None:
        self._copy(board, self.bak.address + self.half, self.app.address)
        self._set(board, REVERTED)


class TrialWithoutRevert(TrialCopy):
    name = "trial-no-revert"

    def revert(self, board: Board) -> None:
        """Forgets to copy the old application back: the unconfirmed image keeps running."""


def test_revert_mode_requires_every_point_to_end_in_the_old_release() -> None:
    trial = TrialCopy(None)
    old, new = _releases(trial)
    report = sweep(trial.layout, old, new, strategy=trial, torn=True, revert=True, recovery_share=0.3)
    assert report.ok, report.failures[:3]
    assert report.clean is Outcome.OLD
    assert report.refused is None, "a revert is not a refusal"
    assert report.outcomes["old"] == report.points


def test_normal_mode_of_a_revertible_system_commits_at_the_confirmation() -> None:
    trial = TrialCopy(None)
    old, new = _releases(trial)
    report = sweep(trial.layout, old, new, strategy=trial, torn=True)
    assert report.ok, report.failures[:3]
    assert report.clean is Outcome.NEW
    assert report.commit_source.startswith("inferred")
    confirm_op = report.flash_ops  # the confirmation is the clean update's last flash operation
    assert report.commit_op == confirm_op, "only the confirmation makes the update stick"


def test_a_revert_that_does_not_happen_is_caught() -> None:
    broken = TrialWithoutRevert(None)
    old, new = _releases(broken)
    report = sweep(broken.layout, old, new, strategy=broken, revert=True)
    assert not report.ok
    assert report.failures
    assert all("never confirmed" in f.reason for f in report.failures)


def test_revert_is_refused_for_a_strategy_that_cannot() -> None:
    strategy, _board, old = installed(GIZWITS)
    with pytest.raises(UsageError, match="cannot revert"):
        sweep(get_layout(GIZWITS), old, sample_release(strategy, "2.0.0"), revert=True)


# -- judging and inputs ----------------------------------------------------------------------------------
def test_a_jump_elsewhere_is_a_wrong_image_and_a_stay_without_download_path_is_bricked() -> None:
    strategy, board, old = installed(GIZWITS)
    judge = Judge(get_layout(GIZWITS), old, sample_release(strategy, "2.0.0"))
    elsewhere = judge.judge(board, BootResult(BootAction.JUMP, 0x08009800, "app_bak"))
    assert elsewhere.outcome is Outcome.WRONG
    assert judge.judge(board, BootResult(BootAction.STAY, reason="x")).outcome is Outcome.BRICKED
    assert judge.judge(board, BootResult(BootAction.STAY, recoverable=True)).outcome is Outcome.RECOVERABLE
    assert judge.judge(board, BootResult(BootAction.JUMP, 0x08003000)).outcome is Outcome.OLD


@pytest.mark.parametrize("ext", ["bin", "hex", "elf"])
def test_raw_firmware_in_any_container_makes_the_same_release(ext: str) -> None:
    layout = get_layout(GIZWITS)
    strategy = strategy_for(layout)
    path = sample_path(layout.sample_target, "1.1.0", ext)
    release = prepare_release(layout, strategy, path.read_bytes(), name=str(path))
    expected = sample_path(layout.sample_target, "1.1.0").read_bytes()
    assert hashlib.sha256(release.payload).digest() == hashlib.sha256(expected).digest()
    assert release.version == ImageVersion(1, 1, 0), "read from the banner the firmware prints"


def test_a_built_image_is_taken_as_it_is() -> None:
    layout = get_layout("stm32-header-f103")
    strategy = strategy_for(layout)
    built = sample_release(strategy, "2.0.0")
    again = prepare_release(layout, strategy, built.data, name="ota_image.bin")
    assert again == built


def test_firmware_linked_elsewhere_is_refused() -> None:
    layout = get_layout(GIZWITS)
    path = sample_path("mcuboot-f407", "1.0.0", "hex")
    with pytest.raises(UsageError, match="is linked for 0x08020200"):
        prepare_release(layout, strategy_for(layout), path.read_bytes(), name=str(path))


def test_a_factory_image_that_does_not_run_is_a_usage_error() -> None:
    layout = get_layout(GIZWITS)
    strategy = strategy_for(layout)
    broken = dataclasses.replace(sample_release(strategy, "1.0.0"), version=ImageVersion(9, 9, 9))
    with pytest.raises(UsageError, match="does not run"):
        sweep(layout, broken, sample_release(strategy, "2.0.0"))

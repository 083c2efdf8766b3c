"""Seed 001 header bootloader: the robust request word, refused images, and the literal seed design
that the sweep shows bricking."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from boot_helpers import installed, runs, sample_release, weak_board

from mcuota.boot.board import Board
from mcuota.boot.presets import get_layout
from mcuota.boot.stm32_header import Stm32HeaderStrategy, version_of, version_word
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage
from mcuota.boot.sweep import sweep
from mcuota.flash import count_ops
from mcuota.image.stm32_header import APP_HEADER_SIZE, MAGIC, decode_app_header, encode_app_header
from mcuota.image.version import ImageVersion


@pytest.mark.parametrize("layout_name", ["stm32-header-f103", "stm32-header-w25q"])
@pytest.mark.parametrize("torn", [False, True])
def test_sweep_never_bricks_and_commits_at_the_request_word(layout_name: str, torn: bool) -> None:
    strategy, board, old = installed(layout_name)
    new = sample_release(strategy, "2.0.0")
    stage_ops = count_ops(board.domain, lambda: strategy.stage(board, new))
    report = sweep(get_layout(layout_name), old, new, torn=torn, seed=11)
    assert report.ok, report.failures[:3]
    assert report.clean.value == "new"
    assert report.outcomes["bricked"] == report.outcomes["wrong"] == 0
    assert report.commit_op == stage_ops, "the request word, programmed last by the stage, is the commit"
    assert report.outcomes["new"] > 0
    assert report.outcomes["old"] >= stage_ops


def test_w25q_layout_stages_in_the_spi_chip() -> None:
    strategy, board, _old = installed("stm32-header-w25q")
    new = sample_release(strategy, "1.1.0")
    strategy.stage(board, new)
    layout = get_layout("stm32-header-w25q")
    offset = int(layout.options["image_offset"])
    spi = board.flashes["spi"]
    assert spi.read(offset, len(new.data)) == new.data
    assert struct.unpack("<I", spi.read(0, 4))[0] == 1
    result = strategy.boot(board)
    assert runs(board, result, new)
    assert struct.unpack("<I", spi.read(0, 4))[0] == 0, "the bootloader clears the request by programming 0"


def _refused(strategy: Stm32HeaderStrategy, board: Board, image: ReleaseImage,
             old: ReleaseImage) -> BootResult:
    app_before = board.read("app")
    strategy.stage(board, image)
    result = strategy.boot(board)
    assert runs(board, result, old)
    assert board.read("app") == app_before, "nothing of the installed application was erased"
    assert struct.unpack("<I", board.read("staging", 0, 4))[0] == 0, "request cleared"
    return result


def _strategy(layout_name: str = "stm32-header-f103") -> tuple[Stm32HeaderStrategy, Board, ReleaseImage]:
    strategy, board, old = installed(layout_name)
    assert isinstance(strategy, Stm32HeaderStrategy)
    return strategy, board, old


def test_tampered_crc_is_refused_before_anything_is_erased() -> None:
    strategy, board, old = _strategy()
    good = sample_release(strategy, "2.0.0")
    data = bytearray(good.data)
    data[16 + 1000] ^= 0x01
    result = _refused(strategy, board, dataclasses.replace(good, data=bytes(data)), old)
    assert any("crc32 mismatch" in line for line in result.log)


def test_wrong_magic_is_refused() -> None:
    strategy, board, old = _strategy()
    good = sample_release(strategy, "2.0.0")
    data = struct.pack("<I", MAGIC ^ 1) + good.data[4:]
    result = _refused(strategy, board, dataclasses.replace(good, data=data), old)
    assert any("bad magic" in line for line in result.log)


def test_oversized_image_is_refused() -> None:
    strategy, board, old = _strategy()
    good = sample_release(strategy, "2.0.0")
    app_size = get_layout("stm32-header-f103").partition("app").size
    data = struct.pack("<IIII", MAGIC, app_size + 4, 0, version_word(good.version)) + good.data[16:]
    result = _refused(strategy, board, dataclasses.replace(good, data=data), old)
    assert any(f"over the {app_size}-byte application area" in line for line in result.log)


def test_downgrade_is_refused_unless_the_layout_allows_it() -> None:
    strategy, board, _old = _strategy()
    newer = sample_release(strategy, "2.0.0")
    strategy.stage(board, newer)
    assert runs(board, strategy.boot(board), newer)
    older = sample_release(strategy, "1.0.1")
    result = _refused(strategy, board, older, newer)
    assert any("downgrade from 2.0.0 to 1.0.1" in line for line in result.log)

    layout = dataclasses.replace(get_layout("stm32-header-f103"),
                                 options={**get_layout("stm32-header-f103").options, "allow_downgrade": True})
    lenient = Stm32HeaderStrategy(layout)
    lenient.stage(board, older)
    assert runs(board, lenient.boot(board), older)


def test_only_an_explicit_one_is_a_request() -> None:
    strategy, board, old = _strategy()
    new = sample_release(strategy, "2.0.0")
    strategy.stage(board, new)
    staging = board.flash_of("staging")[0]
    address = get_layout("stm32-header-f103").partition("staging").address
    staging.program(address, b"\x00\x00\x00\x00")  # cleared: no request any more
    result = strategy.boot(board)
    assert runs(board, result, old)


def test_crc_mismatch_after_copy_stays_with_the_request_set_and_retries() -> None:
    layout = get_layout("stm32-header-f103")
    strategy = Stm32HeaderStrategy(layout)
    old, new = sample_release(strategy, "1.0.0"), sample_release(strategy, "2.0.0")
    board, flash = weak_board("stm32-header-f103", new.payload)
    strategy.factory_install(board, old)
    strategy.stage(board, new)
    flash.failures = 1
    result = strategy.boot(board)
    assert result.action is BootAction.STAY
    assert not result.recoverable
    assert "request kept" in result.reason
    assert struct.unpack("<I", board.read("staging", 0, 4))[0] == 1
    board.power_cycle()
    assert runs(board, strategy.boot(board), new), "the next reset redoes the copy"


def test_versions_map_to_the_u32_field_in_order() -> None:
    versions = [ImageVersion(1, 0, 0), ImageVersion(1, 0, 1), ImageVersion(1, 1, 0), ImageVersion(2, 0, 0)]
    words = [version_word(v) for v in versions]
    assert words == sorted(words)
    assert [version_of(w) for w in words] == versions


class SeedLiteral(Stm32HeaderStrategy):
    """The seed as written: the request is ``ota_flag``, the first word of the header page, and
    setting it means erasing that page and writing the record back with the flag at 1."""

    name = "stm32-header-literal"

    def stage(self, board: Board, release: ReleaseImage, *, permanent: bool = False) -> None:
        flash, staging = board.flash_of("staging")
        image_at = staging.address + int(self.layout.options["image_offset"])
        flash.erase_range(staging.address, image_at - staging.address + len(release.data))
        flash.program(image_at, release.data)
        header_flash, header = board.flash_of("header")
        record = decode_app_header(header_flash.read(header.address, APP_HEADER_SIZE))
        header_flash.erase(header.address)
        header_flash.program(header.address, encode_app_header(dataclasses.replace(record, ota_flag=1)))

    def boot(self, board: Board) -> BootResult:
        log: list[str] = []
        flash, header = board.flash_of("header")
        if decode_app_header(flash.read(header.address, APP_HEADER_SIZE)).ota_requested:
            problem, staged = self._check_staged(board)
            if problem is None and staged is not None:
                self._install(board, staged, log)
        return self._jump(board, log)


def test_the_literal_seed_design_bricks_and_the_sweep_says_where() -> None:
    layout = get_layout("stm32-header-f103")
    literal = SeedLiteral(layout)
    old, new = sample_release(literal, "1.0.0"), sample_release(literal, "2.0.0")
    report = sweep(layout, old, new, strategy=literal)
    assert report.clean.value == "new", "without power cuts the seed works"
    assert not report.ok
    assert report.outcomes["bricked"] > 0
    bricked = [f for f in report.failures if f.outcome.value == "bricked"]
    assert any("no application header" in f.reason for f in bricked)
    assert any(f"erase of 1024 bytes at 0x{layout.partition('header').address:08x}" in f.operation
               for f in bricked), "the header-page erase that sets the flag is a brick window"

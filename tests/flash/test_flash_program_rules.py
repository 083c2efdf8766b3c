"""Programming only moves bits away from the erased value, and each part refuses what its silicon does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuota.errors import McuotaError
from mcuota.flash import (
    FlashAddressError,
    FlashAlignmentError,
    FlashError,
    FlashPart,
    FlashProgramError,
    Geometry,
    NorFlash,
    OverwriteRule,
    get_part,
    new_flash,
)


def small_part(erased: int = 0xFF, unit: int = 4, rule: OverwriteRule = OverwriteRule.FORBID) -> FlashPart:
    return FlashPart("test", Geometry.uniform(4, 256, 0x1000), write_unit=unit, erased=erased, overwrite=rule)


def as_int(data: bytes) -> int:
    return int.from_bytes(data, "little")


def test_fresh_device_is_erased_and_errors_are_mcuota_errors() -> None:
    flash = NorFlash(small_part())
    assert flash.read(0x1000, 1024) == b"\xff" * 1024
    assert flash.is_erased(0x1000, 1024)
    assert issubclass(FlashError, McuotaError)
    assert NorFlash(small_part(erased=0x00)).read(0x1000, 4) == b"\x00" * 4


@settings(max_examples=60, deadline=None)
@given(erased=st.sampled_from([0xFF, 0x00]), unit=st.sampled_from([1, 2, 4, 8, 16]),
       rule=st.sampled_from(list(OverwriteRule)), first=st.binary(min_size=16, max_size=16),
       second=st.binary(min_size=16, max_size=16))
def test_program_never_moves_a_bit_towards_erased(erased: int, unit: int, rule: OverwriteRule, first: bytes,
                                                  second: bytes) -> None:
    flash = NorFlash(small_part(erased, unit, rule))
    flash.program(0x1100, first)
    assert flash.read(0x1100, 16) == first
    before = as_int(flash.read(0x1100, 16))
    try:
        flash.program(0x1100, second)
    except FlashProgramError:
        assert flash.read(0x1100, 16) == first  # a refused program changes nothing
        return
    after = as_int(flash.read(0x1100, 16))
    if erased == 0xFF:
        assert after & ~before == 0  # no bit went 0 -> 1
    else:
        assert before & ~after == 0  # no bit went 1 -> 0
    flash.erase(0x1100)
    assert flash.read(0x1100, 256) == bytes([erased]) * 256


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=8, max_size=8))
def test_and_rule_combines_like_nor_cells(data: bytes) -> None:
    flash = NorFlash(small_part(rule=OverwriteRule.AND))
    flash.program(0x1000, b"\x0f\xf0\xaa\x55\x00\xff\x3c\xc3")
    flash.program(0x1000, data)
    expected = as_int(b"\x0f\xf0\xaa\x55\x00\xff\x3c\xc3") & as_int(data)
    assert flash.read(0x1000, 8) == expected.to_bytes(8, "little")


def test_forbid_rule_names_the_first_non_erased_unit() -> None:
    flash = NorFlash(small_part(unit=4))
    flash.program(0x1008, b"\x00\xff\xff\xff")
    with pytest.raises(FlashProgramError, match=r"word at 0x00001008.*erase sector 0 at 0x00001000"):
        flash.program(0x1000, b"\xff" * 4 + b"\x11" * 12)
    assert flash.read(0x1000, 8) == b"\xff" * 8  # nothing written, not even the erased part


def test_stm32f1_allows_zero_over_a_programmed_half_word_only() -> None:
    flash = new_flash("stm32f103c8")
    flash.program(0x08002C00, b"\xee\xee")
    flash.program(0x08002C00, b"\x00\x00")  # invalidate a flag in place: allowed
    assert flash.read(0x08002C00, 2) == b"\x00\x00"
    flash.program(0x08002C02, b"\x34\x12")
    with pytest.raises(FlashProgramError, match=r"half-word at 0x08002C02.*all-0x00 half-word"):
        flash.program(0x08002C02, b"\x00\x02")
    with pytest.raises(FlashProgramError, match="0x08002C02"):
        flash.program(0x08002C00, b"\x00\x00\x00\x01")
    assert flash.read(0x08002C02, 2) == b"\x34\x12"
    # mixed buffer: erased half-words take new data, programmed ones accept 0x0000
    flash.program(0x08002C00, b"\x00\x00\x00\x00\x78\x56")
    assert flash.read(0x08002C00, 6) == b"\x00\x00\x00\x00\x78\x56"


def test_zero_rule_under_erased_zero_means_all_ones() -> None:
    part = get_part("stm32f103c8").variant(erased=0x00)
    flash = NorFlash(part)
    flash.program(0x08000000, b"\x12\x00")
    flash.program(0x08000000, b"\xff\xff")
    assert flash.read(0x08000000, 2) == b"\xff\xff"
    with pytest.raises(FlashProgramError, match="all-0xFF"):
        flash.program(0x08000000, b"\x00\x00")


@pytest.mark.parametrize("unit", [1, 2, 4, 8, 16])
def test_misaligned_address_or_length_is_refused(unit: int) -> None:
    flash = NorFlash(small_part(unit=unit))
    flash.program(0x1000 + unit, bytes(unit))
    if unit == 1:
        return
    with pytest.raises(FlashAlignmentError, match=f"0x00001001.*{unit}-byte write unit"):
        flash.program(0x1001, bytes(unit))
    with pytest.raises(FlashAlignmentError, match=f"{unit + 1} bytes"):
        flash.program(0x1000 + 4 * unit, bytes(unit + 1))
    assert flash.domain.op_count == 1


def test_out_of_range_and_empty_programs() -> None:
    flash = NorFlash(small_part())
    with pytest.raises(FlashAddressError, match=r"outside the flash 0x00001000\.\.0x000013FF"):
        flash.program(0x13FC, bytes(8))
    with pytest.raises(FlashAddressError):
        flash.program(0x0FFC, bytes(4))
    with pytest.raises(FlashAddressError):
        flash.read(0x1400, 1)
    flash.program(0x1000, b"")
    assert flash.domain.op_count == 0
    assert flash.read(0x13FF, 1) == b"\xff"
    assert flash.read(0x1400, 0) == b""


def test_reads_cross_sector_boundaries_and_views_follow_writes() -> None:
    flash = NorFlash(small_part(unit=1))
    flash.program(0x10FE, b"\x01\x02\x03\x04")
    assert flash.read(0x10FD, 6) == b"\xff\x01\x02\x03\x04\xff"
    window = flash.view(0x1100, 2)
    assert bytes(window) == b"\x03\x04"
    flash.erase(0x1100)
    assert bytes(window) == b"\xff\xff"
    with pytest.raises(TypeError):
        window[0] = 0


def test_program_accepts_memoryview_and_bytearray() -> None:
    flash = NorFlash(small_part())
    flash.program(0x1000, bytearray(b"abcd"))
    flash.program(0x1004, memoryview(b"efgh"))
    assert flash.read(0x1000, 8) == b"abcdefgh"

"""Sector maps with mixed sizes, erase-on-sector-start, and the presets' shapes."""

from __future__ import annotations

import pytest

from mcuota.errors import UsageError
from mcuota.flash import (
    FlashAddressError,
    FlashPart,
    Geometry,
    NorFlash,
    W25QFlash,
    get_part,
    new_flash,
    preset_names,
)

KB = 1024


def test_mixed_geometry_lookups() -> None:
    geometry = Geometry.of([(4, 16 * KB), (1, 64 * KB), (7, 128 * KB)], base=0x08000000)
    assert geometry.size == 1024 * KB
    assert len(geometry.sectors) == 12
    assert geometry.describe() == "4x16K+1x64K+7x128K@0x08000000"
    assert geometry.sector_at(0x08000000).index == 0
    assert geometry.sector_at(0x08003FFF).index == 0
    assert geometry.sector_at(0x08004000).index == 1
    fifth = geometry.sector_at(0x0801FFFF)
    assert (fifth.index, fifth.start, fifth.size, fifth.end) == (4, 0x08010000, 64 * KB, 0x08020000)
    last = geometry.sector_at(0x080FFFFF)
    assert (last.index, last.start, last.size) == (11, 0x080E0000, 128 * KB)
    with pytest.raises(FlashAddressError, match="0x08100000"):
        geometry.sector_at(0x08100000)
    with pytest.raises(FlashAddressError):
        geometry.sector_at(0x07FFFFFF)
    assert [s.index for s in geometry.sectors_in(0x0800C000, 0x14001)] == [3, 4, 5]
    assert geometry.sectors_in(0x08000000, 0) == ()


def test_geometry_rejects_nonsense() -> None:
    with pytest.raises(UsageError):
        Geometry(())
    with pytest.raises(UsageError):
        Geometry(((0, 1024),))
    with pytest.raises(UsageError, match="not a power of two"):
        FlashPart("x", Geometry.uniform(2, 1024), write_unit=3)
    with pytest.raises(UsageError, match="erased value"):
        FlashPart("x", Geometry.uniform(2, 1024), erased=0x55)
    with pytest.raises(UsageError, match="multiple"):
        FlashPart("x", Geometry.uniform(2, 1000), write_unit=16)


def test_erase_takes_whole_sectors_only() -> None:
    flash = new_flash("stm32f407")
    flash.program(0x08004000, b"\x00" * 16)
    flash.program(0x08010000, b"\x00" * 16)
    with pytest.raises(FlashAddressError, match=r"stm32f407: erase at 0x08004010 is not on a sector start"):
        flash.erase(0x08004010)
    with pytest.raises(FlashAddressError, match="outside"):
        flash.erase(0x08100000)
    flash.erase(0x08004000)
    assert flash.is_erased(0x08004000, 16 * KB)
    assert flash.read(0x08010000, 1) == b"\x00"
    assert flash.domain.op_count == 3


def test_erase_range_rounds_up_to_sector_ends() -> None:
    flash = new_flash("stm32f407")
    flash.program(0x08010000, b"\x00" * 8)
    assert flash.erase_range(0x08004000, 0xC001) == 4  # 3 x 16 KB + the 64 KB sector it reaches into
    assert flash.is_erased(0x08010000, 8)
    with pytest.raises(FlashAddressError, match="sector start"):
        flash.erase_range(0x08004004, 16)
    assert flash.erase_range(0x08004000, 0) == 0


@pytest.mark.parametrize(("name", "base", "size", "sectors", "unit"), [
    ("stm32f103c8", 0x08000000, 64 * KB, 64, 2),
    ("stm32f407", 0x08000000, 1024 * KB, 12, 1),
    ("stm32f429", 0x08000000, 2048 * KB, 24, 1),
    ("nrf52840", 0x00000000, 1024 * KB, 256, 4),
    ("psoc6", 0x10000000, 2048 * KB, 4096, 512),
    ("w25q128", 0x00000000, 16 * 1024 * KB, 4096, 1),
])
def test_presets(name: str, base: int, size: int, sectors: int, unit: int) -> None:
    part = get_part(name)
    assert name in preset_names()
    flash = new_flash(name)
    assert (flash.base, flash.size, len(flash.sectors), flash.write_unit) == (base, size, sectors, unit)
    assert flash.end == base + size
    assert isinstance(flash, W25QFlash) == (name == "w25q128")
    for sector_size in part.geometry.sector_sizes:
        assert part.erase_time(sector_size).typical > 0
    assert part.program_time.maximum >= part.program_time.typical > 0


def test_stm32f429_second_bank_and_preset_lookup() -> None:
    flash = new_flash("STM32F429")
    bank2 = flash.sector_at(0x08100000)
    assert (bank2.index, bank2.size) == (12, 16 * KB)
    assert flash.sector_at(0x081E0000).size == 128 * KB
    with pytest.raises(UsageError, match=r"unknown flash part 'stm32f0'.*stm32f103c8"):
        get_part("stm32f0")
    assert get_part("stm32f103c8").endurance == 10_000
    assert get_part("w25q128").endurance >= 100_000


def test_variant_keeps_validation_and_geometry_id_changes() -> None:
    part = get_part("nrf52840")
    variant = part.variant(write_unit=8, erased=0x00)
    assert variant.geometry_id != part.geometry_id
    assert NorFlash(variant).read(0, 4) == b"\x00" * 4
    with pytest.raises(UsageError):
        part.variant(write_unit=3)

"""Wear counters against endurance, and modeled time from the datasheet figures."""

from __future__ import annotations

import pytest

from mcuota.flash import (
    Duration,
    FaultPlan,
    FlashPart,
    FlashWearError,
    Geometry,
    NorFlash,
    PowerDomain,
    PowerLoss,
    get_part,
    new_flash,
)


def test_wear_counts_each_erase_per_sector() -> None:
    flash = new_flash("stm32f407")
    for _ in range(3):
        flash.erase(0x08020000)
    flash.erase(0x08000000)
    assert flash.wear(0x0803FFFF) == 3
    assert flash.wear(0x08000000) == 1
    assert flash.wear(0x08004000) == 0
    assert sum(flash.wear_counts()) == 4
    assert flash.worn_sectors() == ()


def test_endurance_is_reported_and_optionally_enforced() -> None:
    part = FlashPart("tiny", Geometry.uniform(2, 256), write_unit=4, endurance=3)
    counted = NorFlash(part)
    for _ in range(5):
        counted.erase(0)
    assert [s.index for s in counted.worn_sectors()] == [0]
    strict = NorFlash(part, enforce_endurance=True)
    for _ in range(3):
        strict.erase(0)
    with pytest.raises(FlashWearError, match="sector 0 at 0x00000000 has reached its rated 3 erase cycles"):
        strict.erase(0)
    assert strict.wear(0) == 3
    assert strict.domain.op_count == 3


def test_timing_totals_follow_the_reference_figures() -> None:
    flash = new_flash("stm32f103c8")
    flash.erase(0x08003000)
    flash.program(0x08003000, bytes(1024))  # 512 half-words
    typical, maximum = flash.elapsed
    assert typical == pytest.approx(20e-3 + 512 * 52.5e-6)
    assert maximum == pytest.approx(40e-3 + 512 * 70e-6)


def test_mixed_sector_erase_times_and_domain_total() -> None:
    domain = PowerDomain()
    f407 = new_flash("stm32f407", domain)
    spi = new_flash("w25q128", domain, name="spi")
    f407.erase(0x08000000)  # 16 KB
    f407.erase(0x08010000)  # 64 KB
    f407.erase(0x08020000)  # 128 KB
    f407.program(0x08000000, bytes(10))  # 3 words at x32
    expected = Duration(0.25 + 0.55 + 1.0 + 3 * 16e-6, 0.5 + 1.1 + 2.0 + 3 * 100e-6)
    assert f407.elapsed == pytest.approx(expected)
    spi.erase(0)  # 4 KB sector
    spi.program(0x1080, bytes(300))  # two pages touched: two page programs
    assert spi.elapsed == pytest.approx(Duration(45e-3 + 2 * 0.4e-3, 0.4 + 2 * 3e-3))
    total = domain.elapsed
    assert total.typical == pytest.approx(f407.elapsed.typical + spi.elapsed.typical)


def test_cut_operations_cost_no_time() -> None:
    domain = PowerDomain(FaultPlan.cut_before(1))
    flash = new_flash("nrf52840", domain)
    with pytest.raises(PowerLoss):
        flash.erase(0)
    assert flash.elapsed == Duration(0.0, 0.0)
    assert get_part("nrf52840").erase_time(4096).maximum == pytest.approx(85e-3)

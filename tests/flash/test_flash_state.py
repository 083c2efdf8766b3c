"""Snapshots for the sweep and files for process restarts give back exactly what was there."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcuota.errors import FormatError, IntegrityError, UsageError
from mcuota.flash import FaultPlan, PowerDomain, PowerLoss, load_flash, new_flash, save_flash
from mcuota.flash.persist import build_flash_state, parse_flash_state


def test_snapshot_restore_gives_back_contents_wear_time_and_ops() -> None:
    flash = new_flash("stm32f429")
    flash.program(0x08100000, b"bank two")
    flash.erase(0x08020000)
    snap = flash.snapshot()
    before = (flash.read(flash.base, flash.size), flash.wear_counts(), flash.elapsed, flash.ops)
    flash.erase(0x08100000)
    flash.program(0x08000000, b"changed!")
    flash.restore(snap)
    assert (flash.read(flash.base, flash.size), flash.wear_counts(), flash.elapsed, flash.ops) == before
    assert flash.snapshot() == snap


def test_domain_snapshot_restores_every_device_after_a_torn_op() -> None:
    domain = PowerDomain()
    internal = new_flash("stm32f407", domain)
    external = new_flash("w25q128", domain, name="spi")
    internal.program(0x08000000, b"app")
    external.program(0, b"update")
    start = domain.snapshot()
    images = (internal.read(internal.base, internal.size), external.read(0, external.size))
    domain.arm(FaultPlan.torn_at(2, seed=1))
    external.erase(0)
    with pytest.raises(PowerLoss):
        internal.erase(0x08000000)
    domain.restore(start)
    assert (internal.read(internal.base, internal.size), external.read(0, external.size)) == images
    assert domain.op_count == start.op_count


def test_restore_refuses_another_part() -> None:
    snap = new_flash("nrf52840").snapshot()
    with pytest.raises(UsageError, match="does not fit"):
        new_flash("stm32f407").restore(snap)


def test_save_load_round_trip(tmp_path: Path) -> None:
    flash = new_flash("stm32f103c8")
    flash.program(0x08002C00, b"\xee\xee\x00\x00")
    flash.erase(0x08003000)
    flash.erase(0x08003000)
    path = tmp_path / "device.flash"
    save_flash(flash, path)
    again = new_flash("stm32f103c8")
    load_flash(again, path)
    assert again.read(again.base, again.size) == flash.read(flash.base, flash.size)
    assert again.wear_counts() == flash.wear_counts()
    assert again.elapsed == flash.elapsed
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary behind


def test_load_refuses_wrong_part_and_damaged_files(tmp_path: Path) -> None:
    flash = new_flash("nrf52840")
    path = tmp_path / "nrf.flash"
    save_flash(flash, path)
    with pytest.raises(UsageError, match="flash file is for nrf52840"):
        load_flash(new_flash("stm32f407"), path)
    blob = bytearray(build_flash_state(flash))
    blob[100] ^= 1
    with pytest.raises(IntegrityError, match="checksum"):
        parse_flash_state(bytes(blob))
    with pytest.raises(FormatError, match="truncated"):
        parse_flash_state(bytes(blob[:-100]))
    with pytest.raises(FormatError, match="magic"):
        parse_flash_state(b"NOTFLASH" + bytes(64))
    with pytest.raises(FormatError, match="too short"):
        parse_flash_state(b"MCU")
    with pytest.raises(UsageError, match="does not exist"):
        load_flash(flash, tmp_path / "missing.flash")

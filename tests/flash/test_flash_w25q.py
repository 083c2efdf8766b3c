"""The W25Q: page wrap, block and chip erase, and its SPI command set byte by byte."""

from __future__ import annotations

import pytest

from mcuota.flash import (
    FaultPlan,
    FlashAddressError,
    PowerDomain,
    PowerLoss,
    SpiNorPart,
    W25QFlash,
    get_part,
    new_flash,
)
from mcuota.flash.w25q import (
    BLOCK_ERASE_64K,
    CHIP_ERASE,
    FAST_READ,
    JEDEC_ID,
    PAGE_PROGRAM,
    RDSR1,
    READ,
    SECTOR_ERASE_4K,
    STATUS_BUSY,
    STATUS_WEL,
    WRDI,
    WREN,
)

KB = 1024


def chip(domain: PowerDomain | None = None) -> W25QFlash:
    flash = new_flash("w25q128", domain, name="spi")
    assert isinstance(flash, W25QFlash)
    return flash


def addr(value: int) -> bytes:
    return value.to_bytes(3, "big")


def test_page_program_wraps_to_the_page_start() -> None:
    flash = chip()
    flash.page_program(0x1F0, bytes(range(32)))
    assert flash.read(0x1F0, 16) == bytes(range(16))
    assert flash.read(0x100, 16) == bytes(range(16, 32))  # wrapped, not into the next page
    assert flash.read(0x200, 16) == b"\xff" * 16
    assert flash.domain.op_count == 1


def test_page_program_of_more_than_a_page_keeps_the_last_256_bytes() -> None:
    flash = chip()
    data = bytes(i & 0xFF for i in range(300))
    flash.page_program(0x10, data)
    page = flash.read(0, 256)
    # byte i lands at (0x10 + i) % 256; the last writer of each column wins
    expected = bytearray(256)
    for i, value in enumerate(data):
        expected[(0x10 + i) % 256] = value
    assert page == bytes(expected)


def test_program_splits_at_pages_one_operation_each() -> None:
    flash = chip()
    data = bytes(range(256)) * 3
    flash.program(0x80, data)
    assert flash.read(0x80, len(data)) == data
    assert flash.domain.op_count == 4  # 0x80..0xFF, two whole pages, 0x300..0x37F


def test_reprogramming_ands_and_erase_sizes() -> None:
    flash = chip()
    flash.program(0x5000, b"\xf0")
    flash.program(0x5000, b"\x3c")
    assert flash.read(0x5000, 1) == b"\x30"
    flash.program(0x12345, b"z")
    flash.erase_block(0x10000, 64 * KB)
    assert flash.is_erased(0x10000, 64 * KB)
    assert flash.wear(0x10000) == flash.wear(0x1F000) == 1
    assert flash.wear(0x20000) == 0
    with pytest.raises(FlashAddressError, match="not aligned"):
        flash.erase_block(0x8000, 64 * KB)
    with pytest.raises(FlashAddressError, match="no 8192-byte erase"):
        flash.erase_block(0, 8 * KB)
    flash.erase_block(0x8000, 32 * KB)
    flash.erase_chip()
    assert flash.is_erased(0, flash.size)
    assert flash.read(0x5000, 1) == b"\xff"
    assert set(flash.wear_counts()) >= {1, 2}


def test_jedec_id_and_reads() -> None:
    flash = chip()
    flash.program(0x1000, b"hello")
    spi = flash.spi
    assert spi.command(JEDEC_ID, read=3) == b"\xef\x40\x18"
    assert spi.command(READ, addr(0x1000), read=5) == b"hello"
    assert spi.command(FAST_READ, addr(0x1000) + b"\x00", read=5) == b"hello"
    flash.program(0, b"AB")
    assert spi.command(READ, addr(flash.size - 2), read=4) == b"\xff\xffAB"  # wraps at the chip end


def test_byte_by_byte_transaction() -> None:
    spi = chip().spi
    spi.select()
    replies = [spi.transfer(b) for b in (JEDEC_ID, 0, 0, 0)]
    spi.deselect()
    assert replies == [0xFF, 0xEF, 0x40, 0x18]
    assert spi.exchange(b"\x9f\x00") == b"\xff\xff"  # /CS high: nobody drives MISO


def test_program_needs_wren_and_wel_clears_after() -> None:
    flash = chip()
    spi = flash.spi
    spi.command(PAGE_PROGRAM, addr(0x2000) + b"data")
    assert flash.read(0x2000, 4) == b"\xff" * 4  # silently ignored without WREN
    assert flash.domain.op_count == 0
    spi.command(WREN)
    assert spi.status == STATUS_WEL
    spi.command(WRDI)
    assert spi.status == 0
    spi.command(WREN)
    spi.command(PAGE_PROGRAM, addr(0x2000) + b"data")
    assert flash.read(0x2000, 4) == b"data"
    assert spi.status & STATUS_WEL == 0
    spi.command(RDSR1, read=1)
    spi.command(PAGE_PROGRAM, addr(0x2004) + b"more")
    assert flash.read(0x2004, 4) == b"\xff" * 4


def test_busy_polling_and_commands_ignored_while_busy() -> None:
    part = get_part("w25q128")
    assert isinstance(part, SpiNorPart)
    slow = W25QFlash(part, PowerDomain(), name="slow", busy_polls=3)
    spi = slow.spi
    spi.command(WREN)
    spi.command(SECTOR_ERASE_4K, addr(0))
    spi.command(WREN)  # ignored: still busy
    statuses = [spi.command(RDSR1, read=1)[0] for _ in range(4)]
    assert statuses == [STATUS_BUSY, STATUS_BUSY, STATUS_BUSY, 0]
    # one RDSR1 transaction can poll repeatedly too
    spi.command(WREN)
    spi.command(PAGE_PROGRAM, addr(0) + b"x")
    assert spi.command(RDSR1, read=5) == bytes([STATUS_BUSY] * 3 + [0, 0])
    assert spi.command(READ, addr(0), read=1) == b"x"
    spi.command(WREN)
    spi.command(PAGE_PROGRAM, addr(1) + b"y")
    assert spi.command(READ, addr(0), read=2) == b"\xff\xff"  # read while busy: ignored
    spi.command(RDSR1, read=3)
    assert spi.command(READ, addr(0), read=2) == b"xy"


def test_erase_is_not_executed_unless_cs_rises_after_the_address() -> None:
    flash = chip()
    flash.program(0x3000, b"keep")
    spi = flash.spi
    spi.command(WREN)
    spi.command(SECTOR_ERASE_4K, addr(0x3000) + b"\x00")  # one byte too many
    assert flash.read(0x3000, 4) == b"keep"
    spi.command(WREN)
    spi.command(SECTOR_ERASE_4K, addr(0x3ABC))  # any address inside the sector erases it
    spi.command(RDSR1, read=2)
    assert flash.is_erased(0x3000, 4 * KB)
    spi.command(WREN)
    spi.command(BLOCK_ERASE_64K, addr(0x10000)[:2])  # address incomplete: ignored
    assert spi.status & STATUS_WEL


def test_chip_erase_over_spi() -> None:
    flash = chip()
    flash.program(0xABCDE, b"q")
    spi = flash.spi
    spi.command(WREN)
    spi.command(CHIP_ERASE)
    spi.command(RDSR1, read=2)
    assert flash.is_erased(0, flash.size)
    assert flash.elapsed.typical == pytest.approx(0.4e-3 + 40.0)


def test_power_cut_on_spi_command_shares_the_board_counter_and_resets_wel() -> None:
    domain = PowerDomain()
    internal = new_flash("stm32f407", domain)
    flash = chip(domain)
    spi = flash.spi
    domain.arm(FaultPlan.torn_at(2, seed=4))
    internal.program(0x08000000, b"op1")
    spi.command(WREN)
    with pytest.raises(PowerLoss) as caught:
        spi.command(PAGE_PROGRAM, addr(0x4000) + bytes(16))
    assert (caught.value.device, caught.value.op) == ("spi", 2)
    torn = flash.read(0x4000, 16)
    assert torn != bytes(16)
    domain.power_on()
    assert spi.status == 0
    spi.command(PAGE_PROGRAM, addr(0x4000) + bytes(16))  # WEL was lost with the power
    assert flash.read(0x4000, 16) == torn

"""The peripheral model on its own: console, clock-ready flags, SCB, bit-band, rewinding."""

from __future__ import annotations

from mcuota.emu.parts import STM32F103XB, STM32F407XG
from mcuota.emu.peripherals import Peripherals

SR, DR = 0x40013800, 0x40013804
TXE_TC, RXNE = 0xC0, 0x20


def test_console_always_ready_and_captures_writes() -> None:
    p = Peripherals(STM32F103XB)
    assert p.read(SR, 4) == TXE_TC
    for byte in b"hi\r\n":
        p.write(DR, 4, byte)
    p.write(DR, 1, ord("!"))
    assert bytes(p.output) == b"hi\r\n!"


def test_injected_input_raises_rxne_until_read() -> None:
    p = Peripherals(STM32F103XB)
    p.send(b"ab")
    assert p.read(SR, 4) & RXNE
    assert p.read(DR, 4) == ord("a")
    assert p.read(DR, 4) == ord("b")
    assert not p.read(SR, 4) & RXNE
    assert p.read(DR, 4) == 0
    assert p.input_pending == 0


def test_plain_registers_read_back_with_sub_word_access() -> None:
    p = Peripherals(STM32F103XB)
    p.write(0x40011004, 4, 0x44444444)
    p.write(0x40011006, 1, 0x12)
    assert p.read(0x40011004, 4) == 0x44124444
    assert p.read(0x40011006, 2) == 0x4412


def test_f1_clock_ready_flags_follow_enables() -> None:
    p = Peripherals(STM32F103XB)
    cr, cfgr = 0x40021000, 0x40021004
    assert p.read(cr, 4) & 0b11 == 0b11               # HSI on and ready out of reset
    p.write(cr, 4, p.read(cr, 4) | 1 << 16 | 1 << 24)  # HSEON, PLLON
    assert p.read(cr, 4) & (1 << 17 | 1 << 25) == 1 << 17 | 1 << 25
    p.write(cfgr, 4, 0b10)                             # SW = PLL
    assert (p.read(cfgr, 4) >> 2) & 0b11 == 0b10       # SWS = PLL


def test_f4_clock_switch_is_at_cfgr_offset_8() -> None:
    p = Peripherals(STM32F407XG)
    p.write(0x40023808, 4, 0b01)
    assert (p.read(0x40023808, 4) >> 2) & 0b11 == 0b01
    p.write(0x40023800, 4, 1 << 24)
    assert p.read(0x40023800, 4) & 1 << 25


def test_scb_identifies_core_and_keeps_vtor() -> None:
    p = Peripherals(STM32F407XG, vector_table=0x08020200)
    assert p.read(0xE000ED00, 4) == 0x410FC241
    assert Peripherals(STM32F103XB).read(0xE000ED00, 4) == 0x411FC231
    assert p.read(0xE000ED08, 4) == 0x08020200


def test_aircr_reset_needs_the_key() -> None:
    p = Peripherals(STM32F103XB)
    p.write(0xE000ED0C, 4, 0x00000004)
    assert not p.reset_requested
    p.write(0xE000ED0C, 4, 0x05FA0004)
    assert p.reset_requested
    assert p.read(0xE000ED0C, 4) >> 16 == 0xFA05


def test_delay_counters_move() -> None:
    p = Peripherals(STM32F103XB)
    p.write(0xE000E010, 4, 0b111)
    assert p.read(0xE000E010, 4) & 1 << 16            # COUNTFLAG: a polled delay makes progress
    assert p.read(0xE0001004, 4) < p.read(0xE0001004, 4)  # DWT CYCCNT


def test_peripheral_bit_band_alias() -> None:
    p = Peripherals(STM32F103XB)
    odr = 0x4001100C                                   # GPIOC_ODR
    alias = 0x42000000 + (odr - 0x40000000) * 32 + 13 * 4
    p.write(alias, 4, 1)
    assert p.read(odr, 4) == 1 << 13
    assert p.read(alias, 4) == 1
    p.write(alias, 4, 0)
    assert p.read(odr, 4) == 0


def test_snapshot_restore_rewinds_everything() -> None:
    p = Peripherals(STM32F103XB)
    p.send(b"xy")
    p.write(DR, 4, ord("a"))
    state = p.snapshot()
    p.write(DR, 4, ord("b"))
    p.read(DR, 4)
    p.write(0x40011004, 4, 5)
    p.write(0xE000ED0C, 4, 0x05FA0004)
    p.restore(state)
    assert bytes(p.output) == b"a"
    assert p.input_pending == 2
    assert p.read(0x40011004, 4) == 0
    assert not p.reset_requested

"""The facts about a microcontroller that decide whether firmware can boot on it.

An image that runs on one STM32 can fault on its neighbour: a stack pointer at the top of 128 KB of
SRAM is outside the 20 KB of an F103, and CCM RAM holds a stack but not code. The emulator and the
static vector check read these facts from a :class:`Part` instead of hard-coding one board, so a
layout (or a user on the command line) says which chip an image is meant for.

Only the registers that start-up code polls are described here (clock "ready" flags, the clock
switch status, the console UART): without them real HAL start-up code spins forever in an emulator
that stores peripheral registers as plain memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mcuota.errors import UsageError

Cpu = Literal["cortex-m3", "cortex-m4"]
CPUS: tuple[Cpu, ...] = ("cortex-m3", "cortex-m4")

#: CPUID values the System Control Block reports (r1p1 Cortex-M3, r0p1 Cortex-M4 as on STM32F1/F4).
CPUID: dict[Cpu, int] = {"cortex-m3": 0x411FC231, "cortex-m4": 0x410FC241}


@dataclass(frozen=True)
class AddressRange:
    """A half-open address range ``[start, start + size)``; ``executable`` is false for data-only RAM."""

    start: int
    size: int
    name: str = ""
    executable: bool = True

    @property
    def end(self) -> int:
        return self.start + self.size

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end

    def covers(self, start: int, length: int) -> bool:
        """Whether ``[start, start + length)`` lies wholly inside this range."""
        return self.start <= start and start + length <= self.end

    def overlaps(self, start: int, length: int) -> bool:
        return start < self.end and self.start < start + length

    def __str__(self) -> str:
        label = f"{self.name} " if self.name else ""
        return f"{label}0x{self.start:08x}..0x{self.end:08x}"


@dataclass(frozen=True)
class ReadyBit:
    """A status bit the hardware sets once its enable bit is set (HSERDY follows HSEON, and so on)."""

    status: int
    status_bit: int
    enable: int
    enable_bit: int


@dataclass(frozen=True)
class Part:
    """One microcontroller as the emulator sees it: core, memories and the registers boot code polls."""

    name: str
    cpu: Cpu
    flash: AddressRange
    ram: tuple[AddressRange, ...]
    #: Base addresses of USARTs whose SR (+0) / DR (+4) pair is the console; all feed one stream.
    console_uarts: tuple[int, ...] = (0x40013800,)
    ready_bits: tuple[ReadyBit, ...] = ()
    #: Addresses of RCC_CFGR-style registers whose SWS field (bits 3:2) mirrors SW (bits 1:0).
    clock_switches: tuple[int, ...] = ()
    #: Registers whose value at reset is not zero.
    reset_values: tuple[tuple[int, int], ...] = ()
    #: Where flash is also visible when the chip boots from it (STM32: 0x00000000); None for no alias.
    boot_alias: int | None = 0x00000000

    def __post_init__(self) -> None:
        if self.cpu not in CPUS:
            raise UsageError(f"part {self.name}: unknown CPU {self.cpu!r}; known: {', '.join(CPUS)}")
        regions = [self.flash, *self.ram]
        if self.boot_alias is not None:
            regions.append(AddressRange(self.boot_alias, self.flash.size, "flash boot alias"))
        for i, first in enumerate(regions):
            for second in regions[i + 1:]:
                if first.overlaps(second.start, second.size):
                    raise UsageError(f"part {self.name}: {first} overlaps {second}")



def stack_fits(sp: int, ram: Sequence[AddressRange]) -> bool:
    """An initial SP is usable inside RAM or at its very end: the stack is full-descending, so the
    first push writes just below SP (SP at RAM's start would push below RAM)."""
    return any(r.start < sp <= r.end for r in ram)


def _rcc_ready(cr: int, pairs: tuple[tuple[int, int], ...]) -> tuple[ReadyBit, ...]:
    return tuple(ReadyBit(cr, rdy, cr, on) for on, rdy in pairs)


_F1_RCC = 0x40021000
_F4_RCC = 0x40023800
_F4_PWR = 0x40007000

STM32F103XB = Part(
    name="stm32f103xb",
    cpu="cortex-m3",
    flash=AddressRange(0x08000000, 128 * 1024, "flash"),
    ram=(AddressRange(0x20000000, 20 * 1024, "sram"),),
    console_uarts=(0x40013800, 0x40004400),  # USART1, USART2
    ready_bits=(
        *_rcc_ready(_F1_RCC, ((0, 1), (16, 17), (24, 25))),   # HSI, HSE, PLL
        ReadyBit(_F1_RCC + 0x20, 1, _F1_RCC + 0x20, 0),        # BDCR LSERDY
        ReadyBit(_F1_RCC + 0x24, 1, _F1_RCC + 0x24, 0),        # CSR LSIRDY
    ),
    clock_switches=(_F1_RCC + 0x04,),
    reset_values=((_F1_RCC, 0x00000083),),
)

_F4_READY = (
    *_rcc_ready(_F4_RCC, ((0, 1), (16, 17), (24, 25), (26, 27), (28, 29))),  # HSI HSE PLL PLLI2S PLLSAI
    ReadyBit(_F4_RCC + 0x70, 1, _F4_RCC + 0x70, 0),                        # BDCR LSERDY
    ReadyBit(_F4_RCC + 0x74, 1, _F4_RCC + 0x74, 0),                        # CSR LSIRDY
    ReadyBit(_F4_PWR + 0x04, 14, _F4_RCC + 0x40, 28),                      # VOSRDY once PWR is clocked
    ReadyBit(_F4_PWR + 0x04, 16, _F4_PWR, 16),                             # ODRDY (F42x/F43x)
    ReadyBit(_F4_PWR + 0x04, 17, _F4_PWR, 17),                             # ODSWRDY
)

# The sample application is written against the STM32F1 memory map even in its F4 builds: its
# console is USART1 at 0x40013800 (SYSCFG on a real F4) and it configures GPIOC at 0x40011000 (the
# real F4 USART1, so treating that as a console would print its GPIO writes). USART2 (0x40004400) is
# at the same address on both families. For other F4 firmware, replace ``console_uarts`` with
# ``dataclasses.replace(part, console_uarts=(0x40011000,))``.
_F4_UARTS = (0x40013800, 0x40004400)

STM32F407XG = Part(
    name="stm32f407xg",
    cpu="cortex-m4",
    flash=AddressRange(0x08000000, 1024 * 1024, "flash"),
    ram=(AddressRange(0x20000000, 128 * 1024, "sram"),
         AddressRange(0x10000000, 64 * 1024, "ccm", executable=False)),
    console_uarts=_F4_UARTS,
    ready_bits=_F4_READY,
    clock_switches=(_F4_RCC + 0x08,),
    reset_values=((_F4_RCC, 0x00000083),),
)

STM32F429XI = Part(
    name="stm32f429xi",
    cpu="cortex-m4",
    flash=AddressRange(0x08000000, 2048 * 1024, "flash"),
    ram=(AddressRange(0x20000000, 192 * 1024, "sram"),
         AddressRange(0x10000000, 64 * 1024, "ccm", executable=False)),
    console_uarts=_F4_UARTS,
    ready_bits=_F4_READY,
    clock_switches=(_F4_RCC + 0x08,),
    reset_values=((_F4_RCC, 0x00000083),),
)

# Nordic and Cypress parts keep flash where the silicon has it (so slot addresses are real) but, like
# the sample builds for them, the console is the sample's USART1 and not the chip's own UART.
NRF52840 = Part(
    name="nrf52840",
    cpu="cortex-m4",
    flash=AddressRange(0x00000000, 1024 * 1024, "flash"),
    ram=(AddressRange(0x20000000, 256 * 1024, "sram"),),
    boot_alias=None,   # flash already starts at 0
)

# PSoC 6 (CY8C6247, the CM4 core): flash at 0x10000000. Its SRAM is at 0x08000000; the sample builds
# keep the STM32 RAM map, so the part also offers 128 KB at 0x20000000 for their stack and data.
PSOC6 = Part(
    name="psoc6",
    cpu="cortex-m4",
    flash=AddressRange(0x10000000, 1024 * 1024, "flash"),
    ram=(AddressRange(0x08000000, 288 * 1024, "sram"),
         AddressRange(0x20000000, 128 * 1024, "sample ram")),
    boot_alias=None,   # 0x00000000 is the boot ROM, not flash
)

PARTS: dict[str, Part] = {p.name: p for p in (STM32F103XB, STM32F407XG, STM32F429XI, NRF52840, PSOC6)}

# The chip each shipped sample build (mcuota.samples.TARGETS) is linked for.
_SAMPLE_PARTS: dict[str, Part] = {
    "gizwits-f103": STM32F103XB,
    "dapboot-f103": STM32F103XB,
    "stm32-header-f103": STM32F103XB,
    "mcuboot-f407": STM32F407XG,
    "interrupt-f429": STM32F429XI,
    "large-f407": STM32F407XG,
    "nrf52840": NRF52840,
    "psoc6": PSOC6,
}


def part_named(name: str) -> Part:
    try:
        return PARTS[name.lower()]
    except KeyError:
        raise UsageError(f"unknown part {name!r}; known: {', '.join(PARTS)}") from None


def part_for_cpu(cpu: str) -> Part:
    """The representative part for a bare core name, as the command line's ``--cpu`` means it."""
    if cpu == "cortex-m3":
        return STM32F103XB
    if cpu == "cortex-m4":
        return STM32F407XG
    raise UsageError(f"unknown CPU {cpu!r}; known: {', '.join(CPUS)}")


def part_for_sample(target: str) -> Part:
    """The part a shipped sample target runs on (``"mcuboot-f407"`` → STM32F407xG)."""
    try:
        return _SAMPLE_PARTS[target]
    except KeyError:
        raise UsageError(f"unknown sample target {target!r}; known: {', '.join(_SAMPLE_PARTS)}") from None

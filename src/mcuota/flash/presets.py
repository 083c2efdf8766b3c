"""The flash parts the seed systems run on, by name.

Geometry and physics come from the shared reference ("Flash physics worth modelling") where it has
them; figures it does not give are taken from the vendors' datasheets and named in each part's
``notes`` so nobody mistakes a best reading for a measurement. Where a datasheet gives only a maximum,
the typical figure repeats it (timeouts stay right; typical totals run pessimistic).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from mcuota.errors import UsageError
from mcuota.flash.geometry import Geometry
from mcuota.flash.nor import NorFlash
from mcuota.flash.part import Duration, FlashPart, OverwriteRule
from mcuota.flash.power import PowerDomain
from mcuota.flash.w25q import SpiNorPart, W25QFlash

KB = 1024
MB = 1024 * KB

_STM32F4_BANK = ((4, 16 * KB), (1, 64 * KB), (7, 128 * KB))
# RM0090/DS8626, 2.7-3.6 V with x32 parallelism: one 32-bit word per tPROG.
_STM32F4_PROGRAM = Duration(16e-6, 100e-6)
_STM32F4_ERASE = ((16 * KB, Duration(0.25, 0.5)), (64 * KB, Duration(0.55, 1.1)),
                  (128 * KB, Duration(1.0, 2.0)))


def _stm32f103c8() -> FlashPart:
    return FlashPart(
        name="stm32f103c8", geometry=Geometry.uniform(64, 1 * KB, 0x08000000), write_unit=2,
        overwrite=OverwriteRule.ZERO_ONLY, endurance=10_000,
        program_time=Duration(52.5e-6, 70e-6), program_time_unit=2,
        erase_times=((1 * KB, Duration(20e-3, 40e-3)),),
        notes="DS5319/PM0075: half-word programming, 0x0000 may overwrite (else PGERR); page erase "
              "20-40 ms (no typical given: 20 ms used).")


def _stm32f103cb() -> FlashPart:
    return _stm32f103c8().variant(
        name="stm32f103cb", geometry=Geometry.uniform(128, 1 * KB, 0x08000000),
        notes="The 128 KB member of the F103 medium-density line (same pages and timing as the C8); "
              "simulated devices keep the OTA agent's journal in its upper half.")


def _stm32f407() -> FlashPart:
    return FlashPart(
        name="stm32f407", geometry=Geometry.of(_STM32F4_BANK, 0x08000000), write_unit=1,
        overwrite=OverwriteRule.FORBID, endurance=10_000,
        program_time=_STM32F4_PROGRAM, program_time_unit=4, erase_times=_STM32F4_ERASE,
        notes="Byte-granular programming (PSIZE x8) timed per 32-bit word; timing from DS8626 x32, not "
              "the shared reference. Overwriting non-erased data is refused: stricter than silicon, "
              "to catch bootloader bugs.")


def _stm32f429() -> FlashPart:
    return FlashPart(
        name="stm32f429", geometry=Geometry.of(_STM32F4_BANK * 2, 0x08000000), write_unit=1,
        overwrite=OverwriteRule.FORBID, endurance=10_000,
        program_time=_STM32F4_PROGRAM, program_time_unit=4, erase_times=_STM32F4_ERASE,
        notes="Two 1 MB banks (bank 2 at 0x08100000) of the STM32F4 layout; timing as stm32f407.")


def _nrf52840() -> FlashPart:
    return FlashPart(
        name="nrf52840", geometry=Geometry.uniform(256, 4 * KB, 0x00000000), write_unit=4,
        overwrite=OverwriteRule.FORBID, endurance=10_000,
        program_time=Duration(41e-6, 41e-6), program_time_unit=4,
        erase_times=((4 * KB, Duration(85e-3, 85e-3)),),
        notes="nRF52840 product spec: tWRITE 41 us and tERASEPAGE 85 ms are maxima (used as typical "
              "too). The NVMC's AND-overwrite (nWRITE) is not modelled: overwrites are refused.")


def _psoc6() -> FlashPart:
    return FlashPart(
        name="psoc6", geometry=Geometry.uniform(4096, 512, 0x10000000), write_unit=512,
        overwrite=OverwriteRule.FORBID, endurance=100_000,
        program_time=Duration(10e-3, 10e-3), program_time_unit=512,
        erase_times=((512, Duration(10e-3, 10e-3)),),
        notes="512-byte rows written whole (MCUboot's Cypress port aligns to the row); Infineon's PDL "
              "gives only 'a row write can take up to 20 ms', split evenly between erase and program.")


def _w25q128() -> SpiNorPart:
    return SpiNorPart(
        name="w25q128", geometry=Geometry.uniform(4096, 4 * KB, 0x00000000), write_unit=1,
        overwrite=OverwriteRule.AND, endurance=100_000,
        program_time=Duration(0.4e-3, 3e-3), program_time_unit=256,
        erase_times=((4 * KB, Duration(45e-3, 0.4)), (32 * KB, Duration(0.12, 1.6)),
                     (64 * KB, Duration(0.15, 2.0)), (16 * MB, Duration(40.0, 200.0))),
        page_size=256, block_sizes=(32 * KB, 64 * KB), jedec_id=b"\xef\x40\x18",
        notes="W25Q128JV: page program 0.4/3 ms, 4 KB 45/400 ms, 64 KB 150 ms/2 s, chip 40 s typ from the "
              "reference; 32 KB 120 ms/1.6 s and chip max 200 s from the datasheet. Programming ANDs.")


_PRESETS: dict[str, Callable[[], FlashPart]] = {
    "stm32f103c8": _stm32f103c8,
    "stm32f103cb": _stm32f103cb,
    "stm32f407": _stm32f407,
    "stm32f429": _stm32f429,
    "nrf52840": _nrf52840,
    "psoc6": _psoc6,
    "w25q128": _w25q128,
}


def preset_names() -> tuple[str, ...]:
    return tuple(_PRESETS)


@cache
def get_part(name: str) -> FlashPart:
    """The preset part called ``name`` (case-insensitive); built once, shared (parts are immutable)."""
    builder = _PRESETS.get(name.lower())
    if builder is None:
        raise UsageError(f"unknown flash part {name!r}; known parts: {', '.join(_PRESETS)}")
    return builder()


def new_flash(part: str | FlashPart, domain: PowerDomain | None = None, *, name: str | None = None,
              enforce_endurance: bool = False) -> NorFlash:
    """A fresh (all erased) device of a preset or custom part, on ``domain`` if given; SPI NOR parts
    come back as :class:`W25QFlash` so their command interface is there."""
    spec = get_part(part) if isinstance(part, str) else part
    if isinstance(spec, SpiNorPart):
        return W25QFlash(spec, domain, name=name, enforce_endurance=enforce_endurance)
    return NorFlash(spec, domain, name=name, enforce_endurance=enforce_endurance)

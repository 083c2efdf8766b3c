"""The flash layouts of the seed systems, by name: the maps a bootloader and its application agree on.

Addresses come from the shared facts for each seed (Gizwits' four areas, seed 001's header page, the
Interrupt cookbook's slots, dapboot's 8 KB) and from the sample firmware, which is linked for each
layout's execution address, so every preset can be swept with a shipped sample out of the box.

Choices that are mcuota's rather than a seed's:

* ``stm32-header-*``: seed 001 keeps the OTA request in the header page, so setting it means erasing
  the page that validates the running application. The presets put the request word in front of the
  staged image instead (see :mod:`mcuota.boot.stm32_header`), in internal flash after the 23 KB
  application or at 0 in a W25Q128.
* MCUboot on the STM32F407 uses 128 KB sectors for both slots (3 each, from 0x08020000), so the
  ~230 KB ``large-f407`` build still fits swap-move, which needs one spare sector in the primary slot;
  swap-scratch keeps its scratch in the last 128 KB sector; swap-offset's secondary starts one sector
  early (the update is written from its second sector) and takes that last sector instead.
* The Interrupt layout's STM32F429 allows an all-zero program over programmed bytes (the cookbook
  invalidates a header that way, which the silicon permits); the preset part refuses every overwrite.
* PSoC 6 programs whole 512-byte rows; MCUboot's trailer records need a write unit of at most 8, so
  the layouts use the part with ``write_unit=8`` (what the Cypress flash driver offers MCUboot through
  its row buffer), leaving geometry and timing as the preset has them.

The MCUboot presets are data only: the strategies that run on them live in :mod:`mcuota.boot.mcuboot`
and read the partitions ``bootloader``, ``primary``, ``secondary`` and (swap-scratch) ``scratch``,
and the options ``header_size``, ``signature`` and ``downgrade_prevention``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

from mcuota.boot.layout import FlashDevice, Layout, Partition
from mcuota.errors import UsageError
from mcuota.flash import OverwriteRule

KB = 1024

_F103 = FlashDevice("internal", "stm32f103c8")
_F103_RAM = (0x20000000, 20 * KB)


def _gizwits() -> Layout:
    return Layout(
        name="gizwits-f103",
        description="Gizwits GoKit MCU OTA 3.1 (seed 000): copy APP_BAK to APP while the FLAG record is "
                    "pending, MD5-checked before and after",
        strategy="gizwits", cpu="cortex-m3", devices=(_F103,),
        partitions=(
            Partition("bootloader", "internal", 0x08000000, 11 * KB),
            Partition("flag", "internal", 0x08002C00, 1 * KB),
            Partition("app", "internal", 0x08003000, 26 * KB),
            Partition("app_bak", "internal", 0x08009800, 26 * KB),
        ),
        ram=_F103_RAM, app_address=0x08003000, image_format="gizwits", sample_target="gizwits-f103",
        options={"piece_size": 256, "max_attempts": 3},
    )


def _stm32_header(name: str, staging: Partition, devices: tuple[FlashDevice, ...], where: str,
                  image_offset: int) -> Layout:
    return Layout(
        name=name,
        description=f"Custom STM32 bootloader (seed 001): header page + application, packed OTA image "
                    f"staged {where}; request word in front of the staged image, header written last",
        strategy="stm32-header", cpu="cortex-m3", devices=devices,
        partitions=(
            Partition("bootloader", "internal", 0x08000000, 16 * KB),
            Partition("header", "internal", 0x08004000, 1 * KB),
            Partition("app", "internal", 0x08004400, 23 * KB),
            staging,
        ),
        ram=_F103_RAM, app_address=0x08004400, image_format="stm32-header",
        sample_target="stm32-header-f103",
        options={"crc": "crc32", "image_offset": image_offset, "allow_downgrade": False},
    )


def _stm32_header_f103() -> Layout:
    return _stm32_header("stm32-header-f103", Partition("staging", "internal", 0x0800A000, 24 * KB),
                         (_F103,), "in internal flash after the application", 16)


def _stm32_header_w25q() -> Layout:
    return _stm32_header("stm32-header-w25q", Partition("staging", "spi", 0x00000000, 24 * KB),
                         (_F103, FlashDevice("spi", "w25q128")), "at 0 in a W25Q128", 256)


def _dapboot() -> Layout:
    return Layout(
        name="dapboot-f103",
        description="dapboot USB DFU bootloader on a blue pill (seed 003): 8 KB bootloader, DFU "
                    "download straight into the application area",
        strategy="dapboot", cpu="cortex-m3", devices=(_F103,),
        partitions=(
            Partition("bootloader", "internal", 0x08000000, 8 * KB),
            Partition("app", "internal", 0x08002000, 56 * KB),
        ),
        ram=_F103_RAM, app_address=0x08002000, image_format="raw", sample_target="dapboot-f103",
        options={"transfer_size": 1024},
    )


def _interrupt() -> Layout:
    return Layout(
        name="interrupt-f429",
        description="Interrupt DFU cookbook (seed 004): bootloader -> loader (slot 1) -> application "
                    "(slot 2), shared no-init RAM flags and boot counter, header written last",
        strategy="interrupt", cpu="cortex-m4",
        # silicon lets a program clear bits over data; the cookbook zeroes headers to invalidate them
        devices=(FlashDevice("internal", "stm32f429", {"overwrite": OverwriteRule.ZERO_ONLY}),),
        partitions=(
            Partition("bootloader", "internal", 0x08000000, 16 * KB),
            Partition("slot1", "internal", 0x08004000, 112 * KB),
            Partition("slot2", "internal", 0x08020000, 896 * KB),
        ),
        ram=(0x20000000, 192 * KB), app_address=0x08020080, image_format="interrupt",
        sample_target="interrupt-f429",
        options={"header_region": 0x80, "max_boot_count": 3, "shared_ram": 0x20000000},
    )


# -- MCUboot ---------------------------------------------------------------------------------------------

_MCUBOOT_MODES = ("overwrite", "swap-scratch", "swap-move", "swap-offset")
_MODE_TEXT = {
    "overwrite": "overwrite-only (no revert, refuses downgrades)",
    "swap-scratch": "swap through a scratch area (revertible)",
    "swap-move": "swap-move, one spare sector in the primary slot (revertible)",
    "swap-offset": "swap-offset, update written from the secondary's second sector (revertible)",
}


def _mcuboot(mode: str, board: str, *, devices: tuple[FlashDevice, ...], cpu: str, ram: tuple[int, int],
             boot: Partition, primary: Partition, secondary: Partition, scratch: Partition | None,
             header_size: int, sample: str, chip: str) -> Layout:
    partitions = [boot, primary, secondary]
    if mode == "swap-scratch":
        if scratch is None:
            raise UsageError(f"mcuboot-{mode}-{board}: no scratch partition")
        partitions.append(scratch)
    return Layout(
        name=f"mcuboot-{mode}-{board}",
        description=f"MCUboot {_MODE_TEXT[mode]} on {chip}",
        strategy=f"mcuboot-{mode}", cpu=cpu, devices=devices, partitions=tuple(partitions), ram=ram,
        app_address=primary.address + header_size, image_format="mcuboot", sample_target=sample,
        options={"header_size": header_size, "signature": "ed25519", "downgrade_prevention": True},
    )


def _mcuboot_f407(mode: str) -> Layout:
    sector = 128 * KB
    primary = Partition("primary", "internal", 0x08020000, 3 * sector)
    if mode == "swap-offset":
        secondary = Partition("secondary", "internal", 0x08080000, 4 * sector)
    else:
        secondary = Partition("secondary", "internal", 0x08080000, 3 * sector)
    return _mcuboot(mode, "f407", devices=(FlashDevice("internal", "stm32f407"),), cpu="cortex-m4",
                    ram=(0x20000000, 128 * KB),
                    boot=Partition("bootloader", "internal", 0x08000000, 128 * KB), primary=primary,
                    secondary=secondary,
                    scratch=Partition("scratch", "internal", 0x080E0000, sector), header_size=0x200,
                    sample="mcuboot-f407", chip="an STM32F407 (3 x 128 KB sector slots from 0x08020000)")


def _mcuboot_nrf52840(mode: str) -> Layout:
    slot = 0x76000
    primary = Partition("primary", "internal", 0x0000C000, slot)
    extra = 0x1000 if mode == "swap-offset" else 0
    secondary = Partition("secondary", "internal", 0x00082000, slot + extra)
    return _mcuboot(mode, "nrf52840", devices=(FlashDevice("internal", "nrf52840"),), cpu="cortex-m4",
                    ram=(0x20000000, 256 * KB), boot=Partition("bootloader", "internal", 0x00000000, 48 * KB),
                    primary=primary, secondary=secondary,
                    scratch=Partition("scratch", "internal", 0x000F8000, 0x8000), header_size=0x200,
                    sample="nrf52840", chip="an nRF52840 (48 KB bootloader, 472 KB slots of 4 KB pages)")


def _mcuboot_psoc6(mode: str) -> Layout:
    slot = 0x60000
    primary = Partition("primary", "internal", 0x10018000, slot)
    extra = 0x1000 if mode == "swap-offset" else 0
    secondary = Partition("secondary", "spi", 0x00000000, slot + extra)
    return _mcuboot(mode, "psoc6",
                    devices=(FlashDevice("internal", "psoc6", {"write_unit": 8}),
                             FlashDevice("spi", "w25q128")),
                    cpu="cortex-m4", ram=(0x08000000, 288 * KB),
                    boot=Partition("bootloader", "internal", 0x10000000, 96 * KB), primary=primary,
                    secondary=secondary, scratch=Partition("scratch", "spi", 0x00080000, 4 * KB),
                    header_size=0x400, sample="psoc6",
                    chip="a PSoC 6 (384 KB primary slot of 512-byte rows, secondary at 0 in a W25Q128)")


_BUILDERS: dict[str, Callable[[], Layout]] = {
    "gizwits-f103": _gizwits,
    "stm32-header-f103": _stm32_header_f103,
    "stm32-header-w25q": _stm32_header_w25q,
    "dapboot-f103": _dapboot,
    "interrupt-f429": _interrupt,
}
for _mode in _MCUBOOT_MODES:
    for _board, _builder in (("f407", _mcuboot_f407), ("nrf52840", _mcuboot_nrf52840),
                             ("psoc6", _mcuboot_psoc6)):
        _BUILDERS[f"mcuboot-{_mode}-{_board}"] = partial(_builder, _mode)


def layout_names() -> tuple[str, ...]:
    return tuple(_BUILDERS)


def get_layout(name: str) -> Layout:
    """The preset called ``name`` (case-insensitive), validated; layouts are immutable, so one
    instance per preset is shared."""
    return _built(name.lower())


@cache
def _built(name: str) -> Layout:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise UsageError(f"unknown layout {name!r}; known layouts: {', '.join(_BUILDERS)}")
    layout = builder()
    layout.validate()
    return layout

"""The NOR-flash model every simulated bootloader runs on (see DEVELOPERS.md for the layer rules).

Pure: no I/O except :func:`save_flash` / :func:`load_flash`. Typical use::

    domain = PowerDomain()
    internal = new_flash("stm32f407", domain)
    external = new_flash("w25q128", domain, name="spi")
    start = domain.snapshot()
    total = count_ops(domain, run_update)          # erases + programs of a clean run
    for op in range(1, total + 1):
        domain.restore(start)
        domain.arm(FaultPlan.torn_at(op, seed=7))  # or FaultPlan.cut_before(op)
        try:
            run_update()
        except PowerLoss:
            domain.power_on()
        ...                                        # reboot to completion and check
"""

from mcuota.flash.errors import (
    FlashAddressError,
    FlashAlignmentError,
    FlashError,
    FlashProgramError,
    FlashWearError,
    PowerLoss,
    PowerOff,
)
from mcuota.flash.geometry import Geometry, Sector
from mcuota.flash.nor import NorFlash
from mcuota.flash.part import Duration, FlashPart, OverwriteRule
from mcuota.flash.persist import load_flash, save_flash
from mcuota.flash.power import (
    DomainSnapshot,
    FaultKind,
    FaultPlan,
    OpKind,
    OpRecord,
    PowerDomain,
    TornStyle,
    count_ops,
    sweep_plans,
)
from mcuota.flash.presets import get_part, new_flash, preset_names
from mcuota.flash.state import FlashSnapshot
from mcuota.flash.w25q import SpiNorPart, W25QFlash, W25QSpi

__all__ = [
    "DomainSnapshot",
    "Duration",
    "FaultKind",
    "FaultPlan",
    "FlashAddressError",
    "FlashAlignmentError",
    "FlashError",
    "FlashPart",
    "FlashProgramError",
    "FlashSnapshot",
    "FlashWearError",
    "Geometry",
    "NorFlash",
    "OpKind",
    "OpRecord",
    "OverwriteRule",
    "PowerDomain",
    "PowerLoss",
    "PowerOff",
    "Sector",
    "SpiNorPart",
    "TornStyle",
    "W25QFlash",
    "W25QSpi",
    "count_ops",
    "get_part",
    "load_flash",
    "new_flash",
    "preset_names",
    "save_flash",
    "sweep_plans",
]

"""The sample firmware shipped with mcuota, for the demo, the tests and the benchmarks.

Real Cortex-M builds (ELF, BIN, HEX) of one small application in four releases, each linked for the
execution address of one layout; ``firmware/src`` holds the source and the script that rebuilds them
byte-identically. Shipping them as package data keeps a clone self-contained.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

RELEASES = ("1.0.0", "1.0.1", "1.1.0", "2.0.0")
TARGETS = (
    "gizwits-f103", "dapboot-f103", "stm32-header-f103", "mcuboot-f407", "interrupt-f429", "large-f407",
    "nrf52840", "psoc6",
)


def firmware_dir() -> Path:
    return Path(str(resources.files(__package__) / "firmware"))


def sample_path(target: str, release: str, ext: str = "bin") -> Path:
    """Path of ``sample-app-<release>.<ext>`` linked for ``target`` (e.g. ``mcuboot-f407``)."""
    if target not in TARGETS:
        raise ValueError(f"unknown sample target {target!r}; known: {', '.join(TARGETS)}")
    if release not in RELEASES:
        raise ValueError(f"unknown sample release {release!r}; known: {', '.join(RELEASES)}")
    return firmware_dir() / target / f"sample-app-{release}.{ext}"

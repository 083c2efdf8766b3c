"""Layout presets: every one validates, matches its seed's map, and fits the firmware it is swept with."""

from __future__ import annotations

import importlib.util

import pytest

from mcuota.boot.layout import FlashDevice, Layout, Partition
from mcuota.boot.presets import get_layout, layout_names
from mcuota.boot.registry import register, strategy_class, strategy_for, strategy_names
from mcuota.boot.strategy import Strategy
from mcuota.errors import UsageError
from mcuota.samples import TARGETS, sample_path

KB = 1024


@pytest.mark.parametrize("name", layout_names())
def test_every_preset_validates_and_its_sample_fits(name: str) -> None:
    layout = get_layout(name)
    layout.validate()
    assert layout.sample_target in TARGETS
    holder = [p for p in layout.partitions if p.address <= layout.app_address < p.end]
    assert len(holder) == 1, "exactly one partition holds the application address"
    payload = sample_path(layout.sample_target, "2.0.0").read_bytes()
    assert layout.app_address + len(payload) <= holder[0].end
    assert layout.strategy in strategy_names()


def test_names_are_unique_and_lookup_is_case_insensitive() -> None:
    names = layout_names()
    assert len(names) == len(set(names))
    assert get_layout("GIZWITS-F103") is get_layout("gizwits-f103")
    with pytest.raises(UsageError, match="unknown layout 'nope'; known layouts: gizwits-f103"):
        get_layout("nope")


def _map(layout: Layout) -> dict[str, tuple[str, int, int]]:
    return {p.name: (p.device, p.address, p.size) for p in layout.partitions}


def test_seed_maps_are_the_documented_ones() -> None:
    assert _map(get_layout("gizwits-f103")) == {
        "bootloader": ("internal", 0x08000000, 11 * KB), "flag": ("internal", 0x08002C00, 1 * KB),
        "app": ("internal", 0x08003000, 26 * KB), "app_bak": ("internal", 0x08009800, 26 * KB)}
    header = _map(get_layout("stm32-header-f103"))
    assert header["header"] == ("internal", 0x08004000, 1 * KB)
    assert header["app"] == ("internal", 0x08004400, 23 * KB)
    assert header["staging"][1] == header["app"][1] + header["app"][2], "staging follows the application"
    assert _map(get_layout("stm32-header-w25q"))["staging"] == ("spi", 0, 24 * KB)
    assert _map(get_layout("dapboot-f103"))["app"][1] == 0x08002000
    assert _map(get_layout("interrupt-f429")) == {
        "bootloader": ("internal", 0x08000000, 16 * KB), "slot1": ("internal", 0x08004000, 112 * KB),
        "slot2": ("internal", 0x08020000, 896 * KB)}


@pytest.mark.parametrize("board", ["f407", "nrf52840", "psoc6"])
def test_mcuboot_layouts_follow_each_mode(board: str) -> None:
    layouts = {mode: get_layout(f"mcuboot-{mode}-{board}")
               for mode in ("overwrite", "swap-scratch", "swap-move", "swap-offset")}
    for mode, layout in layouts.items():
        assert layout.strategy == f"mcuboot-{mode}"
        assert layout.has_partition("scratch") == (mode == "swap-scratch")
        primary, secondary = layout.partition("primary"), layout.partition("secondary")
        assert layout.app_address == primary.address + layout.options["header_size"]
        device = {d.name: d.flash_part() for d in layout.devices}[secondary.device]
        sector = device.geometry.sector_at(secondary.address).size
        extra = sector if mode == "swap-offset" else 0
        assert secondary.size == primary.size + extra, f"{mode}: secondary = primary + {extra}"


def test_swap_move_f407_fits_the_large_image_with_a_spare_sector() -> None:
    layout = get_layout("mcuboot-swap-move-f407")
    primary = layout.partition("primary")
    sectors = {d.name: d.flash_part() for d in layout.devices}["internal"].geometry.sectors_in(
        primary.address, primary.size)
    assert [s.size for s in sectors] == [128 * KB] * 3
    large = len(sample_path("large-f407", "2.0.0").read_bytes()) + layout.options["header_size"]
    assert large <= primary.size - sectors[-1].size, "image + header leave the last sector spare"


def test_psoc6_layouts_use_an_8_byte_write_unit_variant() -> None:
    layout = get_layout("mcuboot-overwrite-psoc6")
    internal = layout.device("internal")
    assert internal.part == "psoc6"
    assert internal.flash_part().write_unit == 8
    assert layout.partition("secondary").device == "spi"
    assert layout.app_address == 0x10018400


def test_validation_names_the_broken_partition() -> None:
    device = (FlashDevice("internal", "stm32f103c8"),)
    bad = Layout("bad", "", "gizwits", "cortex-m3", device,
                 (Partition("a", "internal", 0x08000000, 2 * KB), Partition("b", "internal", 0x08000400, KB)),
                 (0x20000000, 20 * KB), 0x08000000, "raw", "gizwits-f103")
    with pytest.raises(UsageError, match="partitions a and b overlap"):
        bad.validate()


def test_registry_imports_lazily_and_explains_what_is_missing() -> None:
    assert strategy_for(get_layout("gizwits-f103")).name == "gizwits"
    assert strategy_class("dapboot").name == "dapboot"
    with pytest.raises(UsageError, match="unknown bootloader strategy 'nope'"):
        strategy_class("nope")
    if importlib.util.find_spec("mcuota.boot.mcuboot") is None:  # the MCUboot strategies are not in yet
        with pytest.raises(UsageError, match=r"lives in mcuota\.boot\.mcuboot, which cannot be imported"):
            strategy_class("mcuboot-swap-move")
    else:
        found = strategy_class("mcuboot-swap-move")
        assert issubclass(found, Strategy)
        assert found.name == "mcuboot-swap-move"


def test_registry_refuses_what_is_not_a_strategy() -> None:
    with pytest.raises(UsageError, match="is not a Strategy subclass"):
        register("x", int)  # type: ignore[arg-type]

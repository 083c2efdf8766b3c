"""Beyond the generic sweep: torn erases of trailer sectors replaced by every field-level partial state
(the case bootutil cannot survive, mcuboot issue 1966), random plans of several faults whose later
ones also tear the recovery, scattered tears, and the flash variants of MCUboot's simulator matrix
(erased value 0x00, 8-byte alignment)."""

from __future__ import annotations

import dataclasses

import pytest
from mcuboot_helpers import (
    MODES,
    SWAP_MODES,
    device,
    layout_of,
    mcuboot,
    random_faults,
    release,
    torn_trailer_erases,
    variant,
    with_history,
)

from mcuota.boot.layout import FlashDevice
from mcuota.boot.sweep import sweep
from mcuota.boot.verdict import Outcome
from mcuota.flash import TornStyle


@pytest.mark.parametrize("mode", SWAP_MODES)
@pytest.mark.parametrize("how", ["test", "permanent", "revert"])
def test_every_partial_erase_of_a_trailer_sector(mode: str, how: str) -> None:
    """On a board that swapped before (so the primary trailer holds a finished journal), every erase of
    a sector holding a trailer is replaced by each partial state: fields kept, erased or half erased."""
    dev = device(layout_of(mode, "f407"), "1.1.0", "2.0.0", history="1.0.0")
    report = torn_trailer_erases(dev, permanent=how == "permanent", revert=how == "revert")
    assert report.runs > 300
    assert not report.failures, report.failures[:5]
    if how == "revert":
        assert set(report.outcomes) == {"old"}


def test_every_partial_erase_overwrite_only() -> None:
    dev = device(layout_of("overwrite", "nrf52840"), "1.1.0", "2.0.0", history="1.0.0")
    report = torn_trailer_erases(dev)
    assert report.runs > 50
    assert not report.failures, report.failures[:5]


@pytest.mark.parametrize("revert", [False, True])
def test_every_partial_erase_of_the_large_swap_move(revert: bool) -> None:
    """The 230 KB image whose first move goes into the primary trailer's sector."""
    dev = device(layout_of("swap-move", "f407"), "1.1.0", "2.0.0", history="1.0.0", target="large-f407")
    report = torn_trailer_erases(dev, revert=revert, half=20)
    assert not report.failures, report.failures[:5]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("style", [TornStyle.SCATTER, TornStyle.SEQUENTIAL])
def test_random_multi_fault_plans(mode: str, style: TornStyle) -> None:
    dev = device(layout_of(mode, "nrf52840"), "1.1.0", "2.0.0", history="1.0.0")
    report = random_faults(dev, plans=150, faults=3, style=style, seed=1)
    assert not report.failures, report.failures[:5]
    assert report.outcomes.get("new", 0) > 0


@pytest.mark.parametrize("mode", SWAP_MODES)
def test_random_multi_fault_plans_during_revert(mode: str) -> None:
    dev = device(layout_of(mode, "psoc6"), "1.1.0", "2.0.0", history="1.0.0")
    report = random_faults(dev, plans=80, faults=3, revert=True, seed=2)
    assert not report.failures, report.failures[:5]
    assert set(report.outcomes) == {"old"}


@pytest.mark.parametrize("board", ["f407", "nrf52840"])
@pytest.mark.parametrize("mode", MODES)
def test_erased_zero_and_eight_byte_alignment(mode: str, board: str) -> None:
    """MCUboot's simulator matrix corner: flash that erases to 0x00 and writes 8 bytes at a time (the
    PSoC 6 layouts write 8 bytes already; erased 0x00 there: test_slots_with_different_erased_values)."""
    layout = variant(layout_of(mode, board), erased=0x00, write_unit=8)
    strategy = mcuboot(layout)
    assert strategy.options.align == 8
    assert strategy.primary.erased == 0x00
    seasoned = with_history(strategy, release(strategy, "1.0.0"))
    for revert in (False, True) if mode != "overwrite" else (False,):
        report = sweep(layout, release(strategy, "1.1.0"), release(strategy, "2.0.0"), torn=True,
                       revert=revert, strategy=seasoned, workers=1)
        assert report.ok, report.failures[:3]
        assert report.clean is (Outcome.OLD if revert else Outcome.NEW)


def test_erased_zero_partial_erases() -> None:
    """With erased 0x00 a 0x01 flag loses its one bit to a torn erase: the rewinds still hold."""
    dev = device(variant(layout_of("swap-move", "nrf52840"), erased=0x00), "1.1.0", "2.0.0", history="1.0.0")
    for revert in (False, True):
        report = torn_trailer_erases(dev, revert=revert)
        assert not report.failures, report.failures[:5]


@pytest.mark.parametrize("mode", SWAP_MODES)
def test_sweep_seeds(mode: str) -> None:
    """The generic sweep with other seeds for the torn states (each seed is a different tear)."""
    layout = layout_of(mode, "f407")
    strategy = mcuboot(layout)
    seasoned = with_history(strategy, release(strategy, "1.0.0"))
    for seed in (1, 2, 3):
        report = sweep(layout, release(strategy, "1.1.0"), release(strategy, "2.0.0"), torn=True, seed=seed,
                       recovery_share=0.5, strategy=seasoned, workers=1)
        assert report.ok, report.failures[:3]


@pytest.mark.parametrize("mode", MODES)
def test_slots_with_different_erased_values(mode: str) -> None:
    """PSoC 6 internal flash erasing to 0x00 next to a W25Q erasing to 0xFF: each trailer is read and
    written with its own slot's erased value, data is copied byte for byte."""
    base = layout_of(mode, "psoc6")
    devices = (FlashDevice("internal", "psoc6", {"write_unit": 8, "erased": 0x00}), base.devices[1])
    layout = dataclasses.replace(base, name=f"{base.name}-mixed", devices=devices)
    strategy = mcuboot(layout)
    assert (strategy.primary.erased, strategy.secondary.erased) == (0x00, 0xFF)
    seasoned = with_history(strategy, release(strategy, "1.0.0"))
    for revert in (False, True) if mode != "overwrite" else (False,):
        report = sweep(layout, release(strategy, "1.1.0"), release(strategy, "2.0.0"), torn=True,
                       revert=revert, strategy=seasoned, workers=1)
        assert report.ok, report.failures[:3]

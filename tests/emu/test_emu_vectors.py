"""The static vector-table check: every shipped sample passes in its own slot, broken slots are named."""

from __future__ import annotations

import random
import struct

import pytest

from mcuota.emu.parts import STM32F103XB, STM32F407XG, AddressRange, part_for_sample
from mcuota.emu.vectors import VectorProblem, check_vector_table, read_vectors
from mcuota.samples import RELEASES, TARGETS, sample_path

# Execution address and slot size each sample is linked for (samples/firmware/src/build.sh).
SLOTS = {
    "gizwits-f103": (0x08003000, 26 * 1024),
    "dapboot-f103": (0x08002000, 56 * 1024),
    "stm32-header-f103": (0x08004400, 23 * 1024),
    "mcuboot-f407": (0x08020200, 0x1FE00),
    "interrupt-f429": (0x08020080, 0x1FF80),
    "large-f407": (0x08020200, 0x5FE00),
    "nrf52840": (0x0000C200, 0x1FE00),
    "psoc6": (0x10018400, 0x1FC00),
}

F103_SLOT = AddressRange(0x08003000, 26 * 1024, "slot")


def check(data: bytes, address: int = 0x08003000, slot: AddressRange = F103_SLOT,
          ram: tuple[AddressRange, ...] = STM32F103XB.ram):
    return check_vector_table(data, address, slot=slot, ram=ram)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("target", TARGETS)
def test_every_sample_passes_in_its_own_slot(target: str, release: str) -> None:
    address, size = SLOTS[target]
    data = sample_path(target, release, "bin").read_bytes()
    result = check_vector_table(data[:64], address, slot=AddressRange(address, size),
                                ram=part_for_sample(target).ram)
    assert result.ok, result.issues
    assert result.initial_sp in (0x20005000, 0x20020000)
    assert result.reset_handler is not None
    assert result.reset_handler & 1


def test_erased_slot_is_one_named_problem() -> None:
    result = check(b"\xff" * 64)
    assert result.problems == (VectorProblem.ERASED,)
    assert not result.ok
    assert "erased" in result.issues[0].message


def test_garbage_is_rejected_for_its_stack_and_reset_vector() -> None:
    result = check(random.Random(7).randbytes(64))
    assert VectorProblem.SP_OUTSIDE_RAM in result.problems
    assert VectorProblem.RESET_OUTSIDE_SLOT in result.problems


def test_all_zero_table_fails_every_vector_check() -> None:
    result = check(bytes(64))
    assert set(result.problems) == {VectorProblem.SP_OUTSIDE_RAM, VectorProblem.RESET_NOT_THUMB,
                                    VectorProblem.RESET_OUTSIDE_SLOT}


def test_image_linked_for_another_slot_is_caught() -> None:
    data = sample_path("dapboot-f103", "2.0.0", "bin").read_bytes()  # linked for 0x08002000
    result = check(data)
    assert result.problems == (VectorProblem.RESET_OUTSIDE_SLOT,)
    assert "0x0800204" in result.issues[0].message


def test_f4_image_needs_more_ram_than_an_f103_has() -> None:
    address, size = SLOTS["mcuboot-f407"]
    data = sample_path("mcuboot-f407", "2.0.0", "bin").read_bytes()
    slot = AddressRange(address, size)
    assert check_vector_table(data, address, slot=slot, ram=STM32F407XG.ram).ok
    result = check_vector_table(data, address, slot=slot, ram=STM32F103XB.ram)
    assert result.problems == (VectorProblem.SP_OUTSIDE_RAM,)


@pytest.mark.parametrize(("sp", "ok"), [
    (0x20005000, True),    # top of RAM: the usual full-descending initial SP
    (0x20000100, True),
    (0x20000000, False),   # the first push would land below RAM
    (0x20005004, False),
    (0x10008000, False),   # CCM exists on an F4, not on an F103
])
def test_stack_pointer_bounds(sp: int, ok: bool) -> None:
    data = struct.pack("<II", sp, 0x08003101)
    assert (VectorProblem.SP_OUTSIDE_RAM not in check(data).problems) is ok


def test_even_reset_vector_is_not_thumb() -> None:
    result = check(struct.pack("<II", 0x20005000, 0x08003100))
    assert result.problems == (VectorProblem.RESET_NOT_THUMB,)


def test_reset_handler_just_past_the_slot_is_outside() -> None:
    end = F103_SLOT.end
    assert check(struct.pack("<II", 0x20005000, (end - 2) | 1)).ok
    assert check(struct.pack("<II", 0x20005000, end | 1)).problems == (VectorProblem.RESET_OUTSIDE_SLOT,)


def test_misaligned_table_and_table_outside_slot() -> None:
    data = struct.pack("<II", 0x20005000, 0x08003101)
    assert check(data, address=0x08003040).problems == (VectorProblem.TABLE_MISALIGNED,)
    other = AddressRange(0x08010000, 0x1000)
    result = check(data, slot=other)
    assert set(result.problems) == {VectorProblem.TABLE_OUTSIDE_SLOT, VectorProblem.RESET_OUTSIDE_SLOT}


def test_truncated_input() -> None:
    result = check(b"\x00\x50\x00\x20")
    assert result.problems == (VectorProblem.TRUNCATED,)
    assert result.initial_sp is None
    assert read_vectors(b"1234567") is None

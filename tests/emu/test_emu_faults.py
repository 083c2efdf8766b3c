"""Firmware that does not run is reported as a stop reason, never raised: each way of dying is named."""

from __future__ import annotations

import random
import struct

import pytest

from mcuota.emu.machine import Machine, Stop, boot
from mcuota.emu.parts import STM32F103XB, STM32F407XG
from mcuota.errors import CapacityError, UsageError
from mcuota.samples import sample_path

BASE = 0x08003000
RESET = BASE + 0x100
HARDFAULT = BASE + 0x200


def thumb_image(code: bytes, *, sp: int = 0x20005000) -> bytes:
    """A minimal image: vectors (SP, reset, NMI, HardFault), ``code`` at +0x100, ``b .`` handlers."""
    image = bytearray(b"\xff" * 0x400)
    image[:16] = struct.pack("<4I", sp, RESET | 1, HARDFAULT | 1, HARDFAULT | 1)
    image[0x100:0x100 + len(code)] = code
    image[0x200:0x202] = b"\xfe\xe7"
    return bytes(image)


def jump_to(address: int) -> bytes:
    return struct.pack("<HHI", 0x4800, 0x4700, address)   # ldr r0, [pc, #0]; bx r0; .word address


def store(value: int, address: int) -> bytes:
    return struct.pack("<HHHHII", 0x4801, 0x4902, 0x6001, 0xE7FE, address, value)  # str r1, [r0]


def run(image: bytes, *, part=STM32F103XB, address: int = BASE, **kwargs):
    return boot(image, address, part=part, **kwargs)


def test_erased_flash_never_starts() -> None:
    result = run(b"\xff" * 0x1000)
    assert result.stop is Stop.BAD_VECTORS
    assert result.fault
    assert result.instructions == 0
    assert "erased" in result.detail


def test_random_bytes_are_a_bad_vector_table() -> None:
    result = run(random.Random(1).randbytes(4096))
    assert result.stop is Stop.BAD_VECTORS
    assert "reset vector" in result.detail


@pytest.mark.parametrize("seed", range(4))
def test_random_code_behind_valid_vectors_is_reported(seed: int) -> None:
    garbage = struct.pack("<II", 0x20005000, RESET | 1) + random.Random(seed).randbytes(0x1000)
    result = run(garbage, max_instructions=100_000)
    assert result.fault or result.stop is Stop.LIMIT
    assert result.detail


def test_image_linked_for_another_address_executes_erased_flash() -> None:
    app = sample_path("dapboot-f103", "2.0.0", "bin").read_bytes()      # linked for 0x08002000
    result = run(app)
    assert result.stop is Stop.INVALID_INSTRUCTION
    assert result.instructions == 0
    assert result.pc == 0x08002044
    assert "erased flash" in result.detail


def test_image_shifted_inside_its_slot_does_not_announce_a_version() -> None:
    # Passes the static check (the reset handler is inside the slot) but runs the wrong bytes.
    app = sample_path("mcuboot-f407", "2.0.0", "bin").read_bytes()      # linked for 0x08020200
    result = run(app, part=STM32F407XG, address=0x08020080, max_instructions=300_000)
    assert result.stop is not Stop.CONDITION
    assert result.version is None


def test_stack_for_a_bigger_chip_faults_on_the_first_push() -> None:
    app = sample_path("mcuboot-f407", "2.0.0", "bin").read_bytes()
    result = run(app, address=0x08020200)                                  # on an F103: 20 KB RAM
    assert result.stop is Stop.INVALID_WRITE
    assert "initial stack pointer 0x20020000 is outside" in result.detail


@pytest.mark.parametrize(("code", "stop", "words"), [
    (b"\x00\xde", Stop.INVALID_INSTRUCTION, "undefined instruction"),
    (b"\x00\xbf\x00\xbe", Stop.EXCEPTION, "BKPT"),
    (b"\x00\xbf\x00\xdf", Stop.EXCEPTION, "SVC"),
    (jump_to(HARDFAULT | 1), Stop.HARDFAULT, "HardFault handler"),
    (jump_to(HARDFAULT), Stop.INVALID_STATE, "Thumb state"),
    (jump_to(0x30000001), Stop.INVALID_FETCH, "unmapped"),
    (jump_to(0xFFFFFFF9), Stop.INVALID_FETCH, "0xfffffff8"),
    (store(1, 0x08003000), Stop.FLASH_WRITE, "store to flash"),
    (store(1, 0x30000000), Stop.INVALID_WRITE, "0x30000000"),
    (struct.pack("<HHI", 0x4800, 0x6800, 0x30000000), Stop.INVALID_READ, "0x30000000"),
])
def test_each_fault_is_named(code: bytes, stop: Stop, words: str) -> None:
    result = run(thumb_image(code))
    assert result.stop is stop, result.summary()
    assert result.fault
    assert words in result.detail


def test_code_in_ccm_is_not_executable() -> None:
    result = run(thumb_image(jump_to(0x10000001)), part=STM32F407XG)
    assert result.stop is Stop.INVALID_FETCH
    assert "non-executable" in result.detail


def test_aircr_store_is_a_reset_request() -> None:
    result = run(thumb_image(store(0x05FA0004, 0xE000ED0C)))
    assert result.stop is Stop.RESET
    assert not result.fault
    assert result.instructions == 3            # two literal loads and the store itself


def test_fault_counts_are_exact() -> None:
    app = sample_path("gizwits-f103", "2.0.0", "bin").read_bytes()
    # Load the image 0x1000 too low: the reset handler lands in its own code at the wrong offset.
    faulted = run(app, address=0x08002000)
    assert faulted.fault
    n = faulted.instructions
    assert n > 0
    assert run(app, address=0x08002000, max_instructions=n, until=None).stop is Stop.LIMIT
    again = run(app, address=0x08002000, max_instructions=n + 1, until=None)
    assert (again.stop, again.instructions, again.pc) == (faulted.stop, n, faulted.pc)


def test_a_fault_is_final_until_reset() -> None:
    machine = Machine(STM32F103XB)
    machine.load(BASE, thumb_image(b"\x00\xde"))
    machine.reset(BASE)
    first = machine.run()
    assert machine.run() == first


def test_layout_mistakes_are_usage_errors_not_results() -> None:
    machine = Machine(STM32F103XB)
    with pytest.raises(CapacityError):
        machine.load(0x0801F000, bytes(0x2000))            # runs past the end of flash
    with pytest.raises(UsageError):
        machine.load(0x20000000, bytes(16))                # that is RAM
    with pytest.raises(UsageError):
        machine.reset(0x30000000)
    machine.reset(0x08003000)
    with pytest.raises(UsageError):
        machine.run(0)


def test_image_outside_the_parts_flash_gets_its_own_region() -> None:
    # An image linked for 0x00200000 (another vendor's map) still boots as far as it can.
    image = thumb_image(store(0x05FA0004, 0xE000ED0C))
    vectors = struct.pack("<4I", 0x20005000, 0x00200101, 0x00200201, 0x00200201)
    result = run(vectors + image[16:], address=0x00200000)
    assert result.stop is Stop.RESET

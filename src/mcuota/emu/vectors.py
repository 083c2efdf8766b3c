"""Static check of a Cortex-M vector table: will the core even get to the first instruction?

A bootloader jumps to an image by loading SP from word 0 and PC from word 1 of its vector table.
Most bricked devices in the field fail right there (an erased slot, an image linked for another
slot, a stack pointer for a bigger chip), and all of that is visible in eight bytes without running
anything. This check is pure and takes microseconds, so a bootloader sweep can run it on every
candidate before paying for an emulated boot, and it names each problem so a report can say why.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mcuota.emu.parts import AddressRange, stack_fits

ERASED_WORD = 0xFFFFFFFF

#: VTOR ignores the low 7 bits on Cortex-M3 r2p0+ and Cortex-M4: a table must be 128-byte aligned at
#: least (more when the device has many interrupts: the next power of two of the table's size).
MIN_VECTOR_ALIGNMENT = 128


class VectorProblem(StrEnum):
    TRUNCATED = "truncated"
    ERASED = "erased"
    TABLE_MISALIGNED = "table-misaligned"
    TABLE_OUTSIDE_SLOT = "table-outside-slot"
    SP_OUTSIDE_RAM = "sp-outside-ram"
    RESET_NOT_THUMB = "reset-not-thumb"
    RESET_OUTSIDE_SLOT = "reset-outside-slot"


@dataclass(frozen=True)
class VectorIssue:
    problem: VectorProblem
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class VectorCheck:
    """What the first two vectors say; ``ok`` only when nothing stops the core from starting."""

    address: int
    initial_sp: int | None
    reset_handler: int | None
    issues: tuple[VectorIssue, ...]

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def problems(self) -> tuple[VectorProblem, ...]:
        return tuple(issue.problem for issue in self.issues)


def read_vectors(data: bytes) -> tuple[int, int] | None:
    """(initial SP, reset handler) from the start of a vector table, or None if shorter than 8 bytes."""
    if len(data) < 8:
        return None
    sp, reset = struct.unpack_from("<II", data)
    return sp, reset


def check_vector_table(data: bytes, address: int, *, slot: AddressRange, ram: Sequence[AddressRange],
                       alignment: int = MIN_VECTOR_ALIGNMENT) -> VectorCheck:
    """Check the vector table ``data`` (the bytes at the slot's execution ``address``).

    ``slot`` is the flash range the image may execute from; ``ram`` the ranges a stack may live in.
    """
    vectors = read_vectors(data)
    if vectors is None:
        issue = VectorIssue(VectorProblem.TRUNCATED,
                            f"only {len(data)} bytes at 0x{address:08x}: a vector table needs at least 8")
        return VectorCheck(address, None, None, (issue,))
    sp, reset = vectors
    issues: list[VectorIssue] = []
    if sp == ERASED_WORD and reset == ERASED_WORD:
        issues.append(VectorIssue(VectorProblem.ERASED,
                                  f"vector table at 0x{address:08x} is erased flash (0xffffffff): "
                                  "no image is installed there"))
        return VectorCheck(address, sp, reset, tuple(issues))
    if address % alignment:
        issues.append(VectorIssue(VectorProblem.TABLE_MISALIGNED,
                                  f"vector table at 0x{address:08x} is not {alignment}-byte aligned: "
                                  "VTOR cannot point at it, so interrupts would use the wrong table"))
    if not slot.covers(address, 8):
        issues.append(VectorIssue(VectorProblem.TABLE_OUTSIDE_SLOT,
                                  f"vector table at 0x{address:08x} is outside the slot {slot}"))
    if not stack_fits(sp, ram):
        where = ", ".join(str(r) for r in ram) or "no RAM"
        issues.append(VectorIssue(VectorProblem.SP_OUTSIDE_RAM,
                                  f"initial stack pointer 0x{sp:08x} is outside RAM ({where}): "
                                  "the first push would fault"))
    if not reset & 1:
        issues.append(VectorIssue(VectorProblem.RESET_NOT_THUMB,
                                  f"reset handler 0x{reset:08x} has bit 0 clear: a Cortex-M only runs "
                                  "Thumb code and faults (INVSTATE) on the first instruction"))
    if not slot.contains(reset & ~1):
        issues.append(VectorIssue(VectorProblem.RESET_OUTSIDE_SLOT,
                                  f"reset handler 0x{reset & ~1:08x} is outside the slot {slot}: "
                                  "the image is linked for another address, or is not an image"))
    return VectorCheck(address, sp, reset, tuple(issues))

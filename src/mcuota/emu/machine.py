"""An emulated Cortex-M3/M4 that boots firmware the way the chip does, to see whether it really runs.

Verifying a hash proves the bytes arrived; only running them proves the device comes back. The core
is unicorn's Thumb M-class CPU with flash, SRAM and a :class:`~mcuota.emu.peripherals.Peripherals`
model behind the peripheral region and the Private Peripheral Bus. :meth:`Machine.reset` does what
the hardware (or a bootloader's jump) does: SP from word 0, PC from word 1 of the vector table.

Speed comes from never calling Python per instruction. The core runs in slices of
``emu_start(count=n)``, which unicorn counts natively, and Python only runs on peripheral accesses
and between slices, where stop conditions are checked against the console output. That makes
instruction counts exact at every slice boundary. A fault (or reset request) inside a slice is
located exactly by rewinding to the slice's start (SRAM, registers and peripheral state are
snapshotted before each slice) and bisecting the count, so a report can say "faulted after 37
instructions" without an instruction hook slowing down the runs that do not fault.

Firmware that crashes is a result, never an exception: every way a boot can go wrong ends in a
:class:`RunResult` whose :class:`Stop` names it and whose ``detail`` is the one line a user reads.
"""

from __future__ import annotations

import ctypes
import importlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from unicorn.arm_const import (
    UC_ARM_REG_LR,
    UC_ARM_REG_PC,
    UC_ARM_REG_SP,
    UC_ARM_REG_XPSR,
    UC_CPU_ARM_CORTEX_M3,
    UC_CPU_ARM_CORTEX_M4,
)
from unicorn.unicorn_const import (
    UC_ARCH_ARM,
    UC_ERR_EXCEPTION,
    UC_ERR_FETCH_PROT,
    UC_ERR_FETCH_UNMAPPED,
    UC_ERR_INSN_INVALID,
    UC_ERR_READ_PROT,
    UC_ERR_READ_UNMAPPED,
    UC_ERR_WRITE_PROT,
    UC_ERR_WRITE_UNMAPPED,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_HOOK_MEM_INVALID,
    UC_MEM_FETCH_PROT,
    UC_MEM_FETCH_UNMAPPED,
    UC_MEM_READ_PROT,
    UC_MEM_READ_UNMAPPED,
    UC_MEM_WRITE_PROT,
    UC_MEM_WRITE_UNMAPPED,
    UC_MODE_MCLASS,
    UC_MODE_THUMB,
    UC_PROT_ALL,
    UC_PROT_EXEC,
    UC_PROT_READ,
    UC_PROT_WRITE,
)

from mcuota.emu.banner import parse_banner_version, prompt_seen
from mcuota.emu.parts import AddressRange, Part, stack_fits
from mcuota.emu.peripherals import (
    PERIPHERAL_BASE,
    PERIPHERAL_SIZE,
    PPB_BASE,
    PPB_SIZE,
    Peripherals,
    PeripheralState,
)
from mcuota.emu.vectors import ERASED_WORD
from mcuota.errors import CapacityError, UsageError

#: Enough for any of the sample builds to print its banner many times over (they need about 3,000).
DEFAULT_MAX_INSTRUCTIONS = 2_000_000

_FIRST_SLICE = 256        # small first: a broken image usually dies within a few instructions
_MAX_SLICE = 16_384       # bounds how far a run overshoots its stop condition
_PAGE = 0x1000
_NEVER = 0xFFFFFFFF       # emu_start's "until": an odd address the PC can never hold
_XPSR_THUMB = 1 << 24
_ERASED_HALFWORD = b"\xff\xff"

_CPU_MODELS = {"cortex-m3": UC_CPU_ARM_CORTEX_M3, "cortex-m4": UC_CPU_ARM_CORTEX_M4}

StopCondition = Callable[[str], bool]


class _Core(Protocol):
    """The part of unicorn's ``Uc`` this module uses, typed (unicorn's own hints do not reach mypy:
    its ``unicorn.unicorn`` shim also re-exports the untyped Python 2 binding)."""

    def ctl_set_cpu_model(self, model: int) -> None: ...
    def mem_map(self, address: int, size: int, perms: int) -> None: ...
    def mem_map_ptr(self, address: int, size: int, perms: int, ptr: int) -> None: ...
    def mem_read(self, address: int, size: int) -> bytearray: ...
    def mem_write(self, address: int, data: bytes) -> None: ...
    def mmio_map(  # noqa: PLR0917 - unicorn's signature
            self, address: int, size: int, read_cb: Callable[[Any, int, int, int], int], read_ud: int,
            write_cb: Callable[[Any, int, int, int, int], None], write_ud: int) -> None: ...
    def hook_add(self, htype: int, callback: Callable[..., Any], user_data: Any = None, begin: int = 1,
                 end: int = 0) -> int: ...
    def hook_del(self, handle: int) -> None: ...
    def reg_read(self, reg_id: int) -> int: ...
    def reg_write(self, reg_id: int, value: int) -> None: ...
    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None: ...
    def emu_stop(self) -> None: ...
    def ctl_flush_tb(self) -> None: ...
    def context_save(self) -> object: ...
    def context_restore(self, context: object) -> None: ...


_unicorn: Any = importlib.import_module("unicorn")


class Stop(StrEnum):
    """Why a run ended. The first four are normal ends; every other value is a fault."""

    CONDITION = "condition-met"          # the caller's ``until`` held
    IDLE = "uart-idle"                   # the console went quiet after saying something
    LIMIT = "instruction-limit"          # the budget ran out (a firmware that loops is not a fault)
    RESET = "reset-requested"            # the firmware asked for a system reset (AIRCR.SYSRESETREQ)
    BAD_VECTORS = "bad-vector-table"     # the core cannot even start: erased or unusable vectors
    INVALID_FETCH = "invalid-fetch"      # executing from unmapped or non-executable memory
    INVALID_READ = "invalid-read"        # a load from unmapped memory
    INVALID_WRITE = "invalid-write"      # a store to unmapped memory
    FLASH_WRITE = "flash-write"          # a plain store into flash
    INVALID_INSTRUCTION = "invalid-instruction"
    INVALID_STATE = "invalid-state"      # left Thumb state (a branch to an even address)
    EXCEPTION = "unhandled-exception"    # SVC, BKPT and friends: exceptions are not emulated
    HARDFAULT = "hardfault"              # execution reached the HardFault handler

    @property
    def is_fault(self) -> bool:
        return self not in _NORMAL_STOPS


_NORMAL_STOPS = frozenset({Stop.CONDITION, Stop.IDLE, Stop.LIMIT, Stop.RESET})


@dataclass(frozen=True)
class RunResult:
    """The outcome of a boot or of one :meth:`Machine.run`; counts and text are since the last reset."""

    stop: Stop
    detail: str
    instructions: int
    pc: int
    sp: int
    lr: int
    uart_bytes: bytes
    output_start: int = 0

    @property
    def fault(self) -> bool:
        return self.stop.is_fault

    @property
    def uart(self) -> str:
        """Everything the firmware wrote to the console since reset (Latin-1: every byte survives)."""
        return self.uart_bytes.decode("latin-1")

    @property
    def output(self) -> str:
        """What the firmware wrote during this run only (after the input that started it)."""
        return self.uart_bytes[self.output_start:].decode("latin-1")

    @property
    def version(self) -> str | None:
        """The version the running firmware announced on its console, if it did."""
        return parse_banner_version(self.uart)

    def summary(self) -> str:
        where = f"pc=0x{self.pc:08x}"
        return f"{self.stop.value} after {self.instructions:,} instructions at {where}: {self.detail}"


@dataclass(frozen=True)
class _Event:
    stop: Stop
    detail: str


@dataclass(frozen=True)
class _Snapshot:
    memory: tuple[tuple[int, bytes], ...]
    context: object
    peripherals: PeripheralState


class Machine:
    """One emulated microcontroller: load flash contents, :meth:`reset`, then :meth:`run` in steps.

    The device simulator keeps a machine across runs to talk to the firmware's shell
    (:meth:`send`, then :meth:`run` until the reply); :func:`boot` is the one-shot form.
    """

    def __init__(self, part: Part) -> None:
        self.part = part
        self._uc: _Core = _unicorn.Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self._uc.ctl_set_cpu_model(_CPU_MODELS[part.cpu])
        # Flash is one host buffer mapped at its address and, as on an STM32 booting from main
        # flash, at the boot alias: code that reads vectors or constants through 0x0 sees the same bytes.
        flash_size = _round_up(part.flash.size, _PAGE)
        self._flash_memory = ctypes.create_string_buffer(flash_size)   # must live as long as the core
        ctypes.memset(self._flash_memory, 0xFF, flash_size)
        self._flash: list[AddressRange] = [part.flash]
        for base in (part.flash.start, part.boot_alias):
            if base is not None:
                self._uc.mem_map_ptr(base, flash_size, UC_PROT_READ | UC_PROT_EXEC,
                                     ctypes.addressof(self._flash_memory))
        if part.boot_alias is not None:
            self._flash.append(AddressRange(part.boot_alias, part.flash.size, "flash boot alias"))
        for ram in part.ram:
            self._map(ram, UC_PROT_ALL if ram.executable else UC_PROT_READ | UC_PROT_WRITE)
        self._periph = Peripherals(part)
        self._uc.mmio_map(PERIPHERAL_BASE, PERIPHERAL_SIZE, self._mmio_read, PERIPHERAL_BASE,
                          self._mmio_write, PERIPHERAL_BASE)
        self._uc.mmio_map(PPB_BASE, PPB_SIZE, self._mmio_read, PPB_BASE, self._mmio_write, PPB_BASE)
        self._uc.hook_add(UC_HOOK_MEM_INVALID, self._on_invalid_access)
        self._uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        self._hardfault_hook: int | None = None
        self._event: _Event | None = None
        self._access: tuple[int, int] | None = None
        self._instructions = 0
        self._halted: RunResult | None = None
        self._initial_sp = 0
        self._vector_table = 0

    # --- set-up --------------------------------------------------------------------------------

    def load(self, address: int, data: bytes) -> None:
        """Put ``data`` into flash at ``address``: a whole flash image, or one firmware image.

        Outside the part's flash (an image linked for another chip's memory map) it gets a read-only
        region of its own, so a boot can still show what that image does here.
        """
        if not data:
            return
        region = next((f for f in self._flash if f.covers(address, len(data))), None)
        if region is None:
            if any(f.overlaps(address, len(data)) for f in self._flash):
                raise CapacityError(f"{len(data)} bytes at 0x{address:08x} run past the end of "
                                    f"{self.part.name} {self.part.flash}")
            start = address - address % _PAGE
            region = AddressRange(start, _round_up(address + len(data), _PAGE) - start, "image")
            for other in (*self.part.ram, AddressRange(PERIPHERAL_BASE, PERIPHERAL_SIZE),
                          AddressRange(PPB_BASE, 0x20000000)):
                if other.overlaps(region.start, region.size):
                    raise UsageError(f"cannot load {len(data)} bytes at 0x{address:08x}: "
                                     f"that overlaps {other} of {self.part.name}")
            self._map(region, UC_PROT_READ | UC_PROT_EXEC)
            self._uc.mem_write(region.start, b"\xff" * region.size)
            self._flash.append(region)
        self._uc.mem_write(address, bytes(data))

    def send(self, data: bytes) -> None:
        """Queue bytes on the console UART; the firmware sees them when it polls RXNE."""
        self._periph.send(data)

    def reset(self, vector_table: int) -> None:
        """Start over as the core does after reset, or as a bootloader's jump to ``vector_table``.

        SRAM keeps its contents (a warm reset does too); peripherals and the console start fresh.
        """
        if not any(r.covers(vector_table, 16) for r in (*self._flash, *self.part.ram)):
            raise UsageError(f"vector table address 0x{vector_table:08x} is not in {self.part.name}'s "
                             f"flash or RAM ({', '.join(str(r) for r in (*self._flash, *self.part.ram))})")
        self._uc.ctl_flush_tb()   # code translated before a reload must not outlive it
        words = struct.unpack("<4I", self._uc.mem_read(vector_table, 16))
        sp, reset, _nmi, hardfault = words
        self._vector_table = vector_table
        self._initial_sp = sp
        self._instructions = 0
        self._halted = None
        self._periph = Peripherals(self.part, vector_table)
        self._uc.reg_write(UC_ARM_REG_SP, sp & ~3)   # the core ignores SP's two low bits
        self._uc.reg_write(UC_ARM_REG_LR, 0xFFFFFFFF)
        self._uc.reg_write(UC_ARM_REG_PC, reset & ~1)
        if self._hardfault_hook is not None:
            self._uc.hook_del(self._hardfault_hook)
            self._hardfault_hook = None
        handler = hardfault & ~1
        if hardfault & 1 and handler != reset & ~1 and self._executable(handler):
            self._hardfault_hook = self._uc.hook_add(UC_HOOK_CODE, self._on_hardfault, None, handler, handler)
        problem = self._vector_problem(sp, reset)
        if problem is not None:
            self._halted = self._result(Stop.BAD_VECTORS, problem, 0)

    # --- running -------------------------------------------------------------------------------

    def run(self, max_instructions: int = DEFAULT_MAX_INSTRUCTIONS, *, until: StopCondition | None = None,
            idle_after: int | None = None) -> RunResult:
        """Run at most ``max_instructions`` more instructions.

        Stops early when ``until(output)`` holds for the console output of this run, or (with
        ``idle_after``) once the firmware said something, consumed all queued input and then stayed
        quiet for ``idle_after`` instructions. Conditions are checked between slices, so a run ends
        up to one slice (at most 16,384 instructions) after the moment its condition first held.
        A fault or a reset request ends the run for good: later calls return the same result until
        the next :meth:`reset`.
        """
        if max_instructions <= 0:
            raise UsageError("the instruction budget must be positive")
        if self._halted is not None:
            return self._halted
        output_start = len(self._periph.output)
        last_length = output_start
        quiet_since = self._instructions
        end = self._instructions + max_instructions
        slice_size = _FIRST_SLICE
        while self._instructions < end:
            count = min(slice_size, end - self._instructions)
            snapshot = self._snapshot()
            event = self._execute(count)
            if event is not None:
                retired = self._locate(snapshot, count)
                before = self._uc.reg_read(UC_ARM_REG_PC)
                event = self._execute(1) or event   # replay the last instruction: exact final state
                # The last instruction retired if it is the store that requested a reset, or if the
                # core moved on (a branch into unmapped memory, an SVC); a faulting load or opcode did not.
                moved = self._uc.reg_read(UC_ARM_REG_PC) != before
                self._instructions += retired + (moved or event.stop is Stop.RESET)
                # Either way the core is done until the next reset, as the chip would be.
                self._halted = self._result(event.stop, event.detail, output_start)
                return self._halted
            self._instructions += count
            slice_size = min(slice_size * 2, _MAX_SLICE)
            length = len(self._periph.output)
            if length != last_length:
                last_length = length
                quiet_since = self._instructions
                if until is not None and until(self._output_since(output_start)):
                    return self._result(Stop.CONDITION, "the stop condition held", output_start)
            elif (idle_after is not None and length > output_start and not self._periph.input_pending
                  and self._instructions - quiet_since >= idle_after):
                return self._result(Stop.IDLE, f"no console output for {idle_after:,} instructions",
                                    output_start)
        return self._result(Stop.LIMIT, f"ran the whole budget of {max_instructions:,} instructions",
                            output_start)

    @property
    def instructions(self) -> int:
        return self._instructions

    @property
    def uart(self) -> str:
        return bytes(self._periph.output).decode("latin-1")

    def _execute(self, count: int) -> _Event | None:
        """Run exactly ``count`` instructions, or fewer if something ends the run: then say what."""
        self._event = None
        self._access = None
        pc = self._uc.reg_read(UC_ARM_REG_PC)
        try:
            self._uc.emu_start(pc | 1, _NEVER, count=count)
        except _unicorn.UcError as exc:
            return self._event or self._classify(exc.errno)
        if self._event is None and self._periph.reset_requested:
            self._event = _Event(Stop.RESET, "the firmware requested a system reset (AIRCR)")
        return self._event

    def _locate(self, start: _Snapshot, failing: int) -> int:
        """How many instructions run cleanly from ``start`` before the event; leaves the machine there.

        Emulation is deterministic, so bisecting the count over rewinds of one slice finds the exact
        instruction (log2 of the slice size replays, only on the rare run that ends in an event).
        """
        clean, bad = 0, failing
        while bad - clean > 1:
            middle = (clean + bad) // 2
            self._restore(start)
            if self._execute(middle) is None:
                clean = middle
            else:
                bad = middle
        self._restore(start)
        if clean:
            self._execute(clean)
        return clean

    # --- hooks (called by unicorn; they must never raise) -----------------------------------------

    def _mmio_read(self, uc: _Core, offset: int, size: int, base: int) -> int:
        return self._periph.read(base + offset, size)

    def _mmio_write(self, uc: _Core, offset: int, size: int, value: int, base: int) -> None:
        self._periph.write(base + offset, size, value)
        if self._periph.reset_requested and self._event is None:
            self._event = _Event(Stop.RESET, "the firmware requested a system reset (AIRCR)")
            uc.emu_stop()

    def _on_invalid_access(self, uc: _Core, access: int, address: int, *_: Any) -> bool:
        self._access = (access, address)
        return False

    def _on_interrupt(self, uc: _Core, number: int, user_data: Any) -> None:
        if self._event is None:
            self._event = self._exception_event(number)
        uc.emu_stop()

    def _on_hardfault(self, uc: _Core, address: int, size: int, user_data: Any) -> None:
        if self._event is None:
            self._event = _Event(Stop.HARDFAULT,
                                 f"execution reached the HardFault handler at 0x{address:08x}")
        uc.emu_stop()

    # --- interpretation ----------------------------------------------------------------------------

    def _classify(self, errno: int) -> _Event:
        pc = self._uc.reg_read(UC_ARM_REG_PC)
        access = self._access
        address = access[1] if access else pc
        if errno in (UC_ERR_FETCH_UNMAPPED, UC_ERR_FETCH_PROT) or (
                access and access[0] in (UC_MEM_FETCH_UNMAPPED, UC_MEM_FETCH_PROT)):
            what = "non-executable memory" if errno == UC_ERR_FETCH_PROT else "unmapped memory"
            return _Event(Stop.INVALID_FETCH, f"jumped to 0x{address:08x}, which is {what}")
        if errno == UC_ERR_WRITE_PROT or (access and access[0] == UC_MEM_WRITE_PROT):
            return _Event(Stop.FLASH_WRITE, f"store to flash at 0x{address:08x} (flash is only "
                                            "written through its controller, which is not emulated)")
        if errno in (UC_ERR_READ_UNMAPPED, UC_ERR_READ_PROT) or (
                access and access[0] in (UC_MEM_READ_UNMAPPED, UC_MEM_READ_PROT)):
            return _Event(Stop.INVALID_READ,
                          f"load from unmapped address 0x{address:08x}{self._stack_hint()}")
        if errno == UC_ERR_WRITE_UNMAPPED or (access and access[0] == UC_MEM_WRITE_UNMAPPED):
            return _Event(Stop.INVALID_WRITE,
                          f"store to unmapped address 0x{address:08x}{self._stack_hint()}")
        if errno == UC_ERR_INSN_INVALID:
            if not self._uc.reg_read(UC_ARM_REG_XPSR) & _XPSR_THUMB:
                return _Event(Stop.INVALID_STATE, f"branched to 0x{pc:08x} with bit 0 clear: the core left "
                                                  "Thumb state (INVSTATE UsageFault)")
            if self._readable(pc) and bytes(self._uc.mem_read(pc, 2)) == _ERASED_HALFWORD:
                return _Event(Stop.INVALID_INSTRUCTION, f"executing erased flash (0xffff) at 0x{pc:08x}: "
                                                        "code is missing or linked for another address")
            return _Event(Stop.INVALID_INSTRUCTION, f"undefined instruction at 0x{pc:08x}")
        if errno == UC_ERR_EXCEPTION:
            return _Event(Stop.EXCEPTION, f"unhandled CPU exception at 0x{pc:08x}")
        return _Event(Stop.EXCEPTION, f"emulator error {errno} at 0x{pc:08x}")

    def _exception_event(self, number: int) -> _Event:
        pc = self._uc.reg_read(UC_ARM_REG_PC)
        name = _EXCEPTIONS.get(number)
        if number in (3, 8) or pc >= PPB_BASE:   # prefetch abort, or a jump to an EXC_RETURN value
            return _Event(Stop.INVALID_FETCH, f"jumped to 0x{pc:08x}, which is not executable memory")
        if number in (1, 17):
            return _Event(Stop.INVALID_INSTRUCTION, f"{name} at 0x{pc:08x}")
        if number == 18:
            return _Event(Stop.INVALID_STATE, f"left Thumb state at 0x{pc:08x} (INVSTATE UsageFault)")
        if number == 2:
            pc -= 2   # the core has already stepped past the SVC when the exception is raised
        label = name or f"CPU exception {number}"
        return _Event(Stop.EXCEPTION, f"{label} at 0x{pc:08x}: exceptions and interrupts are not emulated")

    def _vector_problem(self, sp: int, reset: int) -> str | None:
        table = f"vector table at 0x{self._vector_table:08x}"
        if sp == ERASED_WORD and reset == ERASED_WORD:
            return f"{table} is erased flash (0xffffffff): no image is installed there"
        if not reset & 1:
            return (f"reset vector 0x{reset:08x} in the {table} has bit 0 clear: the core faults (INVSTATE) "
                    "before the first instruction")
        if not self._executable(reset & ~1):
            return f"reset vector 0x{reset:08x} in the {table} points outside executable memory"
        return None

    def _stack_hint(self) -> str:
        if stack_fits(self._initial_sp, self.part.ram):
            return ""
        return f" (the initial stack pointer 0x{self._initial_sp:08x} is outside {self.part.name}'s RAM)"

    def _executable(self, address: int) -> bool:
        return any(f.contains(address) for f in self._flash) or any(
            r.contains(address) for r in self.part.ram if r.executable)

    def _readable(self, address: int) -> bool:
        return any(f.contains(address) for f in (*self._flash, *self.part.ram))

    def _result(self, stop: Stop, detail: str, output_start: int) -> RunResult:
        return RunResult(stop, detail, self._instructions, self._uc.reg_read(UC_ARM_REG_PC),
                         self._uc.reg_read(UC_ARM_REG_SP), self._uc.reg_read(UC_ARM_REG_LR),
                         bytes(self._periph.output), output_start)

    def _output_since(self, start: int) -> str:
        return self._periph.output[start:].decode("latin-1")

    # --- rewinding ---------------------------------------------------------------------------------

    def _snapshot(self) -> _Snapshot:
        memory = tuple((r.start, bytes(self._uc.mem_read(r.start, r.size))) for r in self.part.ram)
        return _Snapshot(memory, self._uc.context_save(), self._periph.snapshot())

    def _restore(self, snapshot: _Snapshot) -> None:
        for start, data in snapshot.memory:
            self._uc.mem_write(start, data)
        self._uc.context_restore(snapshot.context)
        self._periph.restore(snapshot.peripherals)

    def _map(self, region: AddressRange, perms: int) -> None:
        self._uc.mem_map(region.start, _round_up(region.size, _PAGE), perms)


_EXCEPTIONS = {
    1: "undefined instruction",
    2: "SVC (supervisor call)",
    3: "prefetch abort",
    4: "data abort",
    5: "IRQ",
    7: "BKPT (breakpoint with no debugger attached)",
    8: "exception return",
    17: "coprocessor instruction with the coprocessor disabled (NOCP)",
    18: "invalid state",
}


def boot(image: bytes, address: int, *, part: Part, vector_table: int | None = None,
         max_instructions: int = DEFAULT_MAX_INSTRUCTIONS, until: StopCondition | None = prompt_seen,
         idle_after: int | None = None, uart_input: bytes = b"") -> RunResult:
    """Load ``image`` at ``address``, reset through ``vector_table`` (default: ``address``) and run.

    ``image`` is either one firmware image or the whole flash as a bootloader left it (then
    ``address`` is the flash base and ``vector_table`` the slot the bootloader jumps to). The default
    stop condition is the sample application's shell prompt; ``uart_input`` is queued before the
    first instruction, as if typed ahead.
    """
    machine = Machine(part)
    machine.load(address, image)
    machine.reset(address if vector_table is None else vector_table)
    if uart_input:
        machine.send(uart_input)
    return machine.run(max_instructions, until=until, idle_after=idle_after)


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit

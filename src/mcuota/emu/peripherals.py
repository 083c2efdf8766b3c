"""The memory-mapped world around the emulated core: peripherals, System Control Space, console.

Firmware talks to hardware by loading and storing registers, so this is a register file (a store
reads back what was written) with the few behaviours start-up code depends on layered on top:
the console UART is always ready to send and captures what is written to its data register, hands
out injected input through RXNE/DR, clock "ready" flags follow their enable bits, the System Control
Block identifies the core and turns AIRCR.SYSRESETREQ into a reset request, and counters that delay
loops poll (SysTick COUNTFLAG, DWT CYCCNT) move. Anything else behaves like RAM, which is what a
boot needs from peripherals it only configures.

It is pure Python with no emulator in sight, so it can be snapshotted, restored and tested alone;
:mod:`mcuota.emu.machine` wires :meth:`Peripherals.read` and :meth:`Peripherals.write` to the core.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcuota.emu.parts import CPUID, Part

PERIPHERAL_BASE = 0x40000000
PERIPHERAL_SIZE = 0x20000000
#: The Private Peripheral Bus: ITM, DWT, FPB and the System Control Space (SysTick, NVIC, SCB).
PPB_BASE = 0xE0000000
PPB_SIZE = 0x00100000

_BITBAND_ALIAS = 0x42000000
_BITBAND_ALIAS_END = 0x44000000

# USART status register bits (STM32F1/F4 layout): RXNE, TC, TXE.
_SR_RXNE = 1 << 5
_SR_TC = 1 << 6
_SR_TXE = 1 << 7

_SYST_CSR = 0xE000E010
_SYST_CSR_ENABLE = 1 << 0
_SYST_CSR_COUNTFLAG = 1 << 16
_DWT_CYCCNT = 0xE0001004
_CYCLES_PER_READ = 64
_SCB_CPUID = 0xE000ED00
_SCB_VTOR = 0xE000ED08
_SCB_AIRCR = 0xE000ED0C
_AIRCR_VECTKEY = 0x05FA
_AIRCR_VECTKEYSTAT = 0xFA05 << 16
_AIRCR_RESET_BITS = 0b101  # SYSRESETREQ (bit 2), VECTRESET (bit 0)


@dataclass(frozen=True)
class PeripheralState:
    """Everything :meth:`Peripherals.restore` needs to rewind; cheap because it is small."""

    registers: tuple[tuple[int, int], ...]
    output_length: int
    input_position: int
    cycles: int
    reset_requested: bool


class Peripherals:
    """Register file plus console for one part; addresses are absolute bus addresses."""

    def __init__(self, part: Part, vector_table: int = 0) -> None:
        self.part = part
        self.output = bytearray()
        self.reset_requested = False
        self._input = bytearray()
        self._input_position = 0
        self._cycles = 0
        self._registers: dict[int, int] = dict(part.reset_values)
        self._registers[_SCB_VTOR] = vector_table
        self._uart_status = set(part.console_uarts)
        self._uart_data = {base + 4 for base in part.console_uarts}
        self._ready: dict[int, list[tuple[int, int, int]]] = {}
        for rb in part.ready_bits:
            self._ready.setdefault(rb.status, []).append((rb.status_bit, rb.enable, rb.enable_bit))
        self._switches = frozenset(part.clock_switches)

    # --- console -------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue bytes for the firmware to receive on the console UART."""
        self._input += data

    @property
    def input_pending(self) -> int:
        return len(self._input) - self._input_position

    # --- bus access ----------------------------------------------------------------------------

    def read(self, address: int, size: int) -> int:
        """A load of ``size`` bytes (1, 2 or 4) at an absolute ``address``."""
        if _BITBAND_ALIAS <= address < _BITBAND_ALIAS_END:
            target, bit = _bitband_target(address)
            return (self.read(target & ~3, 4) >> (bit + 8 * (target & 3))) & 1
        word_address = address & ~3
        value = self._read_word(word_address)
        shift = 8 * (address & 3)
        return (value >> shift) & ((1 << (8 * size)) - 1)

    def write(self, address: int, size: int, value: int) -> None:
        """A store of ``size`` bytes (1, 2 or 4) at an absolute ``address``."""
        if _BITBAND_ALIAS <= address < _BITBAND_ALIAS_END:
            target, bit = _bitband_target(address)
            word_address = target & ~3
            mask = 1 << (bit + 8 * (target & 3))
            current = self._registers.get(word_address, 0)
            self.write(word_address, 4, current | mask if value & 1 else current & ~mask)
            return
        word_address = address & ~3
        if size == 4:
            word = value & 0xFFFFFFFF
        else:
            shift = 8 * (address & 3)
            mask = ((1 << (8 * size)) - 1) << shift
            word = (self._registers.get(word_address, 0) & ~mask) | ((value << shift) & mask)
        self._write_word(word_address, word, value)

    def _read_word(self, address: int) -> int:
        if address in self._uart_status:
            return _SR_TXE | _SR_TC | (_SR_RXNE if self.input_pending else 0)
        if address in self._uart_data:
            if not self.input_pending:
                return 0
            byte = self._input[self._input_position]
            self._input_position += 1
            return byte
        value = self._registers.get(address, 0)
        ready = self._ready.get(address)
        if ready:
            for status_bit, enable, enable_bit in ready:
                enabler = value if enable == address else self._registers.get(enable, 0)
                if enabler >> enable_bit & 1:
                    value |= 1 << status_bit
        if address in self._switches:
            value = (value & ~0b1100) | ((value & 0b11) << 2)
        if address == _SYST_CSR and value & _SYST_CSR_ENABLE:
            value |= _SYST_CSR_COUNTFLAG
        elif address == _DWT_CYCCNT:
            self._cycles = (self._cycles + _CYCLES_PER_READ) & 0xFFFFFFFF
            value = self._cycles
        elif address == _SCB_CPUID:
            value = CPUID[self.part.cpu]
        elif address == _SCB_AIRCR:
            value = _AIRCR_VECTKEYSTAT | (value & 0x700)
        return value

    def _write_word(self, address: int, word: int, value: int) -> None:
        if address in self._uart_data:
            self.output.append(value & 0xFF)
            return
        if address in self._uart_status:
            return  # rc_w0 flags; the model's flags are computed, never stored
        if address == _SCB_AIRCR:
            if word >> 16 == _AIRCR_VECTKEY and word & _AIRCR_RESET_BITS:
                self.reset_requested = True
            word &= 0x700
        elif address == _DWT_CYCCNT:
            self._cycles = word
        self._registers[address] = word

    # --- rewinding -----------------------------------------------------------------------------

    def snapshot(self) -> PeripheralState:
        return PeripheralState(tuple(self._registers.items()), len(self.output), self._input_position,
                               self._cycles, self.reset_requested)

    def restore(self, state: PeripheralState) -> None:
        self._registers = dict(state.registers)
        del self.output[state.output_length:]
        self._input_position = state.input_position
        self._cycles = state.cycles
        self.reset_requested = state.reset_requested


def _bitband_target(alias: int) -> tuple[int, int]:
    """Peripheral bit-band alias word → (byte address, bit number) it stands for."""
    offset = alias - _BITBAND_ALIAS
    return PERIPHERAL_BASE + (offset >> 5), (offset >> 2) & 7

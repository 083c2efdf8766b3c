"""The sending end of a YMODEM transfer (the flashing tool's side), as a state machine without I/O.

Stop-and-wait, as every YMODEM receiver in the field expects: one packet, then its answer. The
machine resends on NAK and on the caller's timeouts, and gives up after ``max_retries`` for one
packet. It copes with both EOT habits (ST's receiver ACKs the first EOT, lrzsz NAKs it first), and
with receivers that do not acknowledge the empty block 0 closing the batch: by then the receiver has
acknowledged every byte and the EOT, so a quiet line there still means the file arrived.
"""

from __future__ import annotations

from enum import Enum, auto

from mcuota.errors import UsageError
from mcuota.transport.ymodem.events import Aborted, AbortedBy, Done, Progress, Step
from mcuota.transport.ymodem.packets import (
    ABORT,
    ACK,
    CAN,
    CRC_REQUEST,
    EOT,
    LARGE_BLOCK,
    NAK,
    SMALL_BLOCK,
    build_header_payload,
    build_packet,
    end_of_batch_packet,
)

_EOT = bytes((EOT,))


class _State(Enum):
    WAIT_START = auto()       # for the receiver's first 'C'
    WAIT_HEADER_ACK = auto()
    WAIT_DATA_START = auto()  # header ACKed, for the 'C' that asks for block 1
    WAIT_DATA_ACK = auto()
    WAIT_EOT_ACK = auto()
    WAIT_END_START = auto()   # EOT ACKed, for the 'C' that asks for the next header
    WAIT_END_ACK = auto()
    FINISHED = auto()


class YmodemSender:
    """Sends one file called ``name`` (as block 0 announces it) holding ``data``."""

    def __init__(self, name: str, data: bytes, *, block_size: int = LARGE_BLOCK, max_retries: int = 10,
                 start_attempts: int = 60) -> None:
        if block_size not in (SMALL_BLOCK, LARGE_BLOCK):
            raise UsageError(f"YMODEM blocks are {SMALL_BLOCK} or {LARGE_BLOCK} bytes, not {block_size}")
        self.name = name
        self.data = bytes(data)
        self.block_size = block_size
        self.max_retries = max_retries
        self.start_attempts = start_attempts
        self.acked = 0
        self.retransmissions = 0
        self._header = build_packet(0, build_header_payload(name, len(self.data)), pad=0)
        self._state = _State.WAIT_START
        self._seq = 0
        self._current = b""     # the packet awaiting its answer, resent on NAK or timeout
        self._current_len = 0   # file bytes it carries
        self._tries = 0
        self._last_can = False
        self.cancelled_here = False  # this side sent CAN CAN; the adapter repeats it while the peer talks

    @property
    def finished(self) -> bool:
        return self._state is _State.FINISHED

    @property
    def closing(self) -> bool:
        """Only the receipt of the empty block 0 is outstanding: the file itself is acknowledged, and
        lrzsz often exits without that last ACK, so a caller need not wait a full timeout for it."""
        return self._state is _State.WAIT_END_ACK

    def abort(self, reason: str) -> Step:
        """Give up from this side (e.g. the user pressed Ctrl-C): CAN CAN, so the receiver stops waiting."""
        if self.finished:
            return Step()
        return self._abort(reason)

    def feed(self, data: bytes) -> Step:
        step = Step()
        for byte in data:
            if self.finished:
                break
            if byte == CAN:
                if self._last_can:
                    self._state = _State.FINISHED
                    step.events.append(Aborted("the receiver cancelled the transfer", AbortedBy.PEER))
                    break
                self._last_can = True
                continue
            self._last_can = False
            step.extend(self._on_byte(byte))
        return step

    def timeout(self) -> Step:
        """The receiver has not answered within the caller's timeout."""
        state = self._state
        if state is _State.FINISHED:
            return Step()
        if state is _State.WAIT_START:
            self._tries += 1
            if self._tries >= self.start_attempts:
                return self._abort("the receiver never asked for the file (no 'C')")
            return Step()
        if state is _State.WAIT_DATA_START:
            return self._send_next()  # a receiver that ACKs block 0 without a 'C' still wants block 1
        if state is _State.WAIT_END_START:
            # lrzsz takes a second or more to ask, and drops what arrived before it did: wait for the 'C'.
            self._tries += 1
            if self._tries < self.max_retries:
                return Step()
            return self._send(end_of_batch_packet(), 0, _State.WAIT_END_ACK)
        if state is _State.WAIT_END_ACK:
            return self._finish()
        return self._resend("no answer")

    # -- bytes from the receiver --------------------------------------------------------------------

    def _on_byte(self, byte: int) -> Step:
        state = self._state
        if state is _State.WAIT_START:
            return self._send(self._header, 0, _State.WAIT_HEADER_ACK) if byte == CRC_REQUEST else Step()
        if state in (_State.WAIT_DATA_START, _State.WAIT_END_START):
            if byte not in (CRC_REQUEST, NAK):
                return Step()
            if state is _State.WAIT_DATA_START:
                return self._send_next()
            return self._send(end_of_batch_packet(), 0, _State.WAIT_END_ACK)
        if byte == NAK:
            if state is _State.WAIT_END_ACK and self._tries >= self.max_retries:
                return self._finish()
            return self._resend("NAK")
        if byte == CRC_REQUEST and state is _State.WAIT_END_ACK:
            return self._resend("'C'")  # the receiver is still asking for the header that ends the batch
        if byte != ACK:
            return Step()  # 'C' repeated while we were sending, or line noise
        if state is _State.WAIT_HEADER_ACK:
            self._state = _State.WAIT_DATA_START
            return Step()
        if state is _State.WAIT_DATA_ACK:
            self.acked += self._current_len
            step = self._send_next()
            step.events.insert(0, Progress(self.acked, len(self.data)))
            return step
        if state is _State.WAIT_EOT_ACK:
            self._state = _State.WAIT_END_START
            self._tries = 0
            return Step()
        return self._finish()  # WAIT_END_ACK

    # -- what we send -------------------------------------------------------------------------------

    def _send_next(self) -> Step:
        if self.acked >= len(self.data):
            return self._send(_EOT, 0, _State.WAIT_EOT_ACK)
        remaining = len(self.data) - self.acked
        size = self.block_size if remaining > SMALL_BLOCK else SMALL_BLOCK
        chunk = self.data[self.acked:self.acked + size]
        self._seq = (self._seq + 1) & 0xFF
        return self._send(build_packet(self._seq, chunk), len(chunk), _State.WAIT_DATA_ACK)

    def _send(self, packet: bytes, carries: int, state: _State) -> Step:
        self._current = packet
        self._current_len = carries
        self._tries = 0
        self._state = state
        return Step(packet)

    def _resend(self, why: str) -> Step:
        self._tries += 1
        if self._tries > self.max_retries:
            what = "EOT" if self._current == _EOT else f"block {self._seq}"
            if self._state is _State.WAIT_HEADER_ACK:
                what = "the file header (block 0)"
            return self._abort(f"{what} was not accepted after {self.max_retries} retries (last: {why})")
        self.retransmissions += 1
        return Step(self._current)

    def _finish(self) -> Step:
        self._state = _State.FINISHED
        return Step(events=[Done()])

    def _abort(self, reason: str) -> Step:
        self._state = _State.FINISHED
        self.cancelled_here = True
        return Step(ABORT, [Aborted(reason, AbortedBy.LOCAL)])

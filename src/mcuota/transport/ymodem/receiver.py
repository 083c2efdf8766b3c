"""The receiving end of a YMODEM transfer (a bootloader's side), as a state machine without I/O.

The caller feeds it line bytes and tells it when the line has been quiet too long (:meth:`timeout`);
it answers with the bytes to send and :mod:`events <mcuota.transport.ymodem.events>`. It never
writes the file itself: :class:`Data` events carry each block's bytes and offset.

Field behaviour it reproduces (AN4657's receiver and lrzsz's ``rz``):

* 'C' on start and on every quiet period until block 0 comes; block 0 is ACKed, then 'C' again.
* A file larger than ``max_size`` is refused with CAN CAN before any data block is accepted.
* A block with a bad CRC, or a packet cut short by a timeout, is NAKed; too many errors in a row abort.
* A repeat of the previous block (the sender missed our ACK) is ACKed and dropped; any other block
  number means the two ends disagree about the file, which only an abort can settle.
* EOT: ST's receiver ACKs the first one; the reference protocol NAKs it and ACKs the repeat, so that a
  noise byte that looks like EOT cannot end a file. Either way 'C' follows, and the empty block 0 that
  ends the batch completes the transfer.
"""

from __future__ import annotations

from enum import Enum, auto

from mcuota.errors import FormatError
from mcuota.transport.ymodem.events import (
    Aborted,
    AbortedBy,
    Data,
    Done,
    FileInfo,
    Step,
)
from mcuota.transport.ymodem.framing import BadPacket, Cancel, EndOfFile, FrameReader, Packet
from mcuota.transport.ymodem.packets import ABORT, ACK, CRC_REQUEST, NAK, parse_header_payload

_C = bytes((CRC_REQUEST,))
_ACK = bytes((ACK,))
_NAK = bytes((NAK,))


class EotPolicy(Enum):
    ACK_FIRST = "ack-first"  # ST AN4657's receiver
    NAK_FIRST = "nak-first"  # the reference protocol and lrzsz


class _State(Enum):
    WAIT_HEADER = auto()
    RECEIVING = auto()
    WAIT_END = auto()  # file complete, waiting for the empty block 0
    FINISHED = auto()


class YmodemReceiver:
    """One file in, as a bootloader receives it. ``max_size`` is the slot it has to fit in."""

    def __init__(self, max_size: int | None = None, *, eot_policy: EotPolicy = EotPolicy.NAK_FIRST,
                 max_errors: int = 10, start_attempts: int = 60) -> None:
        self.max_size = max_size
        self.eot_policy = eot_policy
        self.max_errors = max_errors
        self.start_attempts = start_attempts
        self.file: FileInfo | None = None
        self.received = 0
        self._reader = FrameReader()
        self._state = _State.WAIT_HEADER
        self._blocks = 0  # data blocks accepted; the next expected sequence number is blocks + 1
        self._errors = 0
        self._eot_pending = False
        self.cancelled_here = False  # this side sent CAN CAN; the adapter repeats it while the peer talks

    @property
    def finished(self) -> bool:
        return self._state is _State.FINISHED

    @property
    def closing(self) -> bool:
        """Always False: every wait of a receiver matters; the adapter asks both machines alike."""
        return False

    def start(self) -> Step:
        """The first 'C': a YMODEM receiver speaks first."""
        return Step(_C)

    def abort(self, reason: str) -> Step:
        """Give up from this side (the caller's reason, e.g. a flash write failed): CAN CAN."""
        if self.finished:
            return Step()
        return self._abort(reason)

    def feed(self, data: bytes) -> Step:
        step = Step()
        if self.finished:
            return step
        self._reader.feed(data)
        while not self.finished and (frame := self._reader.next_frame()) is not None:
            step.extend(self._on_frame(frame))
        return step

    def timeout(self) -> Step:
        """The line has been quiet for the caller's timeout: re-ask, or give up after too many tries."""
        if self.finished:
            return Step()
        cut_short = self._reader.pending
        self._reader.discard()
        self._errors += 1
        if self._state is _State.WAIT_HEADER:
            if self._errors >= self.start_attempts:
                return self._abort("no sender answered")
            return Step(_NAK if cut_short else _C)
        if self._state is _State.WAIT_END:
            if self._errors >= self.max_errors:
                # The file is complete and acknowledged; a sender that never closes the batch lost nothing.
                self._state = _State.FINISHED
                return Step(events=[Done()])
            return Step(_C)
        if self._errors >= self.max_errors:
            return self._abort(f"the sender went quiet at byte {self.received}")
        return Step(_NAK)

    # -- frames -------------------------------------------------------------------------------------

    def _on_frame(self, frame: Packet | BadPacket | EndOfFile | Cancel) -> Step:
        if isinstance(frame, Cancel):
            self._state = _State.FINISHED
            return Step(events=[Aborted("the sender cancelled the transfer", AbortedBy.PEER)])
        if isinstance(frame, BadPacket):
            self._errors += 1
            if self._errors >= self.max_errors:
                return self._abort(f"too many bad blocks in a row (last: block {frame.seq}, CRC error)")
            return Step(_NAK)
        if isinstance(frame, EndOfFile):
            return self._on_eot()
        if self._state is _State.WAIT_HEADER:
            return self._on_header(frame)
        if self._state is _State.WAIT_END:
            return self._on_end(frame)
        return self._on_data(frame)

    def _on_header(self, packet: Packet) -> Step:
        if packet.seq != 0:
            return self._abort(f"block {packet.seq} arrived before the file header (block 0)")
        try:
            header = parse_header_payload(packet.payload)
        except FormatError as exc:
            return self._abort(str(exc))
        self._errors = 0
        if header is None:  # an empty batch: nothing to receive
            self._state = _State.FINISHED
            return Step(_ACK, [Done()])
        if header.size is not None and self.max_size is not None and header.size > self.max_size:
            return self._abort(f"{header.name} is {header.size} bytes, more than the {self.max_size} "
                               "bytes there is room for")
        self.file = FileInfo(header.name, header.size)
        self._state = _State.RECEIVING
        return Step(_ACK + _C, [self.file])

    def _on_data(self, packet: Packet) -> Step:
        expected = (self._blocks + 1) & 0xFF
        if packet.seq != expected:
            if packet.seq == (expected - 1) & 0xFF:  # our ACK was lost: the sender repeats itself
                self._errors = 0
                return Step(_ACK + _C if self._blocks == 0 else _ACK)
            return self._abort(f"expected block {expected}, got block {packet.seq}")
        assert self.file is not None
        size = self.file.size
        chunk = packet.payload
        if size is not None:
            remaining = size - self.received
            if remaining <= 0:
                return self._abort(f"the sender sent more than the {size} bytes block 0 announced")
            chunk = chunk[:remaining]
        elif self.max_size is not None and self.received + len(chunk) > self.max_size:
            return self._abort(f"{self.file.name} is more than the {self.max_size} bytes there is room for")
        offset = self.received
        self.received += len(chunk)
        self._blocks += 1
        self._errors = 0
        self._eot_pending = False
        return Step(_ACK, [Data(offset, chunk)])

    def _on_eot(self) -> Step:
        if self._state is _State.WAIT_END:  # our ACK of the EOT was lost
            return Step(_ACK + _C)
        if self._state is not _State.RECEIVING:
            return Step()  # a stray EOT before any header is line noise
        if self.eot_policy is EotPolicy.NAK_FIRST and not self._eot_pending:
            self._eot_pending = True
            return Step(_NAK)
        assert self.file is not None
        if self.file.size is not None and self.received < self.file.size:
            return self._abort(f"the sender ended the file after {self.received} of {self.file.size} bytes")
        self._state = _State.WAIT_END
        self._errors = 0
        return Step(_ACK + _C)

    def _on_end(self, packet: Packet) -> Step:
        if packet.seq != 0:
            return self._abort(f"expected the end of the batch (block 0), got block {packet.seq}")
        try:
            header = parse_header_payload(packet.payload)
        except FormatError as exc:
            return self._abort(str(exc))
        if header is not None:
            return self._abort(f"a second file ({header.name}) in one transfer is not accepted")
        self._state = _State.FINISHED
        return Step(_ACK, [Done()])

    def _abort(self, reason: str) -> Step:
        self._state = _State.FINISHED
        self.cancelled_here = True
        self._reader.discard()
        return Step(ABORT, [Aborted(reason, AbortedBy.LOCAL)])

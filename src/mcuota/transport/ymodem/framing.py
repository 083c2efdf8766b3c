"""Cutting the receiver's byte stream into frames, tolerant of line noise.

Between packets a UART delivers whatever glitches it likes; a byte that cannot start a frame is
dropped, and a start byte whose sequence number and complement disagree is taken for noise too (that
check costs two bytes and saves a 1 KB wait for a packet that never was). Only a whole packet's CRC
decides whether it is good.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcuota.transport.ymodem.packets import (
    BLOCK_SIZES,
    CAN,
    CRC_BYTES,
    EOT,
    HEADER_BYTES,
    crc16,
)


@dataclass(frozen=True)
class Packet:
    seq: int
    payload: bytes


@dataclass(frozen=True)
class BadPacket:
    """A whole packet arrived with a CRC that does not match: the receiver asks for it again."""

    seq: int


class EndOfFile:
    pass


class Cancel:
    pass


Frame = Packet | BadPacket | EndOfFile | Cancel

END_OF_FILE = EndOfFile()
CANCEL = Cancel()


class FrameReader:
    """Bytes in, frames out; keeps the tail of an unfinished packet until more bytes (or a timeout) come."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def pending(self) -> bool:
        """True when part of a frame is waiting for the rest of its bytes."""
        return bool(self._buffer)

    def discard(self) -> None:
        """Forget a partial frame: after a timeout its missing bytes are not coming."""
        self._buffer.clear()

    def next_frame(self) -> Frame | None:
        buf = self._buffer
        while buf:
            first = buf[0]
            if first == EOT:
                del buf[0]
                return END_OF_FILE
            if first == CAN:
                if len(buf) < 2:
                    return None
                if buf[1] == CAN:
                    buf.clear()
                    return CANCEL
                del buf[0]
                continue
            size = BLOCK_SIZES.get(first)
            if size is None:
                del buf[0]  # line noise between packets
                continue
            if len(buf) < HEADER_BYTES:
                return None
            seq, complement = buf[1], buf[2]
            if seq ^ complement != 0xFF:
                del buf[0]
                continue
            total = HEADER_BYTES + size + CRC_BYTES
            if len(buf) < total:
                return None
            payload = bytes(buf[HEADER_BYTES:HEADER_BYTES + size])
            good = crc16(payload) == int.from_bytes(buf[HEADER_BYTES + size:total], "big")
            del buf[:total]
            return Packet(seq, payload) if good else BadPacket(seq)
        return None

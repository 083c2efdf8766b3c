"""YMODEM framing: control bytes, the CRC, data packets and the block-0 file header.

Packet (ST AN4657 §2, the lrzsz reference)::

    SOH|STX  seq  0xFF-seq  128|1024 data bytes  CRC-16 big-endian

Block 0 carries ``name NUL decimal-size [more fields]`` zero-padded; a block 0 whose name is empty ends
the batch. The last data block is padded with 0x1A (CP/M's end of file), and the size in block 0 is
what tells the receiver how much of that padding to drop.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from mcuota.errors import FormatError

SOH = 0x01
STX = 0x02
EOT = 0x04
ACK = 0x06
NAK = 0x15
CAN = 0x18
CRC_REQUEST = 0x43  # 'C': the receiver asks for CRC-16 mode and for the next file header
PAD = 0x1A

SMALL_BLOCK = 128
LARGE_BLOCK = 1024
HEADER_BYTES = 3
CRC_BYTES = 2
BLOCK_SIZES = {SOH: SMALL_BLOCK, STX: LARGE_BLOCK}

ABORT = bytes((CAN, CAN))


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0, no reflection, no final xor).

    ``binascii.crc_hqx`` is exactly this CRC implemented in C: a pure-Python table loop would cost
    more per 1 KB block than the whole round trip over a fast UART, and the stdlib needs no table."""
    return binascii.crc_hqx(data, 0)


def build_packet(seq: int, payload: bytes, pad: int = PAD) -> bytes:
    """One framed block; ``payload`` shorter than its block is padded (0x1A for data, NUL for block 0)."""
    if len(payload) > LARGE_BLOCK:
        raise FormatError(f"a YMODEM block holds at most {LARGE_BLOCK} bytes, not {len(payload)}")
    size = SMALL_BLOCK if len(payload) <= SMALL_BLOCK else LARGE_BLOCK
    body = payload + bytes((pad,)) * (size - len(payload))
    seq &= 0xFF
    return (bytes((SOH if size == SMALL_BLOCK else STX, seq, 0xFF - seq)) + body
            + crc16(body).to_bytes(2, "big"))


@dataclass(frozen=True)
class FileHeader:
    """What block 0 says about the file; ``size`` is None when the sender left it out (allowed)."""

    name: str
    size: int | None


def build_header_payload(name: str, size: int) -> bytes:
    """Block 0's payload for one file: the name (no directory: the receiver decides where) and its size."""
    raw_name = name.encode("utf-8")
    if not raw_name or b"\0" in raw_name:
        raise FormatError(f"YMODEM file name {name!r} must be non-empty and contain no NUL")
    payload = raw_name + b"\0" + str(size).encode("ascii")
    if len(payload) >= LARGE_BLOCK:
        raise FormatError(f"YMODEM file name {name!r} is too long for block 0")
    return payload


def end_of_batch_packet() -> bytes:
    """The empty block 0 that tells the receiver no more files follow."""
    return build_packet(0, b"", pad=0)


def parse_header_payload(payload: bytes) -> FileHeader | None:
    """Block 0's payload → the file it announces, or None for the empty block that ends the batch."""
    if not payload or payload[0] == 0:
        return None
    name_end = payload.find(b"\0")
    if name_end < 0:
        raise FormatError("YMODEM block 0: the file name is not NUL-terminated")
    name = payload[:name_end].decode("utf-8", errors="replace")
    rest = payload[name_end + 1:]
    field = rest.split(b"\0", 1)[0].split(b" ", 1)[0]
    if not field:
        return FileHeader(name, None)
    if not field.isdigit():
        raise FormatError(f"YMODEM block 0: file size {field[:20]!r} is not a decimal number")
    return FileHeader(name, int(field))

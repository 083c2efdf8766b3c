"""The framing of an image pushed to a device over TCP (seed 001's W5500 stream), sans-I/O.

Seed 001's bootloader reads its OTA image from a stream that only knows how many bytes to expect; a raw
TCP connection says neither how much is coming nor whether it all arrived intact, and the sender never
learns whether the device took it. mcuota frames it minimally, little-endian::

    sender   -> "MOTA" | u32 image size | u32 CRC-32 of the image   (12 bytes)
    sender   -> the image, exactly ``size`` bytes
    receiver -> one verdict byte (:class:`Verdict`), then it closes

CRC-32 is zlib's (reflected 0xEDB88320). The receiver may send its verdict early (a bad header, an image
larger than its staging area) and close. There is no resume offset: a device that journals its staging
skips reprogramming what is already intact when the same image is sent again.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import Enum, IntEnum

from mcuota.errors import CapacityError, FormatError, IntegrityError, McuotaError

MAGIC = b"MOTA"
HEADER = struct.Struct("<4sII")


class Verdict(IntEnum):
    OK = 0
    """Verified and requested: the device installs the image on its reset."""
    BAD_HEADER = 1
    TOO_LARGE = 2
    CRC_MISMATCH = 3
    REFUSED = 4
    """The device's own checks refused the image (format, version, signature)."""
    OVERRUN = 5
    """Bytes after the announced image."""


class StreamRefused(McuotaError):
    """The device answered a verdict other than OK (or none at all)."""

    def __init__(self, verdict: Verdict | None, detail: str) -> None:
        super().__init__(detail)
        self.verdict = verdict


def frame_header(image: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(image), zlib.crc32(image))


def verdict_error(verdict: Verdict, size: int) -> McuotaError:
    """The error a sender raises for a verdict, in the class a user acts on."""
    text = {
        Verdict.BAD_HEADER: "the device did not understand the stream header",
        Verdict.TOO_LARGE: f"the device's staging area cannot hold {size} bytes",
        Verdict.CRC_MISMATCH: f"the device received {size} bytes whose CRC-32 is not the header's",
        Verdict.REFUSED: "the device refused the image (format, version or signature)",
        Verdict.OVERRUN: "the device received more bytes than announced",
    }.get(verdict, f"verdict {verdict.name}")
    if verdict is Verdict.TOO_LARGE:
        return CapacityError(text)
    if verdict is Verdict.CRC_MISMATCH:
        return IntegrityError(text)
    if verdict is Verdict.BAD_HEADER:
        return FormatError(text)
    return StreamRefused(verdict, text)


@dataclass(frozen=True)
class Header:
    size: int
    crc: int


@dataclass(frozen=True)
class Chunk:
    offset: int
    data: bytes


@dataclass(frozen=True)
class Complete:
    """Every byte arrived and the CRC matches: the device checks the image, then answers."""

    size: int
    crc: int


@dataclass(frozen=True)
class Rejected:
    """The stream is refused: send :attr:`verdict` and close."""

    verdict: Verdict
    reason: str


Event = Header | Chunk | Complete | Rejected


class ReceiverState(Enum):
    HEADER = "header"
    BODY = "body"
    COMPLETE = "complete"
    CLOSED = "closed"


class StreamReceiver:
    """The device's end: :meth:`feed` it what the socket read, :meth:`eof` when the peer closed."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.state = ReceiverState.HEADER
        self.buffer = bytearray()
        self.size = 0
        self.expected_crc = 0
        self.received = 0
        self.crc = 0

    def feed(self, data: bytes) -> list[Event]:
        if self.state is ReceiverState.CLOSED or not data:
            return []
        if self.state is ReceiverState.COMPLETE:
            return self._reject(Verdict.OVERRUN, f"{len(data)} bytes after the {self.size}-byte image")
        events: list[Event] = []
        if self.state is ReceiverState.HEADER:
            self.buffer += data
            if len(self.buffer) < HEADER.size:
                return []
            magic, self.size, self.expected_crc = HEADER.unpack_from(self.buffer)
            data = bytes(self.buffer[HEADER.size:])
            self.buffer.clear()
            if magic != MAGIC:
                return self._reject(Verdict.BAD_HEADER, f"stream starts with {magic!r}, not {MAGIC!r}")
            if self.size == 0:
                return self._reject(Verdict.BAD_HEADER, "the header announces an empty image")
            if self.size > self.room:
                return self._reject(Verdict.TOO_LARGE, f"image of {self.size} bytes does not fit the "
                                    f"{self.room}-byte staging area")
            self.state = ReceiverState.BODY
            events.append(Header(self.size, self.expected_crc))
        take = data[:self.size - self.received]
        if take:
            events.append(Chunk(self.received, take))
            self.received += len(take)
            self.crc = zlib.crc32(take, self.crc)
        if self.received == self.size:
            if len(data) > len(take):
                return events + self._reject(Verdict.OVERRUN, f"{len(data) - len(take)} bytes after the "
                                             f"{self.size}-byte image")
            if self.crc != self.expected_crc:
                return events + self._reject(Verdict.CRC_MISMATCH, f"CRC-32 0x{self.crc:08x} of the "
                                             f"bytes received, the header says 0x{self.expected_crc:08x}")
            self.state = ReceiverState.COMPLETE
            events.append(Complete(self.size, self.crc))
        return events

    def eof(self) -> str | None:
        """The peer closed; why that is a truncated stream, or None when nothing was missing."""
        state, self.state = self.state, ReceiverState.CLOSED
        if state is ReceiverState.HEADER:
            return f"the stream closed after {len(self.buffer)} header bytes"
        if state is ReceiverState.BODY:
            return f"the stream closed after {self.received} of {self.size} image bytes"
        return None

    def _reject(self, verdict: Verdict, reason: str) -> list[Event]:
        self.state = ReceiverState.CLOSED
        return [Rejected(verdict, reason)]

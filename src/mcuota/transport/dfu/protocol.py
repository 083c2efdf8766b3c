"""USB DFU 1.1 as both ends see it on the wire: request and state numbers, status codes, the
GETSTATUS reply, the DFU functional descriptor, and the one interface a host needs from a link.

The host and the virtual device are written against :class:`ControlTransport` only, so the same host
code drives a board over pyusb (:mod:`mcuota.transport.dfu_usb`) and the in-memory device the tests,
the benchmark and ``mcuota dfu --virtual`` use. A stall is how USB refuses a control request; it is an
exception here (:class:`DfuStall`) because a host has to stop and recover, never read on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from mcuota.errors import FormatError, McuotaError

DFU_CLASS, DFU_SUBCLASS = 0xFE, 0x01
PROTOCOL_RUNTIME, PROTOCOL_DFU_MODE = 0x01, 0x02
FUNCTIONAL_DESCRIPTOR_TYPE = 0x21
BCD_DFU_1_1 = 0x0110
BCD_DFUSE = 0x011A


class Request(IntEnum):
    DETACH = 0
    DNLOAD = 1
    UPLOAD = 2
    GETSTATUS = 3
    CLRSTATUS = 4
    GETSTATE = 5
    ABORT = 6


class State(IntEnum):
    APP_IDLE = 0
    APP_DETACH = 1
    DFU_IDLE = 2
    DFU_DNLOAD_SYNC = 3
    DFU_DNBUSY = 4
    DFU_DNLOAD_IDLE = 5
    DFU_MANIFEST_SYNC = 6
    DFU_MANIFEST = 7
    DFU_MANIFEST_WAIT_RESET = 8
    DFU_UPLOAD_IDLE = 9
    DFU_ERROR = 10

    @property
    def label(self) -> str:
        """The spec's spelling (``dfuDNLOAD-IDLE``), which is what users find in dfu-util output."""
        words = self.name.split("_")
        head = words[0].lower()
        return head + "-".join(words[1:]) if len(words) > 1 else head


class Status(IntEnum):
    OK = 0
    ERR_TARGET = 1
    ERR_FILE = 2
    ERR_WRITE = 3
    ERR_ERASE = 4
    ERR_CHECK_ERASED = 5
    ERR_PROG = 6
    ERR_VERIFY = 7
    ERR_ADDRESS = 8
    ERR_NOTDONE = 9
    ERR_FIRMWARE = 10
    ERR_VENDOR = 11
    ERR_USBR = 12
    ERR_POR = 13
    ERR_UNKNOWN = 14
    ERR_STALLEDPKT = 15

    @property
    def label(self) -> str:
        return "OK" if self is Status.OK else "err" + self.name[4:]


# bmAttributes of the functional descriptor
CAN_DOWNLOAD = 0x01
CAN_UPLOAD = 0x02
MANIFESTATION_TOLERANT = 0x04
WILL_DETACH = 0x08

STATUS_LENGTH = 6
_STATUS = struct.Struct("<BHBBB")  # bStatus, bwPollTimeout (low 16), bwPollTimeout (high 8), bState, iString
_FUNCTIONAL = struct.Struct("<BBBHHH")


class DfuStall(McuotaError):
    """The device stalled a control request: it refused it in its current state."""


class DeviceGone(McuotaError):
    """The device no longer answers: it reset, detached or lost power."""


class DfuDeviceError(McuotaError):
    """The device reports an error status (its state is dfuERROR until CLRSTATUS)."""

    def __init__(self, status: Status, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class StatusReply:
    """The six bytes of a GETSTATUS reply."""

    status: Status
    poll_timeout_ms: int
    state: State
    string_index: int = 0

    def pack(self) -> bytes:
        return _STATUS.pack(self.status, self.poll_timeout_ms & 0xFFFF, self.poll_timeout_ms >> 16,
                            self.state, self.string_index)

    @classmethod
    def unpack(cls, data: bytes) -> StatusReply:
        if len(data) != STATUS_LENGTH:
            raise FormatError(f"GETSTATUS reply of {len(data)} bytes, DFU 1.1 defines {STATUS_LENGTH}")
        status, low, high, state, string = _STATUS.unpack(data)
        try:
            return cls(Status(status), low | high << 16, State(state), string)
        except ValueError:
            raise FormatError(f"GETSTATUS reply {data.hex()} names an unknown status {status} or "
                              f"state {state}") from None


@dataclass(frozen=True)
class Functional:
    """The DFU functional descriptor: what the device can do and how big a block may be."""

    attributes: int
    detach_timeout_ms: int
    transfer_size: int
    bcd_dfu: int = BCD_DFU_1_1

    @property
    def can_download(self) -> bool:
        return bool(self.attributes & CAN_DOWNLOAD)

    @property
    def can_upload(self) -> bool:
        return bool(self.attributes & CAN_UPLOAD)

    @property
    def manifestation_tolerant(self) -> bool:
        return bool(self.attributes & MANIFESTATION_TOLERANT)

    @property
    def will_detach(self) -> bool:
        return bool(self.attributes & WILL_DETACH)

    @property
    def is_dfuse(self) -> bool:
        return self.bcd_dfu == BCD_DFUSE

    def pack(self) -> bytes:
        return _FUNCTIONAL.pack(_FUNCTIONAL.size, FUNCTIONAL_DESCRIPTOR_TYPE, self.attributes,
                                self.detach_timeout_ms, self.transfer_size, self.bcd_dfu)


def parse_functional(extra: bytes) -> Functional:
    """The functional descriptor among an interface's extra descriptors (as libusb hands them over).

    Old DFU 1.0 devices send 7 bytes without bcdDFUVersion; they are read as DFU 1.0.
    """
    pos = 0
    while pos + 2 <= len(extra):
        length, kind = extra[pos], extra[pos + 1]
        if length < 2:
            raise FormatError(f"descriptor of length {length} at offset {pos}")
        if kind == FUNCTIONAL_DESCRIPTOR_TYPE:
            body = extra[pos:pos + length] + b"\x00\x01"  # DFU 1.0: bcdDFUVersion absent
            if length < 7 or len(body) < _FUNCTIONAL.size:
                raise FormatError(f"DFU functional descriptor at offset {pos} is {length} bytes, needs 7")
            _len, _type, attributes, detach, transfer, bcd = _FUNCTIONAL.unpack_from(body)
            return Functional(attributes, detach, transfer, bcd if length >= 9 else 0x0100)
        pos += length
    raise FormatError("the interface has no DFU functional descriptor (type 0x21)")


@dataclass(frozen=True)
class DeviceInfo:
    """What a host learns from a device's descriptors before it sends one DFU request."""

    vid: int
    pid: int
    bcd_device: int
    interface: int
    functional: Functional
    runtime: bool
    """True for an application's run-time DFU interface (appIDLE): DETACH first, then it re-enumerates."""
    alternates: tuple[str, ...] = ()
    """Names of the interface's alternate settings (DfuSe: the memory-layout strings)."""
    location: str = ""

    @property
    def ids(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"

    def describe(self) -> str:
        mode = "runtime" if self.runtime else "DFU mode"
        bcd = self.functional.bcd_dfu
        kind = "DfuSe" if self.functional.is_dfuse else f"DFU {bcd >> 8}.{(bcd >> 4) & 0xF}"
        names = "".join(f' alt={n} name="{name}"' for n, name in enumerate(self.alternates))
        where = f" at {self.location}" if self.location else ""
        return (f"[{self.ids}] {mode}, {kind}, interface {self.interface}, transfer size "
                f"{self.functional.transfer_size}{names}{where}")


class ControlTransport(Protocol):
    """A DFU interface's control pipe. ``control_out`` sends a class request to the interface
    (bmRequestType 0x21), ``control_in`` reads one (0xA1); a refused request raises :class:`DfuStall`,
    a device that went away :class:`DeviceGone`. ``reset`` is a USB bus reset of the device."""

    def control_out(self, request: int, value: int, index: int, data: bytes) -> None: ...

    def control_in(self, request: int, value: int, index: int, length: int) -> bytes: ...

    def reset(self) -> None: ...

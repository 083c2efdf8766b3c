"""The BLE OTA protocol of Infineon's OTA agent (seed 002), sans-I/O: one machine per end.

The updater app (GATT central) writes commands to the *control point* characteristic and image bytes to
the *data* characteristic; the device (GATT peripheral) answers each command with a 1-byte status
notification on the control point. Neither machine owns a radio, a clock or a flash part: they take the
bytes of a write or a notification and return what to send and what happened, so the same code runs
over :mod:`mcuota.transport.ble_link` (the in-process, simulated radio the tests use) or over a real
GATT stack. No adapter for a real radio ships here: it could not be tested on a machine without one.

Wire format, as the seed defines it:

* ``PREPARE_DOWNLOAD`` (1): ``[1]``; ``DOWNLOAD`` (2): ``[2][u32 total size LE]``; ``VERIFY`` (3):
  ``[3][u32 CRC-32 LE]``; ``ABORT`` (4): ``[4]``. Control point writes are ATT Write Requests.
* Status notification: one byte, ``OK`` (0) or ``BAD`` (1). The seed has no other values, so *why* the
  peripheral said BAD stays on the device (:class:`Failed` names it); the central learns which command
  was refused, or that the peripheral gave up while data was flowing.
* Data packets are ATT Write Commands (write without response) of at most ``MTU - 3`` bytes, the ATT
  payload of the negotiated MTU, in order: BLE retransmits at the link layer, so nothing is lost or
  reordered and the protocol needs no offsets.
* CRC-32 over the whole image: reflected polynomial 0xEDB88320 as zlib computes it (``zlib.crc32`` with
  its initial value 0; internally ~0 in, ~ out).

Choices the seed leaves open, made here: ``ABORT`` is acknowledged with OK and returns the peripheral
to idle; a peripheral that gives up on its own sends an unsolicited BAD; after any BAD the peripheral is
idle and the central starts again with ``PREPARE_DOWNLOAD``. The protocol carries no resume offset, so a
new connection sends the image from its first byte; a device that journals its staging (the simulated
one does) skips reprogramming what is already intact.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum

from mcuota.errors import McuotaError

SERVICE_UUID = "ae5d1e47-5c13-43a0-8635-82ad38a1381f"
CONTROL_POINT_UUID = "a3dd50bf-f7a7-4e99-838e-570a086c661b"
DATA_UUID = "a2e86c7a-d961-4091-b74f-2409e72efe26"

ATT_HEADER = 3
"""Opcode and handle: what an ATT write or notification spends of the MTU before its value."""
DEFAULT_MTU = 23
"""The MTU every BLE link starts with, before an exchange raises it."""
MAX_MTU = 517


class Command(IntEnum):
    PREPARE_DOWNLOAD = 1
    DOWNLOAD = 2
    VERIFY = 3
    ABORT = 4


class Status(IntEnum):
    OK = 0
    BAD = 1


COMMANDS = frozenset(int(c) for c in Command)
STATUSES = frozenset(int(s) for s in Status)


class Characteristic(StrEnum):
    CONTROL_POINT = CONTROL_POINT_UUID
    DATA = DATA_UUID


class Fault(StrEnum):
    """Why an end gave up; the peripheral's reason stays on the device, the central's names its view."""

    DATA_BEFORE_DOWNLOAD = "DATA_BEFORE_DOWNLOAD"    # a data packet with no DOWNLOAD accepted
    OUT_OF_ORDER = "OUT_OF_ORDER"                    # a command the current state does not take
    BAD_COMMAND = "BAD_COMMAND"                      # unknown opcode or wrong length
    PACKET_TOO_LONG = "PACKET_TOO_LONG"              # a data packet over MTU - 3
    TOO_LARGE = "TOO_LARGE"                          # DOWNLOAD announces more than the slot holds
    EMPTY = "EMPTY"                                  # DOWNLOAD of 0 bytes
    OVERRUN = "OVERRUN"                              # more data bytes than DOWNLOAD announced
    INCOMPLETE = "INCOMPLETE"                        # VERIFY before all announced bytes arrived
    CRC_MISMATCH = "CRC_MISMATCH"                    # VERIFY's CRC-32 is not that of the bytes received
    REFUSED = "REFUSED"                              # the device's own checks refused the image
    ABORTED = "ABORTED"                              # ABORT from the other end
    DISCONNECTED = "DISCONNECTED"                    # the link dropped mid-transfer
    NO_ANSWER = "NO_ANSWER"                          # a command got no status notification


class BleOtaError(McuotaError):
    """A BLE transfer that ended without an installed-to-be image, for the reason in :attr:`fault`."""

    def __init__(self, fault: Fault, detail: str) -> None:
        super().__init__(f"BLE OTA {fault.value}: {detail}")
        self.fault = fault
        self.detail = detail


def encode_command(command: Command, value: int | None = None) -> bytes:
    if command in (Command.DOWNLOAD, Command.VERIFY):
        if value is None or not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"{command.name} needs a 32-bit value")
        return struct.pack("<BI", command, value)
    return bytes((command,))


def decode_command(raw: bytes) -> tuple[Command, int | None]:
    """The command a control point write carries; :class:`BleOtaError` (BAD_COMMAND) when it is none."""
    if not raw or raw[0] not in COMMANDS:
        raise BleOtaError(Fault.BAD_COMMAND, f"control point write {raw[:8].hex() or '(empty)'} "
                          "is no command")
    command = Command(raw[0])
    wanted = 5 if command in (Command.DOWNLOAD, Command.VERIFY) else 1
    if len(raw) != wanted:
        raise BleOtaError(Fault.BAD_COMMAND, f"{command.name} is {wanted} bytes, the write had {len(raw)}")
    return command, struct.unpack_from("<I", raw, 1)[0] if wanted == 5 else None


def payload_size(mtu: int) -> int:
    """The ATT payload a write or notification can carry on a link with this MTU."""
    if not DEFAULT_MTU <= mtu <= MAX_MTU:
        raise ValueError(f"ATT MTU {mtu} outside {DEFAULT_MTU}..{MAX_MTU}")
    return mtu - ATT_HEADER


# --- what the machines return ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Notify:
    """The peripheral sends this status notification on the control point."""

    status: Status

    @property
    def value(self) -> bytes:
        return bytes((self.status,))


@dataclass(frozen=True)
class DownloadStarted:
    total: int


@dataclass(frozen=True)
class DataReceived:
    offset: int
    data: bytes


@dataclass(frozen=True)
class VerifyRequested:
    """All bytes arrived and their CRC-32 matches: the device checks the image and answers with
    :meth:`BlePeripheral.accept` or :meth:`BlePeripheral.refuse`."""

    total: int
    crc: int


@dataclass(frozen=True)
class Failed:
    """The transfer is over without an image; a BAD went out first when the link was still there."""

    error: BleOtaError


@dataclass(frozen=True)
class Accepted:
    total: int


PeripheralEvent = Notify | DownloadStarted | DataReceived | VerifyRequested | Failed | Accepted


class PeripheralState(Enum):
    IDLE = "idle"
    PREPARED = "prepared"
    RECEIVING = "receiving"
    VERIFYING = "verifying"
    DONE = "done"


class BlePeripheral:
    """The device's end: takes control point and data writes, answers with status notifications.

    ``room`` is the staging slot's size (a larger DOWNLOAD is refused before any byte is written);
    ``mtu`` the negotiated ATT MTU, which bounds a data packet."""

    def __init__(self, room: int, mtu: int = DEFAULT_MTU) -> None:
        self.room = room
        self.max_packet = payload_size(mtu)
        self.state = PeripheralState.IDLE
        self.total = 0
        self.received = 0
        self.crc = 0

    def control_write(self, raw: bytes) -> list[PeripheralEvent]:
        try:
            command, value = decode_command(raw)
        except BleOtaError as exc:
            return self._fail(exc)
        if command is Command.ABORT:
            if self.state in (PeripheralState.IDLE, PeripheralState.DONE):
                return [Notify(Status.OK)]
            self._reset()
            return [Notify(Status.OK), Failed(BleOtaError(Fault.ABORTED, "the central sent ABORT"))]
        if command is Command.PREPARE_DOWNLOAD:
            if self.state in (PeripheralState.RECEIVING, PeripheralState.VERIFYING):
                return self._fail(BleOtaError(Fault.OUT_OF_ORDER, "PREPARE_DOWNLOAD during a download"))
            self._reset()
            self.state = PeripheralState.PREPARED
            return [Notify(Status.OK)]
        if command is Command.DOWNLOAD:
            assert value is not None
            return self._download(value)
        assert value is not None
        return self._verify(value)

    def _download(self, total: int) -> list[PeripheralEvent]:
        if self.state is not PeripheralState.PREPARED:
            return self._fail(BleOtaError(Fault.OUT_OF_ORDER, f"DOWNLOAD in state {self.state.value} "
                                          "(PREPARE_DOWNLOAD comes first)"))
        if total == 0:
            return self._fail(BleOtaError(Fault.EMPTY, "DOWNLOAD announces 0 bytes"))
        if total > self.room:
            return self._fail(BleOtaError(Fault.TOO_LARGE, f"image of {total} bytes does not fit the "
                                          f"{self.room}-byte slot"))
        self.state, self.total, self.received, self.crc = PeripheralState.RECEIVING, total, 0, 0
        return [Notify(Status.OK), DownloadStarted(total)]

    def _verify(self, crc: int) -> list[PeripheralEvent]:
        if self.state is not PeripheralState.RECEIVING:
            return self._fail(BleOtaError(Fault.OUT_OF_ORDER, f"VERIFY in state {self.state.value}"))
        if self.received != self.total:
            return self._fail(BleOtaError(Fault.INCOMPLETE, f"VERIFY after {self.received} of "
                                          f"{self.total} bytes"))
        if crc != self.crc:
            return self._fail(BleOtaError(Fault.CRC_MISMATCH, f"VERIFY says CRC-32 0x{crc:08x}, the "
                                          f"{self.total} bytes received have 0x{self.crc:08x}"))
        self.state = PeripheralState.VERIFYING
        return [VerifyRequested(self.total, crc)]

    def data_write(self, raw: bytes) -> list[PeripheralEvent]:
        if self.state is not PeripheralState.RECEIVING:
            return self._fail(BleOtaError(Fault.DATA_BEFORE_DOWNLOAD, f"{len(raw)} data bytes in state "
                                          f"{self.state.value}"))
        if len(raw) > self.max_packet:
            return self._fail(BleOtaError(Fault.PACKET_TOO_LONG, f"data packet of {len(raw)} bytes, the "
                                          f"MTU allows {self.max_packet}"))
        if self.received + len(raw) > self.total:
            return self._fail(BleOtaError(Fault.OVERRUN, f"{self.received + len(raw)} bytes sent, "
                                          f"DOWNLOAD announced {self.total}"))
        offset = self.received
        self.received += len(raw)
        self.crc = zlib.crc32(raw, self.crc)
        return [DataReceived(offset, bytes(raw))] if raw else []

    def accept(self) -> list[PeripheralEvent]:
        """The device took the verified image (it installs on the next reset)."""
        if self.state is not PeripheralState.VERIFYING:
            raise BleOtaError(Fault.OUT_OF_ORDER, f"accept in state {self.state.value}")
        self.state = PeripheralState.DONE
        return [Notify(Status.OK), Accepted(self.total)]

    def refuse(self, fault: Fault, detail: str) -> list[PeripheralEvent]:
        """The device gives up (its checks failed, its storage did, or its user aborted): BAD, idle."""
        return self._fail(BleOtaError(fault, detail))

    def disconnected(self) -> list[PeripheralEvent]:
        if self.state in (PeripheralState.IDLE, PeripheralState.DONE):
            return []
        self._reset()
        return [Failed(BleOtaError(Fault.DISCONNECTED, "the central disconnected mid-transfer"))]

    def _fail(self, error: BleOtaError) -> list[PeripheralEvent]:
        self._reset()
        return [Notify(Status.BAD), Failed(error)]

    def _reset(self) -> None:
        self.state, self.total, self.received, self.crc = PeripheralState.IDLE, 0, 0, 0


# --- the central -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Write:
    """Write ``value`` to ``characteristic``; ``with_response`` is an ATT Write Request (else a Command)."""

    characteristic: Characteristic
    value: bytes
    with_response: bool


@dataclass(frozen=True)
class Progress:
    sent: int
    total: int


@dataclass(frozen=True)
class Done:
    """The peripheral answered OK to VERIFY: it holds the image and installs it on its next reset."""

    total: int
    crc: int


CentralEvent = Progress | Done


class CentralState(Enum):
    IDLE = "idle"
    AWAIT_PREPARE = "await-prepare"
    AWAIT_DOWNLOAD = "await-download"
    SENDING = "sending"
    AWAIT_VERIFY = "await-verify"
    AWAIT_ABORT = "await-abort"
    DONE = "done"
    FAILED = "failed"


class BleCentral:
    """The updater's end: PREPARE_DOWNLOAD, DOWNLOAD, the data packets, VERIFY; each command waits for
    its notification. :meth:`next_write` says what to send now (None: wait for a notification)."""

    def __init__(self, image: bytes, mtu: int = DEFAULT_MTU) -> None:
        if not image:
            raise BleOtaError(Fault.EMPTY, "no image to send")
        self.image = image
        self.crc = zlib.crc32(image)
        self.packet = payload_size(mtu)
        self.state = CentralState.IDLE
        self.sent = 0
        self._queued: Write | None = self._control(Command.PREPARE_DOWNLOAD)
        self.error: BleOtaError | None = None

    def _control(self, command: Command, value: int | None = None) -> Write:
        return Write(Characteristic.CONTROL_POINT, encode_command(command, value), True)

    def next_write(self) -> Write | None:
        queued, self._queued = self._queued, None
        if queued is not None:
            self.state = {Command.PREPARE_DOWNLOAD: CentralState.AWAIT_PREPARE,
                          Command.DOWNLOAD: CentralState.AWAIT_DOWNLOAD,
                          Command.VERIFY: CentralState.AWAIT_VERIFY,
                          Command.ABORT: CentralState.AWAIT_ABORT}[Command(queued.value[0])]
            return queued
        if self.state is not CentralState.SENDING:
            return None
        if self.sent >= len(self.image):
            self.state = CentralState.AWAIT_VERIFY
            return self._control(Command.VERIFY, self.crc)
        piece = self.image[self.sent:self.sent + self.packet]
        self.sent += len(piece)
        return Write(Characteristic.DATA, piece, False)

    def packets(self) -> Iterator[Write]:
        """The writes to send before the next notification is due."""
        while (write := self.next_write()) is not None:
            yield write
            if write.with_response:
                return

    def notification(self, raw: bytes) -> list[CentralEvent]:
        """A status notification on the control point; :class:`BleOtaError` when it ends the transfer."""
        if len(raw) != 1 or raw[0] not in STATUSES:
            raise self._failed(Fault.BAD_COMMAND,
                               f"status notification {raw.hex() or '(empty)'} is not OK/BAD")
        status = Status(raw[0])
        state = self.state
        if state is CentralState.AWAIT_ABORT:
            self.state = CentralState.FAILED
            raise self._failed(Fault.ABORTED, "the transfer was aborted")
        if status is Status.BAD:
            what = {CentralState.AWAIT_PREPARE: "PREPARE_DOWNLOAD", CentralState.AWAIT_DOWNLOAD:
                    f"DOWNLOAD of {len(self.image)} bytes", CentralState.AWAIT_VERIFY:
                    f"VERIFY (CRC-32 0x{self.crc:08x})"}.get(state)
            if what is None:
                raise self._failed(Fault.REFUSED, f"the peripheral gave up after {self.sent} of "
                                   f"{len(self.image)} bytes")
            fault = Fault.TOO_LARGE if state is CentralState.AWAIT_DOWNLOAD else Fault.REFUSED
            raise self._failed(fault, f"the peripheral answered BAD to {what}")
        if state is CentralState.AWAIT_PREPARE:
            self._queued = self._control(Command.DOWNLOAD, len(self.image))
            return []
        if state is CentralState.AWAIT_DOWNLOAD:
            self.state = CentralState.SENDING
            return [Progress(0, len(self.image))]
        if state is CentralState.AWAIT_VERIFY:
            self.state = CentralState.DONE
            return [Progress(len(self.image), len(self.image)), Done(len(self.image), self.crc)]
        raise self._failed(Fault.OUT_OF_ORDER, f"an OK notification in state {state.value}")

    def progress(self) -> Progress:
        return Progress(self.sent, len(self.image))

    def abort(self) -> Write:
        """ABORT: the peripheral acknowledges it, and the transfer ends with :attr:`Fault.ABORTED`."""
        self._queued = None
        self.state = CentralState.AWAIT_ABORT
        return self._control(Command.ABORT)

    def disconnected(self) -> BleOtaError:
        if self.state is not CentralState.DONE:
            self.state = CentralState.FAILED
            self.error = BleOtaError(Fault.DISCONNECTED, f"link lost after {self.sent} of "
                                     f"{len(self.image)} bytes")
        return self.error or BleOtaError(Fault.DISCONNECTED, "link lost after the transfer")

    def _failed(self, fault: Fault, detail: str) -> BleOtaError:
        self.state = CentralState.FAILED
        self.error = BleOtaError(fault, detail)
        return self.error

"""A DFU 1.1 / DfuSe host written only against :class:`ControlTransport`: what dfu-util does, as a
library.

The host never outruns the device: after every block it polls GETSTATUS and sleeps the bwPollTimeout
the device asked for (through the injected ``sleep``, so a simulation can sleep virtually), and a
device in dfuERROR is brought back with CLRSTATUS before a new transfer starts. Files are checked
before a single request is sent: a DFU suffix's CRC must match and its IDs must name the attached
device or the wildcard 0xFFFF (:func:`mcuota.image.dfu.ensure_for_device`); a DfuSe container goes
only to a DfuSe device, whose memory layout must allow every element to be written.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mcuota.errors import UsageError
from mcuota.image.dfu import ensure_for_device, split_dfu_file
from mcuota.image.dfuse import DfuseElement, looks_like_dfuse, parse_dfuse, parse_memory_layout
from mcuota.transport.dfu.protocol import (
    STATUS_LENGTH,
    ControlTransport,
    DeviceInfo,
    DfuDeviceError,
    Request,
    State,
    Status,
    StatusReply,
)

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in total) after each block."""

DFUSE_SET_ADDRESS, DFUSE_ERASE = 0x21, 0x41
_MAX_POLLS = 10_000  # a device that stays busy this long is broken; say so instead of hanging
_MANIFESTED = (State.DFU_MANIFEST, State.DFU_MANIFEST_WAIT_RESET, State.DFU_IDLE)


@dataclass
class TransferReport:
    """What a transfer did; ``polled_s`` is the sum of the bwPollTimeouts the host slept."""

    bytes: int = 0
    blocks: int = 0
    polled_s: float = 0.0
    manifested: bool = False
    erased_pages: int = 0


class DfuHost:
    def __init__(self, transport: ControlTransport, info: DeviceInfo, *, sleep: Callable[[float], None],
                 alternate: int = 0) -> None:
        self.transport = transport
        self.info = info
        self.sleep = sleep
        self.alternate = alternate
        self._report = TransferReport()

    @property
    def transfer_size(self) -> int:
        return self.info.functional.transfer_size

    @property
    def dfuse(self) -> bool:
        return self.info.functional.is_dfuse

    # -- the small requests ---------------------------------------------------------------------------
    def get_status(self) -> StatusReply:
        return StatusReply.unpack(self.transport.control_in(Request.GETSTATUS, 0, self.info.interface,
                                                            STATUS_LENGTH))

    def get_state(self) -> State:
        reply = self.transport.control_in(Request.GETSTATE, 0, self.info.interface, 1)
        return State(reply[0])

    def clear_status(self) -> None:
        self.transport.control_out(Request.CLRSTATUS, 0, self.info.interface, b"")

    def abort(self) -> None:
        self.transport.control_out(Request.ABORT, 0, self.info.interface, b"")

    def detach(self, timeout_ms: int = 1000) -> None:
        """Ask a running application to re-enumerate in DFU mode; reset the bus ourselves unless the
        device says it detaches on its own (bitWillDetach)."""
        if not self.info.runtime:
            raise UsageError(f"device {self.info.ids} is already in DFU mode: nothing to detach")
        self.transport.control_out(Request.DETACH, timeout_ms, self.info.interface, b"")
        if not self.info.functional.will_detach:
            self.transport.reset()

    def ensure_idle(self) -> None:
        """Bring the device to dfuIDLE: CLRSTATUS out of dfuERROR, ABORT out of an unfinished transfer."""
        if self.info.runtime:
            raise UsageError(f"device {self.info.ids} runs its application (appIDLE): detach it first")
        reply = self.get_status()
        if reply.state is State.DFU_ERROR:
            self.clear_status()
        elif reply.state in (State.DFU_DNLOAD_IDLE, State.DFU_UPLOAD_IDLE):
            self.abort()
        elif reply.state is not State.DFU_IDLE:
            raise DfuDeviceError(reply.status, f"the device is in {reply.state.label}, not ready for a "
                                 "transfer: reset it")
        reply = self.get_status()
        if reply.state is not State.DFU_IDLE:
            raise DfuDeviceError(reply.status, f"the device stays in {reply.state.label} "
                                 f"({reply.status.label}) after recovery")

    # -- download -------------------------------------------------------------------------------------
    def download_file(self, data: bytes, progress: Progress | None = None, *, address: int | None = None
                      ) -> TransferReport:
        """Download a .dfu file (suffix checked), a DfuSe file (DfuSe devices) or raw bytes.

        A raw image for a DfuSe device needs the ``address`` it goes to; a plain DFU device puts the
        bytes where it wants them (dapboot: the application area).
        """
        if looks_like_dfuse(data):
            parsed = parse_dfuse(data)
            ensure_for_device(parsed.suffix, self.info.vid, self.info.pid)
            if not self.dfuse:
                raise UsageError(f"the file is a DfuSe container; device {self.info.ids} speaks plain DFU "
                                 f"{self.info.functional.bcd_dfu:04x}")
            return self.dfuse_download(parsed.target(self.alternate).elements, progress)
        payload = data
        if data[-8:-5] == b"UFD":
            payload, suffix = split_dfu_file(data)
            ensure_for_device(suffix, self.info.vid, self.info.pid)
            if suffix.is_dfuse:
                raise UsageError("the DFU suffix says DfuSe (bcdDFU 0x011a) but the file has no DfuSe prefix")
        if not payload:
            raise UsageError("nothing to download: the image is empty")
        if self.dfuse:
            if address is None:
                raise UsageError(f"device {self.info.ids} speaks DfuSe: give the address a raw image goes to")
            return self.dfuse_download((DfuseElement(address, payload),), progress)
        if address is not None:
            raise UsageError(f"device {self.info.ids} speaks plain DFU and chooses the address itself")
        return self.download(payload, progress)

    def download(self, payload: bytes, progress: Progress | None = None) -> TransferReport:
        """Plain DFU: blocks 0, 1, 2…, then the zero-length DNLOAD and manifestation."""
        self.ensure_idle()
        report = self._report = TransferReport()
        size = self.transfer_size
        for number, offset in enumerate(range(0, len(payload), size)):
            chunk = payload[offset:offset + size]
            self._dnload(number & 0xFFFF, chunk)
            report.bytes += len(chunk)
            report.blocks += 1
            if progress is not None:
                progress(report.bytes, len(payload))
        self._manifest(-(-len(payload) // size) & 0xFFFF)
        return report

    def dfuse_download(self, elements: Sequence[DfuseElement], progress: Progress | None = None
                       ) -> TransferReport:
        """DfuSe: erase the pages the elements touch, write each element from its address with
        wBlockNum 2, 3... (address = (block - 2) * wTransferSize + pointer), then leave at the first."""
        if not self.dfuse:
            raise UsageError(f"device {self.info.ids} does not speak DfuSe")
        if not elements:
            raise UsageError("the DfuSe target has no elements")
        layout = parse_memory_layout(self.info.alternates[self.alternate])
        pages = sorted({sector.address for element in elements
                        for sector in layout.sectors_for(element.address, len(element.data))})
        self.ensure_idle()
        report = self._report = TransferReport()
        for page in pages:
            self.erase_page(page)
        report.erased_pages = len(pages)
        total = sum(len(element.data) for element in elements)
        size = self.transfer_size
        for element in elements:
            self.set_address(element.address)
            for number, offset in enumerate(range(0, len(element.data), size)):
                chunk = element.data[offset:offset + size]
                self._dnload(2 + number, chunk)
                report.bytes += len(chunk)
                report.blocks += 1
                if progress is not None:
                    progress(report.bytes, total)
        self.leave(elements[0].address)
        return report

    # -- DfuSe commands --------------------------------------------------------------------------------
    def set_address(self, address: int) -> None:
        self._dnload(0, struct.pack("<BI", DFUSE_SET_ADDRESS, address))

    def erase_page(self, address: int) -> None:
        self._dnload(0, struct.pack("<BI", DFUSE_ERASE, address))

    def mass_erase(self) -> None:
        self._dnload(0, bytes((DFUSE_ERASE,)))

    def leave(self, address: int) -> None:
        """Set the address, then a zero-length DNLOAD at block 0: the device manifests and jumps."""
        self.set_address(address)
        self._manifest(0)

    # -- upload ---------------------------------------------------------------------------------------
    def upload(self, length: int | None = None, *, address: int | None = None,
               progress: Progress | None = None) -> bytes:
        """Read from the device until it sends a short frame or ``length`` bytes arrived (DfuSe: from
        ``address``, required)."""
        self.ensure_idle()
        first = 0
        if self.dfuse:
            if address is None:
                raise UsageError(f"device {self.info.ids} speaks DfuSe: give the address to upload from")
            self.set_address(address)
            self.abort()  # back to dfuIDLE: UPLOAD is not allowed in dfuDNLOAD-IDLE
            first = 2
        elif address is not None:
            raise UsageError(f"device {self.info.ids} speaks plain DFU and chooses the address itself")
        size = self.transfer_size
        parts: list[bytes] = []
        got = 0
        block = first
        while length is None or got < length:
            want = size if length is None else min(size, length - got)
            chunk = self.transport.control_in(Request.UPLOAD, block & 0xFFFF, self.info.interface, want)
            parts.append(chunk)
            got += len(chunk)
            block += 1
            if progress is not None:
                progress(got, length or got)
            if len(chunk) < want:
                return b"".join(parts)
        self.abort()
        return b"".join(parts)

    # -- the poll loop --------------------------------------------------------------------------------
    def _dnload(self, block: int, data: bytes) -> None:
        self.transport.control_out(Request.DNLOAD, block, self.info.interface, data)
        self._wait((State.DFU_DNLOAD_IDLE,), f"block {block}")

    def _wait(self, goals: tuple[State, ...], what: str) -> StatusReply:
        """Poll GETSTATUS, sleeping each bwPollTimeout the device asks for, until one of ``goals``."""
        for _ in range(_MAX_POLLS):
            reply = self.get_status()
            if reply.state is State.DFU_ERROR or reply.status is not Status.OK:
                raise DfuDeviceError(reply.status, f"the device reports {reply.status.label} "
                                     f"({_MEANING[reply.status]}) after {what}")
            if reply.poll_timeout_ms:
                self._report.polled_s += reply.poll_timeout_ms / 1000
                self.sleep(reply.poll_timeout_ms / 1000)
            if reply.state in goals:
                return reply
        raise DfuDeviceError(Status.ERR_UNKNOWN, f"the device stayed busy for {_MAX_POLLS} polls after "
                             f"{what}")

    def _manifest(self, block: int) -> None:
        """The zero-length DNLOAD, then manifestation: a tolerant device returns to dfuIDLE, the
        others wait for a reset (or, with bitWillDetach, reset themselves)."""
        self.transport.control_out(Request.DNLOAD, block, self.info.interface, b"")
        reply = self._wait(_MANIFESTED, "the end of the download")
        functional = self.info.functional
        if reply.state is State.DFU_MANIFEST and functional.manifestation_tolerant:
            self._wait((State.DFU_IDLE,), "manifestation")
        elif not functional.will_detach:
            self.transport.reset()
        self._report.manifested = True


_MEANING = {
    Status.OK: "no error",
    Status.ERR_TARGET: "file not for this device",
    Status.ERR_FILE: "file fails a vendor check",
    Status.ERR_WRITE: "cannot write memory",
    Status.ERR_ERASE: "memory erase failed",
    Status.ERR_CHECK_ERASED: "memory erase check failed",
    Status.ERR_PROG: "program memory failed",
    Status.ERR_VERIFY: "programmed memory failed verification",
    Status.ERR_ADDRESS: "address out of range",
    Status.ERR_NOTDONE: "download ended before all data was received",
    Status.ERR_FIRMWARE: "the received firmware is not valid",
    Status.ERR_VENDOR: "vendor-specific error",
    Status.ERR_USBR: "unexpected USB reset",
    Status.ERR_POR: "unexpected power-on reset",
    Status.ERR_UNKNOWN: "unknown error",
    Status.ERR_STALLEDPKT: "the device stalled an unexpected request",
}

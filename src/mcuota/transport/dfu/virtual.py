"""A virtual dapboot on a simulated blue pill: the DFU 1.1 state machine (and, on request, ST's DfuSe
extension) answering control requests, writing through the board's flash model.

Nothing here knows a clock: the device reads time from an injected ``clock`` (a
:class:`VirtualClock` in tests, the benchmark and ``mcuota dfu --virtual``), so "the host polled
before bwPollTimeout ran out" is a reproducible protocol error rather than a race. The poll timeout
the device asks for is the modeled flash time of the block it just wrote (erase of the page the
write pointer entered, plus the half-word programs), rounded up to whole milliseconds, so a host that
honours it downloads at the speed of the flash.

The board itself stays the dapboot strategy's: a reset runs :meth:`DapbootStrategy.boot`, which either
jumps to the application (the device then shows the application's run-time DFU interface, appIDLE,
whose DETACH sets BKP_DR1 and resets into the bootloader, as dapboot applications do) or stays in the
bootloader (DFU mode, dfuIDLE). A :class:`~mcuota.flash.PowerLoss` during a request travels up to the
caller; the device is then gone until someone builds a new one on the powered-up board.

Choices of this model where the specs leave room: a request the state table does not allow stalls
and enters dfuERROR with errSTALLEDPKT (in appIDLE it only stalls); a request while the device is busy
(dfuDNBUSY, dfuMANIFEST before the poll timeout) is such a request; DfuSe mass erase erases the
application area only (the bootloader protects its own pages) and read-unprotect (0x92) is refused
with a stall, since removing readout protection would mass-erase the bootloader.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from typing import NoReturn

from mcuota.boot.board import Board
from mcuota.boot.dapboot import BKP_DR1, CMD_BOOT, PID, VID, DapbootStrategy
from mcuota.boot.strategy import BootAction, BootResult
from mcuota.transport.dfu.memory import AppMemory
from mcuota.transport.dfu.protocol import (
    BCD_DFU_1_1,
    BCD_DFUSE,
    CAN_DOWNLOAD,
    CAN_UPLOAD,
    STATUS_LENGTH,
    WILL_DETACH,
    DeviceGone,
    DeviceInfo,
    DfuDeviceError,
    DfuStall,
    Functional,
    Request,
    State,
    Status,
    StatusReply,
)

# DfuSe commands (first byte of a DNLOAD at block 0), ST AN3156
DFUSE_GET_COMMANDS = 0x00
DFUSE_SET_ADDRESS = 0x21
DFUSE_ERASE = 0x41
DFUSE_READ_UNPROTECT = 0x92
ST_VID, ST_DFU_PID = 0x0483, 0xDF11


class VirtualClock:
    """Time that passes only when someone sleeps: the device's clock and the host's sleep in one."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@dataclass(frozen=True)
class Profile:
    """How the device enumerates in DFU mode."""

    vid: int
    pid: int
    bcd_device: int
    functional: Functional

    @property
    def dfuse(self) -> bool:
        return self.functional.is_dfuse


DAPBOOT = Profile(VID, PID, 0x0100, Functional(CAN_DOWNLOAD | CAN_UPLOAD | WILL_DETACH, 255, 1024,
                                               BCD_DFU_1_1))
"""dapboot as the seed describes it: 1209:DB42, 1024-byte blocks, WillDetach, not manifestation-tolerant."""
DAPBOOT_DFUSE = Profile(ST_VID, ST_DFU_PID, 0x2200, Functional(CAN_DOWNLOAD | CAN_UPLOAD | WILL_DETACH, 255,
                                                               1024, BCD_DFUSE))
"""The same board speaking ST's DfuSe (bcdDFU 0x011A, 0483:DF11), addressed writes and page erases."""


@dataclass
class _Pending:
    """A DNLOAD accepted in dfuDNLOAD-SYNC, carried out at the next GETSTATUS."""

    block: int
    data: bytes


class VirtualDapboot:
    """The device end of a DFU link; it is itself a :class:`ControlTransport`."""

    def __init__(self, board: Board, *, clock: Callable[[], float], profile: Profile = DAPBOOT,
                 interface: int = 0) -> None:
        self.board = board
        self.strategy = DapbootStrategy(board.layout)
        self.profile = profile
        self.interface = interface
        self._clock = clock
        flash, app = board.flash_of("app")
        self.memory = AppMemory(flash, board.layout.partition("bootloader"), app)
        self.powered = True
        self.state = State.DFU_IDLE
        self.status = Status.OK
        self.boot_result: BootResult = BootResult(BootAction.STAY)
        self._busy_until = 0.0
        self._poll_ms = 0
        self._pending: _Pending | None = None
        self._manifest_pending = False
        self._pointer = app.address
        self._erased_to = app.address
        self._detach_deadline = 0.0
        self.resets = 0
        self._reboot(enter_dfu=False)

    # -- descriptors -------------------------------------------------------------------------------
    @property
    def runtime(self) -> bool:
        return self.state in (State.APP_IDLE, State.APP_DETACH)

    @property
    def info(self) -> DeviceInfo:
        if self.runtime:
            functional = Functional(CAN_DOWNLOAD | WILL_DETACH, 255, self.profile.functional.transfer_size,
                                    BCD_DFU_1_1)
            return DeviceInfo(self.profile.vid, self.profile.pid, self.profile.bcd_device, self.interface,
                              functional, True, ("dapboot application",), "virtual")
        name = memory_layout_string(self.memory) if self.profile.dfuse else "dapboot DFU"
        return DeviceInfo(self.profile.vid, self.profile.pid, self.profile.bcd_device, self.interface,
                          self.profile.functional, False, (name,), "virtual")

    @property
    def transfer_size(self) -> int:
        return self.profile.functional.transfer_size

    # -- ControlTransport ---------------------------------------------------------------------------
    def control_out(self, request: int, value: int, index: int, data: bytes) -> None:
        self._enter(request, index)
        if self.runtime:
            if request == Request.DETACH:
                self._detach(value)
                return
            raise DfuStall(f"{_name(request)} is not a run-time request (the device is in appIDLE)")
        if request == Request.DNLOAD:
            self._dnload(value, bytes(data))
        elif request == Request.CLRSTATUS and self.state is State.DFU_ERROR:
            self.state, self.status = State.DFU_IDLE, Status.OK
        elif request == Request.ABORT and self.state in (State.DFU_IDLE, State.DFU_DNLOAD_IDLE,
                                                         State.DFU_UPLOAD_IDLE):
            self.state = State.DFU_IDLE
        else:
            self._stall(f"{_name(request)} is not allowed in {self.state.label}")

    def control_in(self, request: int, value: int, index: int, length: int) -> bytes:
        self._enter(request, index)
        if request == Request.GETSTATUS:
            if length < STATUS_LENGTH:
                self._stall(f"GETSTATUS with wLength {length}")
            return self._get_status().pack()
        if request == Request.GETSTATE:
            if self.state in (State.DFU_DNBUSY, State.DFU_MANIFEST):
                self._stall(f"GETSTATE while the device is busy in {self.state.label}")
            return bytes((self.state,))
        if self.runtime:
            raise DfuStall(f"{_name(request)} is not a run-time request (the device is in appIDLE)")
        if request == Request.UPLOAD and self.state in (State.DFU_IDLE, State.DFU_UPLOAD_IDLE):
            return self._upload(value, length)
        self._stall(f"{_name(request)} is not allowed in {self.state.label}")

    def reset(self) -> None:
        """A USB bus reset: the MCU resets (dapboot reboots on one), from appDETACH into the bootloader."""
        self._require_power()
        self.advance()
        if self.state is State.APP_IDLE:
            return
        self._reboot(enter_dfu=self.state is State.APP_DETACH)

    def advance(self) -> None:
        """Apply what time alone changes: a finished block or manifestation, a detach timeout."""
        now = self._clock()
        if self.state is State.DFU_DNBUSY and now >= self._busy_until:
            self.state = State.DFU_DNLOAD_SYNC
        elif self.state is State.DFU_MANIFEST and now >= self._busy_until:
            if self.profile.functional.manifestation_tolerant:
                self.state = State.DFU_MANIFEST_SYNC
            else:
                self.state = State.DFU_MANIFEST_WAIT_RESET
                if self.profile.functional.will_detach:
                    self._reboot(enter_dfu=False)
        elif self.state is State.APP_DETACH and now >= self._detach_deadline:
            self.state = State.APP_IDLE

    # -- requests -------------------------------------------------------------------------------------
    def _enter(self, request: int, index: int) -> None:
        self._require_power()
        self.advance()
        if self.state is State.DFU_MANIFEST_WAIT_RESET:
            raise DfuStall("the device waits for a USB reset after manifestation")
        if index != self.interface:
            self._stall(f"{_name(request)} to interface {index}; the DFU interface is {self.interface}")
        if self.state in (State.DFU_DNBUSY, State.DFU_MANIFEST):
            self._stall(f"{_name(request)} {1000 * (self._busy_until - self._clock()):.1f} ms before the "
                        f"bwPollTimeout of {self._poll_ms} ms ran out ({self.state.label})")

    def _require_power(self) -> None:
        if not self.powered or not self.board.domain.powered:
            self.powered = False
            raise DeviceGone("the virtual device lost power")

    def _stall(self, why: str) -> NoReturn:
        if not self.runtime:
            self.state, self.status = State.DFU_ERROR, Status.ERR_STALLEDPKT
        raise DfuStall(why)

    def _detach(self, timeout_ms: int) -> None:
        self.state = State.APP_DETACH
        self._detach_deadline = self._clock() + min(timeout_ms, self.info.functional.detach_timeout_ms) / 1000
        if self.profile.functional.will_detach:
            self._reboot(enter_dfu=True)

    def _dnload(self, block: int, data: bytes) -> None:
        functional = self.profile.functional
        if not functional.can_download:
            self._stall("the device cannot download")
        if len(data) > functional.transfer_size:
            self._stall(f"DNLOAD of {len(data)} bytes exceeds wTransferSize {functional.transfer_size}")
        if not data:
            ends_here = self.state is State.DFU_DNLOAD_IDLE and (not self.profile.dfuse or block == 0)
            if not ends_here:
                self._stall(f"zero-length DNLOAD (block {block}) in {self.state.label}")
            self.state, self._manifest_pending = State.DFU_MANIFEST_SYNC, True
            return
        if self.state is State.DFU_IDLE:
            self._pointer = self._erased_to = self.memory.app.address  # a new download starts
        elif self.state is not State.DFU_DNLOAD_IDLE:
            self._stall(f"DNLOAD in {self.state.label}")
        if self.profile.dfuse:
            self._check_dfuse_block(block, data)
        self._pending = _Pending(block, data)
        self.state = State.DFU_DNLOAD_SYNC

    def _check_dfuse_block(self, block: int, data: bytes) -> None:
        """Refuse at once what no GETSTATUS could carry out (the command set and its lengths)."""
        if block == 1:
            self._stall("DfuSe block 1 is reserved")
        if block > 1:
            return
        command = data[0]
        if command == DFUSE_READ_UNPROTECT:
            self._stall("read-unprotect (0x92) is refused: it would mass-erase the bootloader")
        if command == DFUSE_SET_ADDRESS and len(data) == 5:
            return
        if command == DFUSE_ERASE and len(data) in (1, 5):
            return
        self._stall(f"unknown DfuSe command {data.hex()}")

    def _get_status(self) -> StatusReply:
        poll = 0
        if self.state is State.DFU_DNLOAD_SYNC:
            spent = self._run(self._carry_out)
            if spent is not None:
                poll = spent
                self.state = State.DFU_DNBUSY if poll else State.DFU_DNLOAD_IDLE
        elif self.state is State.DFU_MANIFEST_SYNC:
            if self._manifest_pending:
                self._manifest_pending = False
                spent = self._run(self.memory.commit)
                if spent is not None:
                    self.state = State.DFU_MANIFEST
                    poll = max(spent, 1)  # manifestation always takes a poll: the device resets after it
            else:
                self.state = State.DFU_IDLE
        if self.state is State.DFU_ERROR:
            poll = 0
        self._poll_ms = poll
        self._busy_until = self._clock() + poll / 1000
        return StatusReply(self.status, poll, self.state)

    def _run(self, work: Callable[[], None]) -> int | None:
        """Do flash work; its modeled time in whole ms, or None with the device in dfuERROR."""
        before = self.memory.flash.elapsed.typical
        try:
            work()
        except DfuDeviceError as exc:
            self.state, self.status = State.DFU_ERROR, exc.status
            return None
        except BaseException:
            self.powered = False  # a PowerLoss: the board is dark until someone powers it up
            raise
        return math.ceil((self.memory.flash.elapsed.typical - before) * 1000 - 1e-9)

    def _carry_out(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if not self.profile.dfuse:
            self._write_sequential(pending.data)
        elif pending.block == 0:
            self._dfuse_command(pending.data)
        else:
            address = (pending.block - 2) * self.transfer_size + self._pointer
            self.memory.write(address, pending.data)

    def _write_sequential(self, data: bytes) -> None:
        """dapboot: blocks go one after the other (wValue ignored), a page erased as the pointer enters."""
        end = self._pointer + len(data) + -len(data) % self.memory.flash.write_unit
        if end > self.memory.app.end:
            raise DfuDeviceError(Status.ERR_ADDRESS, f"the download passes the end of the application "
                                 f"area at 0x{self.memory.app.end:08x}")
        while self._erased_to < end:
            page = self.memory.page(self._erased_to)
            self.memory.erase_page(page.start)
            self._erased_to = page.end
        self.memory.write(self._pointer, data)
        self._pointer = end

    def _dfuse_command(self, data: bytes) -> None:
        if len(data) == 1:  # mass erase (0x41)
            self.memory.mass_erase()
            return
        (address,) = struct.unpack_from("<I", data, 1)
        if data[0] == DFUSE_SET_ADDRESS:
            self.memory.page(address)  # errADDRESS outside the flash
            self._pointer = address
        else:
            self.memory.erase_page(address)

    def _upload(self, block: int, length: int) -> bytes:
        functional = self.profile.functional
        if not functional.can_upload:
            self._stall("the device cannot upload")
        if length > functional.transfer_size:
            self._stall(f"UPLOAD of {length} bytes exceeds wTransferSize {functional.transfer_size}")
        if self.profile.dfuse:
            if block == 0:
                data = bytes((DFUSE_GET_COMMANDS, DFUSE_SET_ADDRESS, DFUSE_ERASE, DFUSE_READ_UNPROTECT))
            elif block == 1:
                self._stall("DfuSe block 1 is reserved")
            else:
                data = self._read((block - 2) * functional.transfer_size + self._pointer, length)
        else:
            data = self._read(self.memory.app.address + block * functional.transfer_size, length,
                              limit=self.memory.app.end)
        self.state = State.DFU_UPLOAD_IDLE if len(data) == length else State.DFU_IDLE
        return data[:length]

    def _read(self, address: int, length: int, limit: int | None = None) -> bytes:
        if limit is not None:
            length = max(0, min(length, limit - address))
        try:
            return self.memory.read(address, length)
        except DfuDeviceError as exc:
            self.state, self.status = State.DFU_ERROR, exc.status
            raise DfuStall(str(exc)) from None

    # -- resets ---------------------------------------------------------------------------------------
    def _reboot(self, *, enter_dfu: bool) -> None:
        """An MCU reset: dapboot decides between the application and DFU mode."""
        self.board.warm_reset()
        if enter_dfu:
            self.board.state.backup[BKP_DR1] = CMD_BOOT
        self.resets += 1
        self.boot_result = self.strategy.boot(self.board)
        self.status = Status.OK
        self._pending, self._manifest_pending = None, False
        self.memory.held = None
        if self.boot_result.action is BootAction.JUMP:
            self.state = State.APP_IDLE
        else:
            self.state = State.DFU_IDLE


def memory_layout_string(memory: AppMemory) -> str:
    """The DfuSe alternate-setting name: bootloader pages read-only (a), application pages all (g)."""
    groups = []
    for (size, flags), pages in groupby(
            memory.flash.sectors,
            key=lambda s: (s.size, "g" if memory.app.address <= s.start < memory.app.end else "a")):
        count = len(list(pages))
        unit, scaled = ("K", size // 1024) if size % 1024 == 0 else ("B", size)
        groups.append(f"{count:02d}*{scaled:03d}{unit}{flags}")
    return f"@Internal Flash  /0x{memory.flash.base:08X}/{','.join(groups)}"


def _name(request: int) -> str:
    try:
        return Request(request).name
    except ValueError:
        return f"request {request}"

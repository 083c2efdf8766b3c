"""The virtual dapboot's DFU 1.1 / DfuSe state machine, request by request, and its flash side."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import pytest
from dfu_helpers import APP, Rig, payload, rig

from mcuota.boot.dapboot import BKP_DR1
from mcuota.boot.layout import FlashDevice
from mcuota.boot.strategy import BootAction
from mcuota.flash import NorFlash, PowerDomain
from mcuota.flash.nor import BytesLike
from mcuota.transport.dfu import (
    DAPBOOT,
    DAPBOOT_DFUSE,
    DfuStall,
    Functional,
    Profile,
    Request,
    State,
    Status,
    StatusReply,
    VirtualDapboot,
)
from mcuota.transport.dfu.protocol import MANIFESTATION_TOLERANT, parse_functional

IFACE = 0


def status(device: VirtualDapboot) -> StatusReply:
    return StatusReply.unpack(device.control_in(Request.GETSTATUS, 0, IFACE, 6))


def dnload(device: VirtualDapboot, block: int, data: bytes) -> None:
    device.control_out(Request.DNLOAD, block, IFACE, data)


def wait_idle(r: Rig) -> StatusReply:
    reply = status(r.device)
    while reply.state in (State.DFU_DNBUSY, State.DFU_MANIFEST):
        r.clock.sleep(reply.poll_timeout_ms / 1000)
        if reply.state is State.DFU_MANIFEST:
            return reply
        reply = status(r.device)
    return reply


def stalls_into_error(r: Rig, call: Callable[[], object]) -> None:
    with pytest.raises(DfuStall):
        call()
    reply = status(r.device)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_STALLEDPKT)


# --- descriptors -------------------------------------------------------------------------------------

def test_descriptors_of_both_profiles() -> None:
    plain = rig().device.info
    assert (plain.vid, plain.pid, plain.runtime) == (0x1209, 0xDB42, False)
    assert (plain.functional.transfer_size, plain.functional.bcd_dfu) == (1024, 0x0110)
    assert plain.functional.will_detach
    assert not plain.functional.manifestation_tolerant
    dfuse = rig(DAPBOOT_DFUSE).device.info
    assert (dfuse.vid, dfuse.pid, dfuse.functional.bcd_dfu) == (0x0483, 0xDF11, 0x011A)
    assert dfuse.alternates == ("@Internal Flash  /0x08000000/08*001Ka,56*001Kg",)
    assert parse_functional(b"\x05\x24\x00\x01\x02" + plain.functional.pack()) == plain.functional


def test_a_board_with_an_application_shows_the_runtime_interface_and_detach_enters_dfu() -> None:
    r = rig(installed="1.0.0")
    assert r.device.info.runtime
    assert status(r.device).state is State.APP_IDLE
    with pytest.raises(DfuStall):
        dnload(r.device, 0, b"\x00" * 16)
    assert status(r.device).state is State.APP_IDLE, "a run-time stall does not enter dfuERROR"
    r.device.control_out(Request.DETACH, 1000, IFACE, b"")
    assert r.device.state is State.DFU_IDLE
    assert any("BKP_DR1 = 0x4F42" in line for line in r.device.boot_result.log)
    assert r.board.state.backup[BKP_DR1] == 0, "dapboot clears the flag it entered on"


# --- download state machine -----------------------------------------------------------------------

def test_block_goes_sync_busy_idle_with_the_modeled_flash_time_as_poll_timeout() -> None:
    r = rig()
    before = r.flash.elapsed.typical
    dnload(r.device, 0, payload()[:1024])
    assert r.device.state is State.DFU_DNLOAD_SYNC
    reply = status(r.device)
    spent = r.flash.elapsed.typical - before
    assert spent > 0
    assert reply.state is State.DFU_DNBUSY
    assert reply.poll_timeout_ms == math.ceil(spent * 1000)
    r.clock.sleep(reply.poll_timeout_ms / 1000)
    assert status(r.device).state is State.DFU_DNLOAD_IDLE


def test_polling_before_bwpolltimeout_stalls_into_error_until_clrstatus() -> None:
    r = rig()
    dnload(r.device, 0, payload()[:1024])
    assert status(r.device).state is State.DFU_DNBUSY
    with pytest.raises(DfuStall, match="before the bwPollTimeout"):
        status(r.device)
    assert status(r.device).state is State.DFU_ERROR
    stalls_into_error(r, lambda: dnload(r.device, 1, b"\x00" * 2))
    assert r.device.control_in(Request.GETSTATE, 0, IFACE, 1) == bytes((State.DFU_ERROR,))
    r.device.control_out(Request.CLRSTATUS, 0, IFACE, b"")
    assert (status(r.device).state, status(r.device).status) == (State.DFU_IDLE, Status.OK)


@pytest.mark.parametrize("case", ["zero-length in idle", "dnload in upload", "too long", "wrong interface",
                                  "clrstatus without error", "detach in dfu mode", "unknown request"])
def test_requests_the_state_table_does_not_allow_stall(case: str) -> None:
    r = rig(installed=None)
    device = r.device
    calls = {
        "zero-length in idle": lambda: dnload(device, 0, b""),
        "too long": lambda: dnload(device, 0, b"\x00" * 1025),
        "wrong interface": lambda: device.control_out(Request.DNLOAD, 0, 1, b"\x00" * 2),
        "clrstatus without error": lambda: device.control_out(Request.CLRSTATUS, 0, IFACE, b""),
        "detach in dfu mode": lambda: device.control_out(Request.DETACH, 0, IFACE, b""),
        "unknown request": lambda: device.control_out(9, 0, IFACE, b""),
    }
    if case == "dnload in upload":
        device.control_in(Request.UPLOAD, 0, IFACE, 1024)
        assert device.state is State.DFU_UPLOAD_IDLE
        calls[case] = lambda: dnload(device, 0, b"\x00" * 2)
    before = r.board.domain.op_count
    stalls_into_error(r, calls[case])
    assert r.board.domain.op_count == before


def test_download_past_the_application_area_is_err_address() -> None:
    r = rig()
    app = r.board.layout.partition("app")
    block = b"\x00\x50\x00\x20" + b"\x11" * 1020
    for number in range(app.size // 1024):
        dnload(r.device, number, block)
        assert wait_idle(r).state is State.DFU_DNLOAD_IDLE
    dnload(r.device, app.size // 1024, block)
    reply = status(r.device)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_ADDRESS)
    assert r.flash.read(app.end - 4, 4) == b"\x11" * 4, "every block that fitted was written"


def test_manifestation_of_an_invalid_application_is_err_firmware_and_dapboot_stays() -> None:
    r = rig()
    dnload(r.device, 0, b"\x00\x00\x00\x10" + b"\x00" * 60)  # SP 0x10000000: not SRAM
    assert wait_idle(r).state is State.DFU_DNLOAD_IDLE
    dnload(r.device, 1, b"")
    reply = status(r.device)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_FIRMWARE)
    r.device.reset()
    assert r.device.boot_result.action is BootAction.STAY
    assert r.device.boot_result.recoverable


def test_abort_mid_download_returns_to_idle_and_the_half_image_is_never_started() -> None:
    r = rig(installed="1.0.0")
    r.device.control_out(Request.DETACH, 1000, IFACE, b"")
    for number in range(3):
        dnload(r.device, number, payload()[number * 1024:(number + 1) * 1024])
        wait_idle(r)
    r.device.control_out(Request.ABORT, 0, IFACE, b"")
    assert status(r.device).state is State.DFU_IDLE
    r.device.reset()
    assert r.device.boot_result.action is BootAction.STAY, "the SP's upper half-word was held back"
    assert r.device.state is State.DFU_IDLE


def test_a_manifestation_tolerant_device_returns_to_idle() -> None:
    functional = DAPBOOT.functional
    tolerant = Profile(DAPBOOT.vid, DAPBOOT.pid, DAPBOOT.bcd_device,
                       Functional(functional.attributes | MANIFESTATION_TOLERANT, 255, 1024))
    r = rig(tolerant)
    data = payload()
    for number in range(-(-len(data) // 1024)):
        dnload(r.device, number, data[number * 1024:(number + 1) * 1024])
        wait_idle(r)
    dnload(r.device, 99, b"")
    reply = status(r.device)
    assert reply.state is State.DFU_MANIFEST
    r.clock.sleep(reply.poll_timeout_ms / 1000)
    assert status(r.device).state is State.DFU_IDLE
    r.device.reset()
    assert r.device.boot_result.action is BootAction.JUMP


class _WeakFlash(NorFlash):
    """One cell at the application's 100th byte that will not take its charge."""

    def __init__(self, device: FlashDevice, domain: PowerDomain) -> None:
        super().__init__(device.flash_part(), domain, name=device.name)

    def program(self, address: int, data: BytesLike) -> None:
        weak = APP + 100
        if address <= weak < address + len(data):
            data = bytearray(data)
            data[weak - address] |= 0x01
        super().program(address, data)


def test_a_read_back_mismatch_is_err_verify() -> None:
    r = rig(flash_factory=_WeakFlash)
    dnload(r.device, 0, b"\x00" * 1024)
    reply = status(r.device)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_VERIFY)


# --- DfuSe -------------------------------------------------------------------------------------------

def dfuse_command(r: Rig, *fields: int) -> StatusReply:
    command = bytes((fields[0],)) + b"".join(struct.pack("<I", f) for f in fields[1:])
    dnload(r.device, 0, command)
    return wait_idle(r)


def test_dfuse_set_address_outside_the_flash_is_err_address() -> None:
    r = rig(DAPBOOT_DFUSE)
    reply = dfuse_command(r, 0x21, 0x08010000)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_ADDRESS)


def test_dfuse_writing_or_erasing_the_bootloader_is_err_write_and_changes_nothing() -> None:
    r = rig(DAPBOOT_DFUSE)
    before = r.board.domain.op_count
    reply = dfuse_command(r, 0x41, 0x08000400)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_WRITE)
    r.device.control_out(Request.CLRSTATUS, 0, IFACE, b"")
    assert dfuse_command(r, 0x21, 0x08000000).state is State.DFU_DNLOAD_IDLE
    dnload(r.device, 2, b"\x00" * 64)
    reply = status(r.device)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_WRITE)
    assert r.board.domain.op_count == before


def test_dfuse_write_without_erase_is_err_prog_and_mass_erase_fixes_it() -> None:
    r = rig(DAPBOOT_DFUSE, installed="1.0.0")
    r.device.control_out(Request.DETACH, 1000, IFACE, b"")
    assert dfuse_command(r, 0x21, APP).state is State.DFU_DNLOAD_IDLE
    dnload(r.device, 2, payload()[:1024])
    reply = status(r.device)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_PROG)
    r.device.control_out(Request.CLRSTATUS, 0, IFACE, b"")
    assert dfuse_command(r, 0x41).state is State.DFU_DNLOAD_IDLE
    app = r.board.layout.partition("app")
    assert r.flash.is_erased(app.address, app.size)
    assert dfuse_command(r, 0x21, APP).state is State.DFU_DNLOAD_IDLE
    dnload(r.device, 3, payload()[1024:2048])  # block 3: pointer + 1 * wTransferSize
    assert wait_idle(r).state is State.DFU_DNLOAD_IDLE
    assert r.flash.read(APP + 1024, 1024) == payload()[1024:2048]


def test_dfuse_leave_with_an_erased_vector_table_is_err_notdone() -> None:
    r = rig(DAPBOOT_DFUSE)
    assert dfuse_command(r, 0x41, APP).state is State.DFU_DNLOAD_IDLE
    assert dfuse_command(r, 0x21, APP).state is State.DFU_DNLOAD_IDLE
    dnload(r.device, 0, b"")
    reply = status(r.device)
    assert (reply.state, reply.status) == (State.DFU_ERROR, Status.ERR_NOTDONE)


@pytest.mark.parametrize("command", [b"\x92", b"\x33\x00\x20\x00\x08", b"\x21\x00"])
def test_dfuse_read_unprotect_and_malformed_commands_are_refused(command: bytes) -> None:
    r = rig(DAPBOOT_DFUSE)
    before = r.board.domain.op_count
    stalls_into_error(r, lambda: dnload(r.device, 0, command))
    assert r.board.domain.op_count == before


def test_dfuse_block_1_is_reserved_and_upload_block_0_lists_the_commands() -> None:
    r = rig(DAPBOOT_DFUSE)
    assert r.device.control_in(Request.UPLOAD, 0, IFACE, 1024) == b"\x00\x21\x41\x92"
    assert r.device.state is State.DFU_IDLE, "a short frame ends the upload"
    stalls_into_error(r, lambda: dnload(r.device, 1, b"\x00" * 4))

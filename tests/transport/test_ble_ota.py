"""The seed-002 BLE OTA protocol: both machines on the wire, and a simulated MCUboot swap-move F407
taking an image over the simulated link, through refusals, aborts, dropped links and power cuts."""

from __future__ import annotations

import math
import struct
import zlib

import pytest

from mcuota.device.ble_peripheral import BleOtaService
from mcuota.device.config import DeviceConfig
from mcuota.device.device import SimDevice
from mcuota.errors import UsageError
from mcuota.flash import FaultPlan, PowerLoss
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.transport.ble_link import BleLink, LinkLost, send_image_ble
from mcuota.transport.ble_ota import (
    BleCentral,
    BleOtaError,
    BlePeripheral,
    Characteristic,
    Command,
    DataReceived,
    DownloadStarted,
    Failed,
    Fault,
    Notify,
    Status,
    VerifyRequested,
    Write,
    decode_command,
    encode_command,
)

LAYOUT = "mcuboot-swap-move-f407"
OK, BAD = b"\x00", b"\x01"


def _device() -> tuple[SimDevice, bytes, bytes]:
    """A device running 1.0.0, the signed 2.0.0 and 1.0.0 images for it."""
    device = SimDevice(DeviceConfig("BLE1", LAYOUT, "B"))
    old = device.make_release(sample_path("mcuboot-f407", "1.0.0", "bin").read_bytes(), ImageVersion(1, 0, 0))
    new = device.make_release(sample_path("mcuboot-f407", "2.0.0", "bin").read_bytes(), ImageVersion(2, 0, 0))
    assert device.factory_install(old).running == "1.0.0"
    return device, new.data, old.data


def _service(device: SimDevice) -> BleOtaService:
    """The device's service on a link that settled on an MTU of 247 (244-byte data packets)."""
    service = BleOtaService(device)
    service.mtu_changed(247)
    return service


def _control(service: BleOtaService, command: Command, value: int | None = None) -> list[bytes]:
    return service.on_write(Characteristic.CONTROL_POINT, encode_command(command, value))


def _data(service: BleOtaService, data: bytes, size: int = 244) -> list[bytes]:
    out: list[bytes] = []
    for start in range(0, len(data), size):
        out += service.on_write(Characteristic.DATA, data[start:start + size])
    return out


def _faults(service: BleOtaService) -> list[Fault]:
    return [failed.error.fault for failed in service.failures]


# --- wire format -------------------------------------------------------------------------------------

def test_commands_and_status_use_the_seed_values() -> None:
    assert encode_command(Command.PREPARE_DOWNLOAD) == b"\x01"
    assert encode_command(Command.DOWNLOAD, 0x12345) == b"\x02\x45\x23\x01\x00"
    assert encode_command(Command.VERIFY, 0xDEADBEEF) == b"\x03\xef\xbe\xad\xde"
    assert encode_command(Command.ABORT) == b"\x04"
    assert decode_command(b"\x02\x10\x00\x00\x00") == (Command.DOWNLOAD, 16)
    assert (Status.OK, Status.BAD) == (0, 1)
    assert Characteristic.DATA.value == "a2e86c7a-d961-4091-b74f-2409e72efe26"


@pytest.mark.parametrize("raw", [b"", b"\x09", b"\x02\x10\x00", b"\x01\x00", b"\x03" + b"\x00" * 5])
def test_a_malformed_control_write_is_bad_command(raw: bytes) -> None:
    peripheral = BlePeripheral(room=1000)
    events = peripheral.control_write(raw)
    assert events[0] == Notify(Status.BAD)
    assert isinstance(events[1], Failed)
    assert events[1].error.fault is Fault.BAD_COMMAND


@pytest.mark.parametrize("mtu", [23, 185, 247, 517])
def test_central_sends_packets_of_mtu_minus_3_then_verify_with_the_crc(mtu: int) -> None:
    image = bytes(range(256)) * 7 + b"tail"
    central = BleCentral(image, mtu)
    assert central.next_write() == Write(Characteristic.CONTROL_POINT, b"\x01", True)
    assert central.next_write() is None, "a command waits for its notification"
    central.notification(OK)
    download = Write(Characteristic.CONTROL_POINT, struct.pack("<BI", 2, len(image)), True)
    assert central.next_write() == download
    central.notification(OK)
    writes = list(central.packets())
    data, verify = writes[:-1], writes[-1]
    assert all(not w.with_response and w.characteristic is Characteristic.DATA for w in data)
    assert [len(w.value) for w in data[:-1]] == [mtu - 3] * (len(data) - 1)
    assert len(data) == math.ceil(len(image) / (mtu - 3))
    assert b"".join(w.value for w in data) == image
    assert verify.value == struct.pack("<BI", 3, zlib.crc32(image))
    assert central.notification(OK)[-1].total == len(image)


def test_mtu_exchange_takes_the_smaller_and_the_link_refuses_longer_writes() -> None:
    device, _, _ = _device()
    link = BleLink(BleOtaService(device, max_mtu=185), central_mtu=247)
    assert link.exchange_mtu() == 185
    with pytest.raises(UsageError, match="ATT MTU of 185"):
        link.write(Write(Characteristic.DATA, b"\x00" * 183, False))


# --- a whole transfer -------------------------------------------------------------------------------

@pytest.mark.parametrize("mtu", [23, 247])
def test_transfer_installs_and_the_core_prints_2_0_0(mtu: int) -> None:
    device, image, _ = _device()
    service = BleOtaService(device)
    link = BleLink(service, central_mtu=mtu)
    seen: list[tuple[int, int | None]] = []
    done = send_image_ble(link, image, lambda sent, total: seen.append((sent, total)))
    assert (done.total, done.crc) == (len(image), zlib.crc32(image))
    assert link.writes == 3 + math.ceil(len(image) / (mtu - 3))
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    assert seen[-1] == (len(image), len(image))
    assert not link.connected
    assert service.failures == []
    assert service.boot is not None
    assert service.boot.running == "2.0.0"
    assert device.running == "2.0.0"
    assert link.elapsed > 0


# --- errors, each a BAD notification and a named fault ------------------------------------------------

def test_data_before_download_is_refused_without_touching_flash() -> None:
    device, image, _ = _device()
    service = _service(device)
    ops = device.board.domain.op_count
    assert _data(service, image[:244]) == [BAD]
    assert _control(service, Command.PREPARE_DOWNLOAD) == [OK]
    assert _data(service, image[:244]) == [BAD]
    assert _faults(service) == [Fault.DATA_BEFORE_DOWNLOAD] * 2
    assert device.board.domain.op_count == ops


def test_more_bytes_than_announced_is_overrun_and_the_old_firmware_stays() -> None:
    device, image, _ = _device()
    service = _service(device)
    assert _control(service, Command.PREPARE_DOWNLOAD) == [OK]
    assert _control(service, Command.DOWNLOAD, 8192) == [OK]
    assert _data(service, image[:8193]) == [BAD]
    assert _faults(service) == [Fault.OVERRUN]
    assert device.reset().running == "1.0.0"


def test_crc_mismatch_is_refused_and_the_next_transfer_starts_from_zero() -> None:
    device, image, _ = _device()
    service = _service(device)
    assert _control(service, Command.PREPARE_DOWNLOAD) == [OK]
    assert _control(service, Command.DOWNLOAD, len(image)) == [OK]
    assert _data(service, image) == []
    assert _control(service, Command.VERIFY, zlib.crc32(image) ^ 1) == [BAD]
    assert _faults(service) == [Fault.CRC_MISMATCH]
    assert device.storage.read_journal().done, "the staged bytes are forgotten"
    service.on_disconnect()
    assert service.boot is None
    assert device.reset().running == "1.0.0"
    assert send_image_ble(BleLink(BleOtaService(device)), image).total == len(image)
    assert device.running == "2.0.0"


def test_an_image_larger_than_the_slot_is_refused_at_download() -> None:
    device, _, _ = _device()
    service = BleOtaService(device)
    ops = device.board.domain.op_count
    with pytest.raises(BleOtaError, match="BAD to DOWNLOAD") as caught:
        send_image_ble(BleLink(service), b"\x3d" * (device.storage.room + 1))
    assert caught.value.fault is Fault.TOO_LARGE
    assert _faults(service) == [Fault.TOO_LARGE]
    assert device.board.domain.op_count == ops
    assert device.running == "1.0.0"


def test_verify_before_every_byte_arrived_is_incomplete() -> None:
    device, image, _ = _device()
    service = _service(device)
    _control(service, Command.PREPARE_DOWNLOAD)
    _control(service, Command.DOWNLOAD, len(image))
    _data(service, image[:-1])
    assert _control(service, Command.VERIFY, zlib.crc32(image)) == [BAD]
    assert _faults(service) == [Fault.INCOMPLETE]


@pytest.mark.parametrize("which", ["older", "not an image"])
def test_the_devices_own_checks_refuse_at_verify_or_on_the_first_step(which: str) -> None:
    device, _, old = _device()
    image = old if which == "older" else b"\x00" * 9000
    service = BleOtaService(device)
    with pytest.raises(BleOtaError) as caught:
        send_image_ble(BleLink(service), image)
    assert caught.value.fault is Fault.REFUSED
    if which == "older":
        assert "BAD to VERIFY" in str(caught.value)
        assert "INVALID_VERSION" in service.failures[0].error.detail
    else:
        assert "gave up after" in str(caught.value)
        assert "WRONG_FORMAT" in service.failures[0].error.detail
    assert service.boot is None
    assert device.reset().running == "1.0.0"


def test_central_abort_mid_transfer_then_a_new_transfer_installs() -> None:
    device, image, _ = _device()
    service = BleOtaService(device)
    link = BleLink(service)
    central = BleCentral(image, link.exchange_mtu())
    for _ in range(2):                      # PREPARE_DOWNLOAD, DOWNLOAD: each answered OK
        link.write(central.next_write())  # type: ignore[arg-type]
        assert central.notification(link.notifications()[0]) is not None
    for _ in range(10):
        write = central.next_write()
        assert write is not None
        assert not write.with_response
        link.write(write)
    assert link.notifications() == []
    link.write(central.abort())
    with pytest.raises(BleOtaError) as caught:
        central.notification(link.notifications()[0])
    assert caught.value.fault is Fault.ABORTED
    assert _faults(service) == [Fault.ABORTED]
    assert _data(service, image[:20]) == [BAD], "after ABORT the peripheral takes no data"
    send_image_ble(link, image)
    assert device.running == "2.0.0"


def test_peripheral_abort_reaches_the_central_as_an_unsolicited_bad() -> None:
    peripheral = BlePeripheral(room=4096, mtu=247)
    central = BleCentral(b"\x55" * 3000, 247)
    for _ in range(2):
        for event in peripheral.control_write(central.next_write().value):  # type: ignore[union-attr]
            if isinstance(event, Notify):
                central.notification(event.value)
    assert isinstance(peripheral.data_write(central.next_write().value)[0], DataReceived)  # type: ignore[union-attr]
    events = peripheral.refuse(Fault.REFUSED, "the user pressed cancel")
    assert events[0] == Notify(Status.BAD)
    with pytest.raises(BleOtaError, match="gave up after 244 of 3000"):
        central.notification(events[0].value)


def test_pure_peripheral_sequence_and_accept() -> None:
    peripheral = BlePeripheral(room=100, mtu=23)
    assert peripheral.control_write(b"\x01") == [Notify(Status.OK)]
    assert peripheral.control_write(encode_command(Command.DOWNLOAD, 30)) == [Notify(Status.OK),
                                                                                DownloadStarted(30)]
    assert peripheral.data_write(b"a" * 21)[0] == Notify(Status.BAD), "over MTU - 3"
    peripheral.control_write(b"\x01")
    peripheral.control_write(encode_command(Command.DOWNLOAD, 30))
    assert peripheral.data_write(b"a" * 20) == [DataReceived(0, b"a" * 20)]
    assert peripheral.data_write(b"b" * 10) == [DataReceived(20, b"b" * 10)]
    crc = zlib.crc32(b"a" * 20 + b"b" * 10)
    assert peripheral.control_write(encode_command(Command.VERIFY, crc)) == [VerifyRequested(30, crc)]
    assert peripheral.accept()[0] == Notify(Status.OK)


# --- dropped links and power cuts -------------------------------------------------------------------

def test_a_dropped_link_leaves_1_0_0_and_the_next_transfer_resumes_the_flash_work() -> None:
    device, image, _ = _device()
    start = device.board.snapshot()
    before = device.board.domain.op_count
    send_image_ble(BleLink(BleOtaService(device)), image)
    clean_ops = device.board.domain.op_count - before
    device.board.restore(start)
    device.power_on()

    service = BleOtaService(device)
    link = BleLink(service)
    link.drop_after(15)
    with pytest.raises(BleOtaError) as caught:
        send_image_ble(link, image)
    assert caught.value.fault is Fault.DISCONNECTED
    assert _faults(service) == [Fault.DISCONNECTED]
    with pytest.raises(LinkLost):
        link.notifications()
    assert device.reset().running == "1.0.0"
    before = device.board.domain.op_count
    send_image_ble(BleLink(BleOtaService(device)), image)
    assert device.running == "2.0.0"
    assert device.board.domain.op_count - before < clean_ops, "the intact steps are not programmed again"


@pytest.mark.parametrize("torn", [False, True])
def test_a_power_cut_at_every_flash_operation_of_a_ble_update_never_bricks(torn: bool) -> None:
    """Sweep: count the erases and programs of a clean transfer and install, then cut (or tear) each
    one in turn; after power returns the device runs 1.0.0 or 2.0.0, and one more transfer (if still
    needed) ends on 2.0.0."""
    device, image, _ = _device()
    start = device.board.snapshot()
    device.arm(FaultPlan.cut_before(10**6))
    send_image_ble(BleLink(BleOtaService(device)), image)
    total = device.board.domain.ops_since_arm
    assert device.running == "2.0.0"
    assert total > 20
    for op in range(1, total + 1):
        device.board.restore(start)
        device.arm(FaultPlan.torn_at(op, seed=op) if torn else FaultPlan.cut_before(op))
        with pytest.raises(PowerLoss):
            send_image_ble(BleLink(BleOtaService(device)), image)
        device.disarm()
        report = device.power_on()
        assert report.running in ("1.0.0", "2.0.0"), (op, report.boot.reason)
        if report.running == "1.0.0":
            send_image_ble(BleLink(BleOtaService(device)), image)
        assert device.running == "2.0.0", op

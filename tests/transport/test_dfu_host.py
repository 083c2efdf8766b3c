"""The DFU host against the virtual dapboot: files from our tools and the field's, refusals before any
request, poll timeouts, recovery, and a power cut at every flash operation of a download."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dfu_helpers import APP, Rig, payload, rig, runs_version, settle

from conftest import require_tool
from mcuota.boot.strategy import BootAction
from mcuota.errors import FormatError, UsageError
from mcuota.flash import FaultPlan, PowerLoss
from mcuota.image.dfu import add_dfu_suffix
from mcuota.image.dfuse import DfuseElement, DfuseTarget, build_dfuse
from mcuota.transport.dfu import (
    DAPBOOT_DFUSE,
    DfuDeviceError,
    DfuHost,
    DfuStall,
    State,
    Status,
    VirtualDapboot,
)


def test_raw_bin_download_boots_the_new_application() -> None:
    r = rig(installed="1.0.0")
    r.host.detach()
    r.reconnect()
    seen: list[tuple[int, int]] = []
    report = r.host.download_file(payload(), lambda done, total: seen.append((done, total)))
    assert report.bytes == len(payload())
    assert report.manifested
    assert seen[-1] == (len(payload()), len(payload()))
    assert runs_version(r) == "2.0.0"


def test_the_host_sleeps_exactly_the_poll_timeouts_the_device_asked_for() -> None:
    r = rig()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        r.clock.sleep(seconds)

    host = DfuHost(r.device, r.device.info, sleep=sleep)
    report = host.download(payload())
    assert sum(slept) == pytest.approx(report.polled_s)
    assert report.polled_s >= r.flash.elapsed.typical, "never shorter than the modeled flash time"


def test_a_host_that_does_not_wait_gets_stalled() -> None:
    r = rig()
    impatient = DfuHost(r.device, r.device.info, sleep=lambda _seconds: None)
    with pytest.raises(DfuStall, match="bwPollTimeout"):
        impatient.download(payload())
    assert r.device.state is State.DFU_ERROR


def test_clrstatus_recovery_then_a_complete_download() -> None:
    r = rig()
    with pytest.raises(DfuStall):
        r.device.control_out(1, 0, 0, b"")  # a zero-length DNLOAD in dfuIDLE
    assert r.device.state is State.DFU_ERROR
    r.host.download(payload())
    assert runs_version(r) == "2.0.0"


def test_errors_reported_by_the_device_name_the_status() -> None:
    r = rig()
    garbage = b"\x00\x00\x00\x10" + b"\x00" * 60
    with pytest.raises(DfuDeviceError, match="errFIRMWARE") as caught:
        r.host.download(garbage)
    assert caught.value.status is Status.ERR_FIRMWARE
    too_big = b"\x00\x50\x00\x20" + b"\x00" * (57 * 1024)
    with pytest.raises(DfuDeviceError, match="errADDRESS"):
        r.host.download(too_big)  # the host recovers from the previous error by itself


@pytest.mark.parametrize(("vid", "pid"), [(0x0483, 0xDF11), (0x1209, 0x0001), (0xFFFF, 0x0001)])
def test_a_dfu_file_for_another_device_is_refused_before_any_request(vid: int, pid: int) -> None:
    r = rig()
    link = _Recording(r.device)
    with pytest.raises(UsageError, match="is for device"):
        DfuHost(link, r.device.info, sleep=r.clock.sleep).download_file(add_dfu_suffix(payload(), vid=vid,
                                                                                        pid=pid))
    assert link.sent == []
    assert r.board.domain.op_count == 0


def test_wildcard_ids_are_accepted_and_a_damaged_suffix_is_refused() -> None:
    r = rig()
    damaged = bytearray(add_dfu_suffix(payload(), vid=0x1209, pid=0xDB42))
    damaged[50] ^= 1
    with pytest.raises(FormatError, match="CRC"):
        r.host.download_file(bytes(damaged))
    assert r.board.domain.op_count == 0
    r.host.download_file(add_dfu_suffix(payload()))  # 0xFFFF:0xFFFF: any device
    assert runs_version(r) == "2.0.0"


def test_a_dfuse_file_is_refused_by_a_plain_dfu_device_and_taken_by_a_dfuse_one() -> None:
    target = DfuseTarget(0, (DfuseElement(APP, payload()),), "Internal Flash")
    dfuse_file = build_dfuse([target], vid=0x0483, pid=0xDF11)
    plain = rig()
    with pytest.raises(UsageError, match="plain DFU"):
        plain.host.download_file(build_dfuse([target], vid=0xFFFF, pid=0xFFFF))
    r = rig(DAPBOOT_DFUSE, installed="1.0.0")
    r.host.detach()
    r.reconnect()
    report = r.host.download_file(dfuse_file)
    assert report.erased_pages == -(-len(payload()) // 1024)
    assert runs_version(r) == "2.0.0"


def test_the_host_refuses_a_dfuse_element_over_the_bootloader_before_erasing() -> None:
    r = rig(DAPBOOT_DFUSE)
    with pytest.raises(UsageError, match="not writable"):
        r.host.dfuse_download((DfuseElement(0x08001C00, payload()),))
    assert r.board.domain.op_count == 0


def test_upload_reads_back_what_was_downloaded() -> None:
    for profile in (None, DAPBOOT_DFUSE):
        r = rig() if profile is None else rig(profile)
        r.host.download_file(payload(), address=None if profile is None else APP)
        settle(r)
        r.to_dfu_mode()
        address = None if profile is None else APP
        assert r.host.upload(len(payload()), address=address) == payload()
        whole = r.host.upload(address=address)
        assert len(whole) == r.board.layout.partition("app").size
        assert r.device.state is State.DFU_IDLE


# --- interop: files from the field's tools ------------------------------------------------------------

@pytest.mark.interop
def test_a_file_from_dfu_suffix_downloads_and_boots(tmp_path: Path) -> None:
    tool = require_tool("dfu-suffix")
    path = tmp_path / "app.dfu"
    path.write_bytes(payload())
    proc = subprocess.run([tool, "-v", "1209", "-p", "db42", "-a", str(path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    r = rig()
    r.host.download_file(path.read_bytes())
    assert runs_version(r) == "2.0.0"
    wrong = tmp_path / "other.dfu"
    wrong.write_bytes(payload())
    subprocess.run([tool, "-v", "0483", "-p", "df11", "-a", str(wrong)], capture_output=True, check=True)
    with pytest.raises(UsageError, match="0483:df11"):
        rig().host.download_file(wrong.read_bytes())


@pytest.mark.interop
def test_a_file_from_dfuse_pack_downloads_and_boots(tmp_path: Path) -> None:
    tool = require_tool("dfuse-pack")
    source = tmp_path / "app.bin"
    source.write_bytes(payload())
    out = tmp_path / "app.dfu"
    proc = subprocess.run([tool, "-b", f"0x{APP:08x}:{source}", "-D", "0x0483:0xdf11", str(out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = rig(DAPBOOT_DFUSE)
    r.host.download_file(out.read_bytes())
    assert runs_version(r) == "2.0.0"


# --- power cuts ----------------------------------------------------------------------------------------

class _Recording:
    """A ControlTransport in front of the device that notes every request it passes on."""

    def __init__(self, device: VirtualDapboot) -> None:
        self.device = device
        self.sent: list[int] = []

    def control_out(self, request: int, value: int, index: int, data: bytes) -> None:
        self.sent.append(request)
        self.device.control_out(request, value, index, data)

    def control_in(self, request: int, value: int, index: int, length: int) -> bytes:
        self.sent.append(request)
        return self.device.control_in(request, value, index, length)

    def reset(self) -> None:
        self.device.reset()


def _download(r: Rig, dfuse: bool) -> None:
    if dfuse:
        r.host.download_file(payload(), address=APP)
    else:
        r.host.download_file(payload())


@pytest.mark.parametrize("dfuse", [False, True], ids=["dfu", "dfuse"])
@pytest.mark.parametrize("torn", [False, True], ids=["cut", "torn"])
def test_a_power_cut_at_every_flash_operation_never_bricks(dfuse: bool, torn: bool) -> None:
    profile = DAPBOOT_DFUSE if dfuse else None
    r = rig(profile, installed="1.0.0") if profile else rig(installed="1.0.0")
    start = r.board.snapshot()
    r.to_dfu_mode()
    r.board.domain.arm(FaultPlan())
    _download(r, dfuse)
    total = r.board.domain.ops_since_arm
    assert total > 2 * len(payload()) // 1024 - 1, "an erase and a program per page at least"
    old, new = payload("1.0.0"), payload("2.0.0")
    outcomes = {"old": 0, "dfu": 0, "new": 0}
    for op in range(1, total + 1):
        r.board.restore(start)
        r.power_up()
        plan = FaultPlan.torn_at(op, seed=op) if torn else FaultPlan.cut_before(op)
        r.to_dfu_mode()
        r.board.domain.arm(plan)
        with pytest.raises(PowerLoss):
            _download(r, dfuse)
        r.board.domain.disarm()
        r.power_up()
        result = r.device.boot_result
        if result.action is BootAction.JUMP:
            running = r.flash.read(APP, len(new))
            assert running == new or running[:len(old)] == old, f"op {op}: a partial image was started"
            outcomes["new" if running == new else "old"] += 1
        else:
            assert result.recoverable, f"op {op}: {result.reason}"
            assert r.device.state is State.DFU_IDLE
            outcomes["dfu"] += 1
        r.to_dfu_mode()
        _download(r, dfuse)  # the user runs the download again: it always completes
        settle(r)
        assert r.device.boot_result.action is BootAction.JUMP
        assert r.flash.read(APP, len(new)) == new
    assert outcomes["new"] <= int(torn), "only a torn commit (the last op) may already run the new image"
    assert outcomes["dfu"] >= total - 1
    if not torn:
        assert outcomes["old"] == 1, "only a cut before the first erase leaves the old application"
    assert runs_version(r) == "2.0.0"

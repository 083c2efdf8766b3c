"""A simulated device taking firmware over its UART with YMODEM (in memory here; over a pty with lrzsz in
tests/transport): installed through its bootloader, refused cleanly, and never bricked by a power cut at
any flash operation of the transfer."""

from __future__ import annotations

import pytest

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.boot.strategy import BootAction
from mcuota.device.config import DeviceConfig
from mcuota.device.device import SimDevice
from mcuota.device.serial_install import SerialInstaller
from mcuota.flash import FaultPlan, PowerLoss, count_ops
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.transport.ymodem import YmodemReceiver, YmodemSender

V1, V2 = ImageVersion.parse("1.0.0"), ImageVersion.parse("2.0.0")
CASES = {"mcuboot-swap-move-f407": "mcuboot-f407", "stm32-header-f103": "stm32-header-f103"}


def device_at_1_0_0(layout: str) -> SimDevice:
    device = SimDevice(DeviceConfig("UART1", layout, "B"))
    target = CASES[layout]
    device.factory_install(device.make_release(sample_path(target, "1.0.0", "bin").read_bytes(), V1))
    return device


def image(device: SimDevice, version: ImageVersion = V2) -> bytes:
    return device.make_release(sample_path(CASES[device.layout.name], str(version), "bin").read_bytes(),
                               version).data


def transfer(installer: SerialInstaller, data: bytes) -> None:
    """A null-modem cable between a YMODEM sender and the device's receiver, quiet lines firing timers."""
    sender = YmodemSender("fw.bin", data)
    receiver = installer.receiver()
    to_sender = receiver.start().outgoing
    to_receiver = b""
    for _ in range(100_000):
        if sender.finished and receiver.finished:
            return
        if to_sender:
            step, to_sender = sender.feed(to_sender), b""
            to_receiver += step.outgoing
        elif to_receiver:
            step, to_receiver = receiver.feed(to_receiver), b""
            for event in step.events:
                installer.on_event(event)
            to_sender += step.outgoing
        elif not sender.finished:
            to_receiver += sender.timeout().outgoing
        else:
            to_sender += receiver.timeout().outgoing
    raise AssertionError("the transfer did not end")


@pytest.mark.parametrize("layout", CASES)
def test_an_image_sent_over_the_uart_is_installed(layout: str) -> None:
    device = device_at_1_0_0(layout)
    installer = SerialInstaller(device)
    transfer(installer, image(device))
    report = installer.finish()
    assert report.running == "2.0.0"
    assert device.power_on().running == "2.0.0"


def test_an_older_image_is_refused_and_nothing_changes() -> None:
    device = device_at_1_0_0("stm32-header-f103")
    first = SerialInstaller(device)
    transfer(first, image(device))
    assert first.finish().running == "2.0.0"
    installer = SerialInstaller(device)
    transfer(installer, image(device, V1))
    with pytest.raises(AgentError) as refused:
        installer.finish()
    assert refused.value.code is AgentCode.INVALID_VERSION
    assert device.power_on().running == "2.0.0"


def test_a_file_that_is_not_an_image_is_refused_before_flash_is_touched() -> None:
    device = device_at_1_0_0("mcuboot-swap-move-f407")
    ops = device.board.domain.op_count
    with pytest.raises(AgentError) as refused:
        transfer(SerialInstaller(device), b"\x55" * 9000)
    assert refused.value.code is AgentCode.WRONG_FORMAT
    assert device.board.domain.op_count == ops
    assert device.power_on().running == "1.0.0"


def test_a_file_too_large_for_the_slot_is_cancelled_at_block_0() -> None:
    device = device_at_1_0_0("stm32-header-f103")
    receiver = YmodemReceiver(device.storage.room)
    sender = YmodemSender("big.bin", b"\0" * (device.storage.room + 1))
    step = sender.feed(receiver.start().outgoing)
    answer = receiver.feed(step.outgoing)
    assert receiver.finished
    assert b"\x18\x18" in answer.outgoing
    assert device.power_on().running == "1.0.0"


@pytest.mark.parametrize("layout", CASES)
def test_a_power_cut_at_any_flash_operation_of_a_serial_install_never_bricks(layout: str) -> None:
    clean = device_at_1_0_0(layout)
    data = image(clean)
    installer = SerialInstaller(clean)
    total = count_ops(clean.board.domain, lambda: (transfer(installer, data), installer.finish()))
    assert total > 5
    for op in range(1, total + 1):
        device = device_at_1_0_0(layout)
        device.arm(FaultPlan.torn_at(op, seed=op))
        installer = SerialInstaller(device)
        try:
            transfer(installer, data)
            installer.finish()
        except PowerLoss:
            pass
        device.disarm()
        report = device.survive(device.power_on)
        assert report.boot.action is BootAction.JUMP, f"{layout}: bricked by a cut at op {op} of {total}"
        assert report.running in ("1.0.0", "2.0.0"), f"op {op}"
        if report.running == "1.0.0":       # sent again, it installs (what is intact is not rewritten)
            again = SerialInstaller(device)
            transfer(again, data)
            assert again.finish().running == "2.0.0", f"op {op}"

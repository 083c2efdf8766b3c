"""A simulated device's BLE OTA service (seed 002's control point and data characteristics): the
:class:`~mcuota.transport.ble_ota.BlePeripheral` machine in front of the journaled staging.

Data packets go to flash as they arrive, through the agent's :class:`~mcuota.agent.storage.Storage`,
so a power cut mid-transfer leaves the running firmware alone and the next transfer of the same image
skips reprogramming what is intact. A VERIFY whose CRC-32 matches is followed by the layout's own checks
(MCUboot hash and signature, the seed-001 header CRC) and the request to the bootloader; the device
answers OK and resets into the new image when the central disconnects (the seed agent's
``reset_after_complete``). The radio is simulated (:mod:`mcuota.transport.ble_link`).
"""

from __future__ import annotations

from mcuota.agent.errors import AgentError
from mcuota.device.device import BootReport, SimDevice
from mcuota.device.stream_install import StreamInstaller
from mcuota.transport.ble_ota import (
    MAX_MTU,
    Accepted,
    BlePeripheral,
    Characteristic,
    DataReceived,
    DownloadStarted,
    Failed,
    Fault,
    Notify,
    PeripheralEvent,
    VerifyRequested,
)

IMAGE_NAME = "ble-ota.bin"
"""The session's name in the journal: BLE carries no file name, so a resume matches on version and size."""


class BleOtaService:
    """The GATT server a :class:`~mcuota.transport.ble_link.BleLink` talks to, for one connection."""

    def __init__(self, device: SimDevice, *, max_mtu: int = MAX_MTU) -> None:
        self.device = device
        self.max_mtu = max_mtu
        self.machine: BlePeripheral | None = None
        self.installer: StreamInstaller | None = None
        self.failures: list[Failed] = []
        """Every transfer this connection ended without an image, with the device's reason."""
        self.staged = False
        self.boot: BootReport | None = None
        """The reset after an accepted image, once the central disconnected."""

    def mtu_changed(self, mtu: int) -> None:
        """The link settled on ``mtu``: the machine bounds data packets by it."""
        self.machine = BlePeripheral(self.device.storage.room, mtu)

    def on_write(self, characteristic: Characteristic, value: bytes) -> list[bytes]:
        machine = self.machine or BlePeripheral(self.device.storage.room)
        self.machine = machine
        if characteristic is Characteristic.CONTROL_POINT:
            events = machine.control_write(value)
        else:
            events = machine.data_write(value)
        return self._handle(machine, events)

    def _handle(self, machine: BlePeripheral, events: list[PeripheralEvent]) -> list[bytes]:
        out: list[bytes] = []
        queue = list(events)
        while queue:
            event = queue.pop(0)
            if isinstance(event, Notify):
                out.append(event.value)
            elif isinstance(event, DownloadStarted):
                self.installer = StreamInstaller(self.device)
                self.installer.begin(IMAGE_NAME, event.total)
                self.staged = False
            elif isinstance(event, DataReceived | VerifyRequested):
                queue[:0] = self._store(machine, event)
            elif isinstance(event, Failed):
                self.failures.append(event)
                if event.error.fault is Fault.CRC_MISMATCH and self.installer is not None:
                    self.installer.abandon()
                self.installer = None
            elif isinstance(event, Accepted):
                self.staged = True
        return out

    def _store(self, machine: BlePeripheral, event: DataReceived | VerifyRequested) -> list[PeripheralEvent]:
        installer = self.installer
        assert installer is not None, "the machine announces a download before its data"
        try:
            if isinstance(event, DataReceived):
                installer.feed(event.offset, event.data)
                return []
            installer.stage()
        except AgentError as exc:
            return machine.refuse(Fault.REFUSED, str(exc))
        return machine.accept()

    def on_disconnect(self) -> None:
        if self.machine is not None:
            self._handle(self.machine, self.machine.disconnected())
        if self.staged:
            self.staged = False
            self.boot = self.device.reset()

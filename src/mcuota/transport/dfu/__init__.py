"""USB DFU 1.1 and ST DfuSe: the protocol, a host, and a virtual dapboot device on the flash model.

Pure: nothing here opens a device or reads a clock. The pyusb adapter is
:mod:`mcuota.transport.dfu_usb`; time comes in as a ``clock`` (device) and a ``sleep`` (host).
"""

from mcuota.transport.dfu.host import DfuHost, TransferReport
from mcuota.transport.dfu.protocol import (
    ControlTransport,
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
from mcuota.transport.dfu.virtual import DAPBOOT, DAPBOOT_DFUSE, Profile, VirtualClock, VirtualDapboot

__all__ = [
    "DAPBOOT",
    "DAPBOOT_DFUSE",
    "ControlTransport",
    "DeviceGone",
    "DeviceInfo",
    "DfuDeviceError",
    "DfuHost",
    "DfuStall",
    "Functional",
    "Profile",
    "Request",
    "State",
    "Status",
    "StatusReply",
    "TransferReport",
    "VirtualClock",
    "VirtualDapboot",
]

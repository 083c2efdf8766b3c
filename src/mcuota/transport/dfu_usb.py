"""The pyusb adapter: :class:`~mcuota.transport.dfu.protocol.ControlTransport` on a real USB device.

Thin on purpose: it finds DFU interfaces (class 0xFE, subclass 1) by VID/PID, reads the functional
descriptor and the alternate-setting names, claims the interface (detaching a kernel driver that holds
it) and turns pyusb's errors into ours: EPIPE is a stall, ENODEV a device that went away. Everything a
DFU host decides lives in :mod:`mcuota.transport.dfu.host`, which the tests drive against the virtual
device; this module needs a board on the bus.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcuota.errors import FormatError, UsageError
from mcuota.transport.dfu.protocol import (
    DFU_CLASS,
    DFU_SUBCLASS,
    PROTOCOL_RUNTIME,
    DeviceGone,
    DeviceInfo,
    DfuStall,
    parse_functional,
)

_OUT, _IN = 0x21, 0xA1  # class request to an interface, host-to-device / device-to-host
FindLibrary = Callable[[str], str | None]


@dataclass(frozen=True)
class UsbDfuDevice:
    """A DFU interface found on the bus, not yet opened."""

    info: DeviceInfo
    device: Any  # usb.core.Device


def _usb_core(find_library: FindLibrary | None) -> tuple[Any, Any]:
    """pyusb's core module and the first backend that loads, or one line saying what is missing."""
    try:
        import usb.backend.libusb0  # type: ignore[import-untyped]  # noqa: PLC0415 - only when USB is used
        import usb.backend.libusb1  # type: ignore[import-untyped]  # noqa: PLC0415
        import usb.backend.openusb  # type: ignore[import-untyped]  # noqa: PLC0415
        import usb.core  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:
        raise UsageError("USB DFU needs pyusb: pip install pyusb (or use --virtual DIR)") from None
    for module in (usb.backend.libusb1, usb.backend.libusb0, usb.backend.openusb):
        backend = module.get_backend(find_library=find_library)
        if backend is not None:
            return usb.core, backend
    raise UsageError("no USB backend: install libusb-1.0 (Debian: apt-get install libusb-1.0-0), "
                     "or use --virtual DIR")


def find_devices(vid: int | None = None, pid: int | None = None, *,
                 find_library: FindLibrary | None = None) -> list[UsbDfuDevice]:
    """Every DFU interface on the bus (optionally of one VID/PID), run-time or DFU mode."""
    core, backend = _usb_core(find_library)
    try:
        devices = list(core.find(find_all=True, backend=backend))
    except core.USBError as exc:
        raise UsageError(f"cannot list USB devices: {exc}") from None
    found = []
    for device in devices:
        if (vid is not None and device.idVendor != vid) or (pid is not None and device.idProduct != pid):
            continue
        info = _dfu_info(device)
        if info is not None:
            found.append(UsbDfuDevice(info, device))
    return found


def _dfu_info(device: Any) -> DeviceInfo | None:
    try:
        config = device.get_active_configuration()
    except Exception:  # unconfigured or not accessible: not a device we can talk to
        return None
    settings = [i for i in config if i.bInterfaceClass == DFU_CLASS and i.bInterfaceSubClass == DFU_SUBCLASS]
    if not settings:
        return None
    first = settings[0]
    try:
        functional = parse_functional(bytes(first.extra_descriptors))
    except FormatError:
        return None
    names = tuple(_string(device, s.iInterface) for s in settings
                  if s.bInterfaceNumber == first.bInterfaceNumber)
    location = f"bus {device.bus} device {device.address}"
    return DeviceInfo(device.idVendor, device.idProduct, device.bcdDevice, first.bInterfaceNumber, functional,
                      first.bInterfaceProtocol == PROTOCOL_RUNTIME, names, location)


def _string(device: Any, index: int) -> str:
    if not index:
        return ""
    try:
        import usb.util  # type: ignore[import-untyped]  # noqa: PLC0415

        return str(usb.util.get_string(device, index))
    except Exception:  # no permission to read strings: the name is only for display
        return ""


def open_device(vid: int, pid: int, *, alternate: int = 0, find_library: FindLibrary | None = None
                ) -> tuple[UsbControlTransport, DeviceInfo]:
    """The one DFU device with these IDs, claimed, with ``alternate`` selected."""
    found = find_devices(vid, pid, find_library=find_library)
    if not found:
        raise UsageError(f"no USB DFU device {vid:04x}:{pid:04x} found (is it plugged in and in DFU mode? "
                         "try 'mcuota dfu list')")
    if len(found) > 1:
        raise UsageError(f"{len(found)} DFU devices {vid:04x}:{pid:04x} are attached: leave only one")
    chosen = found[0]
    return UsbControlTransport(chosen.device, chosen.info.interface, alternate), chosen.info


class UsbControlTransport:
    def __init__(self, device: Any, interface: int, alternate: int = 0, timeout_ms: int = 5000) -> None:
        import usb.core  # noqa: PLC0415
        import usb.util  # noqa: PLC0415

        self._device = device
        self._timeout = timeout_ms
        try:
            if device.is_kernel_driver_active(interface):
                device.detach_kernel_driver(interface)
        except (NotImplementedError, usb.core.USBError):
            pass  # not every backend or OS has kernel drivers to detach
        try:
            usb.util.claim_interface(device, interface)
            if alternate:
                device.set_interface_altsetting(interface=interface, alternate_setting=alternate)
        except usb.core.USBError as exc:
            raise UsageError(f"cannot claim DFU interface {interface}: {exc} (permissions? a udev rule "
                             "for the device, or run as root)") from None

    def control_out(self, request: int, value: int, index: int, data: bytes) -> None:
        self._transfer(_OUT, request, value, index, data)

    def control_in(self, request: int, value: int, index: int, length: int) -> bytes:
        return bytes(self._transfer(_IN, request, value, index, length))

    def reset(self) -> None:
        import usb.core  # noqa: PLC0415

        with contextlib.suppress(usb.core.USBError):  # re-enumerating during the reset is what it is for
            self._device.reset()

    def _transfer(self, kind: int, request: int, value: int, index: int, payload: bytes | int) -> Any:
        import usb.core  # noqa: PLC0415

        try:
            return self._device.ctrl_transfer(kind, request, value, index, payload, self._timeout)
        except usb.core.USBError as exc:
            if exc.errno == errno.EPIPE:
                raise DfuStall(f"the device stalled request {request}") from None
            if exc.errno in (errno.ENODEV, errno.ENOENT, errno.EIO):
                raise DeviceGone(f"the USB device went away: {exc}") from None
            raise DeviceGone(f"USB transfer failed: {exc}") from None

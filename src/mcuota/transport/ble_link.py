"""A simulated BLE link between the updater (central) and one device's GATT server, in process.

The radio is simulated: nothing here talks to a Bluetooth adapter, and no adapter for one ships (a
real one, such as bleak, cannot be tested on machines without the hardware). What the link models is
what the OTA protocol depends on:

* the ATT MTU: an exchange settles on the smaller of both ends' values (never below 23), and no value
  longer than ``MTU - 3`` can be written;
* write with response (ATT Write Request) versus write without response (Write Command): both arrive
  in order, exactly once, because the link layer retransmits; only the time they cost differs;
* notifications reach the central in the order the server sent them;
* the link dropping: after :meth:`BleLink.drop_after` writes the next one never arrives, the server
  learns of the disconnection and every later call raises :class:`LinkLost`;
* time, modeled rather than slept: a request and its response take a connection event each, Write
  Commands go ``packets_per_event`` to an event, a notification takes the next event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mcuota.errors import McuotaError, UsageError
from mcuota.transport.ble_ota import (
    DEFAULT_MTU,
    MAX_MTU,
    BleCentral,
    BleOtaError,
    Characteristic,
    Done,
    Fault,
    Progress,
    Write,
    payload_size,
)


class LinkLost(McuotaError):
    """The BLE connection dropped (supervision timeout): the write did not arrive."""


class GattServer(Protocol):
    """The device's side of the link: the OTA service's characteristics."""

    max_mtu: int

    def mtu_changed(self, mtu: int) -> None:
        """The exchange settled on ``mtu`` for this connection."""

    def on_write(self, characteristic: Characteristic, value: bytes) -> list[bytes]:
        """Take a write; the control point notifications it causes, in order."""

    def on_disconnect(self) -> None:
        """The central is gone (or the link dropped)."""


@dataclass(frozen=True)
class LinkTiming:
    connection_interval: float = 0.015
    packets_per_event: int = 6
    """Write Commands the central fits in one connection event (stack and controller dependent)."""


class BleLink:
    def __init__(self, server: GattServer, *, central_mtu: int = MAX_MTU,
                 timing: LinkTiming = LinkTiming()) -> None:
        self.server = server
        self.central_mtu = central_mtu
        self.timing = timing
        self.mtu = DEFAULT_MTU
        self.connected = True
        self.elapsed = 0.0
        self.writes = 0
        self._in_event = 0
        self._drop_at: int | None = None
        self._notifications: deque[bytes] = deque()

    def exchange_mtu(self) -> int:
        """ATT Exchange MTU: both ends offer their maximum, both use the smaller."""
        self._check_up()
        offered = min(self.central_mtu, self.server.max_mtu)
        if offered < DEFAULT_MTU:
            raise UsageError(f"an ATT MTU below {DEFAULT_MTU} is not BLE")
        self.mtu = min(offered, MAX_MTU)
        self.server.mtu_changed(self.mtu)
        self._event(2)
        return self.mtu

    def drop_after(self, writes: int) -> None:
        """The link drops instead of carrying the write after the next ``writes`` ones."""
        self._drop_at = self.writes + writes

    def write(self, write: Write) -> None:
        self._check_up()
        if len(write.value) > payload_size(self.mtu):
            raise UsageError(f"a {len(write.value)}-byte write does not fit the ATT MTU of {self.mtu}")
        if self._drop_at is not None and self.writes >= self._drop_at:
            self.disconnect()
            raise LinkLost(f"the BLE link dropped after {self.writes} writes")
        self.writes += 1
        if write.with_response:
            self._event(2)
        else:
            self._in_event += 1
            if self._in_event >= self.timing.packets_per_event:
                self._event(1)
        for value in self.server.on_write(write.characteristic, write.value):
            self._notifications.append(value)

    def notifications(self) -> list[bytes]:
        """The notifications that arrived since the last call, in the order they were sent."""
        self._check_up()
        out = list(self._notifications)
        self._notifications.clear()
        if out:
            self._event(len(out))
        return out

    def disconnect(self) -> None:
        if self.connected:
            self.connected = False
            self._notifications.clear()
            self.server.on_disconnect()

    def _check_up(self) -> None:
        if not self.connected:
            raise LinkLost("the BLE link is down")

    def _event(self, count: int) -> None:
        self._in_event = 0
        self.elapsed += count * self.timing.connection_interval


def send_image_ble(link: BleLink, image: bytes,
                   progress: Callable[[int, int | None], None] | None = None) -> Done:
    """Run the updater's side of a whole transfer over ``link``, then disconnect (the device resets once
    its verified image is acknowledged). :class:`BleOtaError` names why a transfer failed."""
    central = BleCentral(image, link.exchange_mtu())
    try:
        while True:
            quiet = True
            for write in central.packets():
                quiet = False
                link.write(write)
                for value in link.notifications():
                    for event in central.notification(value):
                        if isinstance(event, Done):
                            link.disconnect()
                            return event
                        if isinstance(event, Progress) and progress is not None:
                            progress(event.sent, event.total)
                if progress is not None and not write.with_response:
                    progress(central.sent, len(image))
            if quiet:
                raise BleOtaError(Fault.NO_ANSWER, f"the peripheral never answered ({central.state.value})")
    except LinkLost:
        raise central.disconnected() from None
    except BleOtaError:
        link.disconnect()
        raise

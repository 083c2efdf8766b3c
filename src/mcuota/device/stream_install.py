"""Installing an image that arrives as one byte stream of announced size (BLE data packets, a TCP
stream): the serial installer's journaled staging, fed by offset instead of by YMODEM events.

The stream protocols end with a verdict the device sends *before* it resets (a status notification,
a verdict byte), so staging (verify and request) and the reset are separate steps here.
"""

from __future__ import annotations

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.device.device import BootReport
from mcuota.device.serial_install import SerialInstaller
from mcuota.image.version import ImageVersion


class StreamInstaller(SerialInstaller):
    """:meth:`begin` with the stream's name and size, :meth:`feed` its bytes in order, :meth:`stage`,
    then the device's reset installs what was staged."""

    def begin(self, name: str, size: int) -> None:
        self.name, self.size = name, size

    def feed(self, offset: int, data: bytes) -> None:
        if offset != self.received:
            raise AgentError(AgentCode.BAD_CHUNK_OFFSET, f"data at {offset}, expected {self.received}")
        self.received += len(data)
        self.pending += data
        self._flush(final=False)

    def stage(self) -> ImageVersion:
        """Verify what arrived and ask the bootloader for it; the version that will run after a reset.
        A refused image is forgotten (the next transfer starts from zero) and the firmware stays."""
        self._flush(final=True)
        session = self.session
        if session is None or self.written != session.total:
            raise AgentError(AgentCode.TRUNCATED, f"{self.written} of {self.size} bytes arrived")
        running = self.storage.running_version() or ImageVersion()
        if not session.version.newer_than(running):
            self.storage.abandon()
            raise AgentError(AgentCode.INVALID_VERSION, f"image {session.version} is not newer than running "
                             f"{running}")
        try:
            self.storage.verify(session.total, session.version)
        except AgentError:
            self.storage.abandon()
            raise
        self.storage.request(session.version, running)
        return session.version

    def abandon(self) -> None:
        """The bytes staged so far are bad (a CRC mismatch): the next transfer must not keep them."""
        if self.session is not None:
            self.storage.abandon()

    def finish(self) -> BootReport:
        self.stage()
        return self.device.reset()

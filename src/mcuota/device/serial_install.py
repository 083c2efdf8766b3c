"""A simulated device receiving firmware over its UART, as ST's AN4657 IAP bootloader and the seed-001
stream interface do: YMODEM blocks are written into the layout's staging area as they arrive, through
the same journaled :class:`~mcuota.agent.storage.Storage` the OTA agent uses, then verified, requested,
and installed by the bootloader on reset.

Writing through the journal buys a serial transfer the agent's guarantees: a power cut mid-transfer
leaves the running firmware alone, and the same file sent again skips what is already intact. The image
must say its own version (MCUboot, seed-001 header); a raw Gizwits .bin goes over the P0 protocol.
"""

from __future__ import annotations

from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.storage import Session
from mcuota.device.device import BootReport, SimDevice
from mcuota.errors import FormatError
from mcuota.image.version import ImageVersion
from mcuota.transport.ymodem import Aborted, Data, Event, FileInfo, YmodemReceiver
from mcuota.transport.ymodem_serial import Line, TransferAborted, run_machine

STEP = 4096


class SerialInstaller:
    """The receiving end's sink: feed it the receiver's events, then :meth:`finish`."""

    def __init__(self, device: SimDevice, *, step: int = STEP) -> None:
        self.device = device
        self.storage = device.storage
        self.step = step
        self.name = ""
        self.size: int | None = None
        self.pending = bytearray()
        self.written = 0          # bytes handed to flash (or already intact there)
        self.received = 0
        self.session: Session | None = None
        self.prefix = 0

    def receiver(self) -> YmodemReceiver:
        return YmodemReceiver(self.storage.room)

    def on_event(self, event: Event) -> None:
        if isinstance(event, FileInfo):
            if event.size is None:
                raise AgentError(AgentCode.MALFORMED_JOB_DOC, "the sender did not say the file's size")
            self.name, self.size = event.name or "image.bin", event.size
        elif isinstance(event, Data):
            if event.offset != self.received:
                raise AgentError(AgentCode.BAD_CHUNK_OFFSET,
                                 f"data at {event.offset}, expected {self.received}")
            self.received += len(event.data)
            self.pending += event.data
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        while len(self.pending) >= self.step or (final and self.pending):
            if self.session is None:
                self._open()
            piece = bytes(self.pending[:self.step])
            del self.pending[:self.step]
            if self.written >= self.prefix:            # bytes below the prefix are intact in flash
                self.storage.write_step(self.written, piece)
            self.written += len(piece)

    def _open(self) -> None:
        assert self.size is not None
        head = bytes(self.pending[:64])
        try:
            self.storage.check_format(head)
            version = self.storage.version_in(head)
        except FormatError as exc:
            raise AgentError(AgentCode.WRONG_FORMAT, str(exc)) from None
        if version is None:
            raise AgentError(AgentCode.WRONG_FORMAT, "this image does not carry its version; a serial "
                             "install needs one (MCUboot or the seed-001 header)")
        self.session = Session(self.name, version, self.size)
        self.prefix = self.storage.open(self.session, self.step)

    def finish(self) -> BootReport:
        """Verify what arrived, ask the bootloader for it and reset into it."""
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
        return self.device.reset()


def serve_serial(device: SimDevice, line: Line, *, timeout: float = 10.0) -> BootReport:
    """Receive one image over ``line`` and install it; :class:`TransferAborted` when the sender gave up,
    :class:`AgentError` naming why an image that arrived was refused (the firmware stays as it was)."""
    installer = SerialInstaller(device)
    receiver = installer.receiver()
    outcome = run_machine(receiver, line, receiver.start(), timeout=timeout, on_event=installer.on_event)
    if isinstance(outcome, Aborted):
        raise TransferAborted(outcome)
    return installer.finish()

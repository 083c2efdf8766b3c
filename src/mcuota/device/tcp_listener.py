"""A simulated seed-001 device taking firmware over TCP, as the seed's W5500 Ethernet path does: it
listens on a port of 127.0.0.1, receives one framed image stream (:mod:`mcuota.transport.tcp_stream`),
stages it through the agent's journaled storage, answers with a verdict and resets into it.

The seed's bootloader reads the stream straight into application flash; staging it first (in the
seed-001 staging area, behind the request word) is what keeps the old firmware running when the
connection or the power goes mid-transfer, and lets a repeat of the same image skip the intact part.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from types import TracebackType

from mcuota.device.device import BootReport, SimDevice
from mcuota.device.stream_install import StreamInstaller
from mcuota.errors import UsageError
from mcuota.transport.tcp_stream import Received, Verdict, receive_image

IMAGE_NAME = "tcp-stream.bin"
"""The session's name in the journal: the stream carries none, so a resume matches on version and size."""


class _Sink:
    def __init__(self, device: SimDevice) -> None:
        self.installer = StreamInstaller(device)

    def begin(self, size: int) -> None:
        self.installer.begin(IMAGE_NAME, size)

    def feed(self, offset: int, data: bytes) -> None:
        self.installer.feed(offset, data)

    def complete(self) -> None:
        self.installer.stage()


@dataclass(frozen=True)
class Served:
    received: Received
    boot: BootReport | None
    """The reset into the new image, when the verdict was OK."""


class TcpListener:
    """One device's listening socket; :meth:`serve_one` handles a connection at a time."""

    def __init__(self, device: SimDevice, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.device = device
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.sock.listen(1)
        self.host, self.port = self.sock.getsockname()[:2]

    def serve_one(self, *, timeout: float = 30.0) -> Served:
        """Accept one connection and serve it; the device resets into an image it answered OK to."""
        self.sock.settimeout(timeout)
        try:
            conn, _ = self.sock.accept()
        except TimeoutError:
            return Served(Received(None, f"no connection within {timeout:g} s"), None)
        sink = _Sink(self.device)
        with conn:
            received = receive_image(conn, self.device.storage.room, sink, timeout=timeout)
        if received.verdict is Verdict.CRC_MISMATCH:
            sink.installer.abandon()
        if received.verdict is not Verdict.OK:
            return Served(received, None)
        return Served(received, self.device.reset())

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> TcpListener:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

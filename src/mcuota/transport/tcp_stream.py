"""Pushing an image to a device's TCP port, and a device's end of it: the socket adapter around the
framing in :mod:`mcuota.transport.tcp_frame` (header with size and CRC-32, the image, a verdict byte).

:func:`send_image_tcp` is what ``mcuota flash --tcp HOST:PORT IMAGE`` runs; :func:`receive_image`
serves one accepted connection for a device (see :mod:`mcuota.device.tcp_listener`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mcuota.errors import McuotaError, UsageError
from mcuota.transport.tcp_frame import (
    HEADER,
    MAGIC,
    Chunk,
    Complete,
    Header,
    Rejected,
    StreamReceiver,
    StreamRefused,
    Verdict,
    frame_header,
    verdict_error,
)

__all__ = [
    "HEADER", "MAGIC", "Received", "StreamReceiver", "StreamRefused", "StreamSink", "Verdict",
    "frame_header", "receive_image", "send_image_tcp",
]

CHUNK = 4096
DRAIN_SECONDS = 2.0


def send_image_tcp(host: str, port: int, data: bytes,
                   progress: Callable[[int, int | None], None] | None = None, *,
                   timeout: float = 30.0) -> None:
    """Send ``data`` to a device listening on ``host:port`` and wait for its verdict; returns when the
    device verified and requested the image (it installs it on reset). A refusal raises the error a
    user acts on (CapacityError: too large, IntegrityError: damaged in transit, StreamRefused: the
    device's own checks); a device that drops the connection without a verdict raises McuotaError."""
    if not data:
        raise UsageError("no image to send")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise McuotaError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    with sock:
        sent = 0
        try:
            sock.sendall(frame_header(data))
            if progress is not None:
                progress(0, len(data))
            while sent < len(data):
                piece = data[sent:sent + CHUNK]
                sock.sendall(piece)
                sent += len(piece)
                if progress is not None:
                    progress(sent, len(data))
        except OSError:
            pass        # a device that refused early closed its end: its verdict may still be readable
        verdict = _read_verdict(sock)
    if verdict is None:
        raise McuotaError(f"{host}:{port} closed the connection after {sent} of {len(data)} bytes "
                          "without a verdict")
    if verdict is not Verdict.OK:
        raise verdict_error(verdict, len(data))


def _read_verdict(sock: socket.socket) -> Verdict | None:
    try:
        raw = sock.recv(1)
    except OSError:
        return None
    if not raw:
        return None
    try:
        return Verdict(raw[0])
    except ValueError:
        raise StreamRefused(None, f"the device answered 0x{raw[0]:02x}, which is no verdict") from None


class StreamSink(Protocol):
    """Where the device puts what arrives; a :class:`McuotaError` from any call refuses the image."""

    def begin(self, size: int) -> None: ...

    def feed(self, offset: int, data: bytes) -> None: ...

    def complete(self) -> None:
        """Every byte arrived intact: the device's own checks, then the request to the bootloader."""


@dataclass(frozen=True)
class Received:
    verdict: Verdict | None
    """What the device answered; None when the sender went away first."""
    reason: str
    size: int = 0


def receive_image(conn: socket.socket, room: int, sink: StreamSink, *, timeout: float = 30.0) -> Received:
    """Serve one connection: feed ``sink``, answer with a verdict, leave the socket to the caller."""
    conn.settimeout(timeout)
    receiver = StreamReceiver(room)
    while True:
        try:
            data = conn.recv(65536)
        except TimeoutError:
            return Received(None, f"no data for {timeout:g} s ({receiver.received} of {receiver.size} "
                            "image bytes arrived)", receiver.size)
        except OSError as exc:
            return Received(None, f"connection lost: {exc}", receiver.size)
        if not data:
            return Received(None, receiver.eof() or "closed", receiver.size)
        for event in receiver.feed(data):
            try:
                if isinstance(event, Header):
                    sink.begin(event.size)
                elif isinstance(event, Chunk):
                    sink.feed(event.offset, event.data)
                elif isinstance(event, Complete):
                    sink.complete()
                    return _answer(conn, Verdict.OK, "verified and requested", event.size)
            except McuotaError as exc:
                return _answer(conn, Verdict.REFUSED, str(exc), receiver.size)
            if isinstance(event, Rejected):
                return _answer(conn, event.verdict, event.reason, receiver.size)


def _answer(conn: socket.socket, verdict: Verdict, reason: str, size: int) -> Received:
    """Send the verdict, then read what the sender still had in flight until it closes: closing on
    unread bytes would reset the connection and could destroy the verdict before the sender read it."""
    try:
        conn.sendall(bytes((verdict,)))
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(DRAIN_SECONDS)
        while conn.recv(65536):
            pass
    except OSError:
        pass        # the sender left; the verdict stands on the device
    return Received(verdict, reason, size)

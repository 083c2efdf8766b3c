"""Drives the YMODEM machines over a real line: a pyserial port, or anything with ``read``, ``write``
and a ``timeout`` attribute (a pty opened by pyserial, a socket's file wrapper, a test double).

Here, and only here, live the clock and the blocking reads: the machines learn that the line went
quiet through ``timeout()`` after ``timeout`` seconds without a byte, the way AN4657's 1-second NAK
timeout and lrzsz's retry timers work.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import serial

from mcuota.errors import McuotaError
from mcuota.transport.ymodem import (
    ABORT,
    Aborted,
    AbortedBy,
    Data,
    Done,
    Event,
    FileInfo,
    Progress,
    Step,
    YmodemReceiver,
    YmodemSender,
)

DEFAULT_TIMEOUT = 1.0  # seconds of silence before a receiver NAKs, as AN4657's receiver waits
# A sender must wait longer than a receiver takes to let a damaged packet's line go quiet and NAK it
# (lrzsz's rz takes about a second): resending sooner puts two copies of the block on the line, and
# the second answer is then taken for the next block's, which desynchronises the two ends.
SEND_TIMEOUT = 5.0
CLOSING_WAIT = 0.5  # for the ACK of the empty block 0 that ends a batch, which lrzsz may never send
DEFAULT_START_TIMEOUT = 60.0  # long enough to reset a board into its bootloader by hand

ProgressCallback = Callable[[int, int | None], None]


class Line(Protocol):
    timeout: float | None

    def read(self, size: int = 1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...


class PortError(McuotaError):
    """The serial port cannot be opened or used: missing, busy, or not a serial device."""


class TransferAborted(McuotaError):
    """The transfer ended without a complete file; the message says which side gave up and why."""

    exit_code = 1

    def __init__(self, aborted: Aborted) -> None:
        who = "device" if aborted.by is AbortedBy.PEER else "mcuota"
        super().__init__(f"transfer aborted by {who}: {aborted.reason}")
        self.aborted = aborted


@dataclass(frozen=True)
class ReceivedFile:
    name: str
    data: bytes


def open_serial(port: str, baud: int = 115200) -> serial.Serial:
    """The port as YMODEM needs it: 8N1, raw, no flow control."""
    try:
        return serial.Serial(port, baudrate=baud, timeout=DEFAULT_TIMEOUT, write_timeout=30)
    except (serial.SerialException, OSError, ValueError) as exc:
        code = getattr(exc, "errno", None)
        detail = os.strerror(code) if isinstance(code, int) else str(exc)
        raise PortError(f"cannot open serial port {port}: {detail}") from None


def run_machine(machine: YmodemSender | YmodemReceiver, line: Line, first: Step | None = None, *,
                timeout: float = DEFAULT_TIMEOUT, on_event: Callable[[Event], None] | None = None,
                ) -> Done | Aborted:
    """Pump bytes between ``line`` and ``machine`` until it finishes; returns its last event.

    Ctrl-C (or any exception in ``on_event``) sends CAN CAN first, so the other end stops waiting."""
    line.timeout = min(timeout, CLOSING_WAIT)
    closing_wait = min(timeout, CLOSING_WAIT)
    waiting = getattr(line, "in_waiting", None) is not None
    outcome: Done | Aborted | None = None
    step = first or Step()
    quiet_since = time.monotonic()
    try:
        while True:
            if step.outgoing:
                line.write(step.outgoing)
            for event in step.events:
                if isinstance(event, Done | Aborted):
                    outcome = event
                elif on_event is not None:
                    on_event(event)
            if machine.finished:
                break
            chunk = line.read(1)
            if chunk and waiting:
                extra = int(getattr(line, "in_waiting", 0))
                if extra:
                    chunk += line.read(extra)
            if chunk:
                quiet_since = time.monotonic()
                step = machine.feed(chunk)
            elif time.monotonic() - quiet_since >= (closing_wait if machine.closing else timeout):
                quiet_since = time.monotonic()
                step = machine.timeout()
            else:
                step = Step()
        if machine.cancelled_here:
            _keep_cancelling(line, timeout)
    except (serial.SerialException, OSError) as exc:
        raise PortError(f"the serial line failed: {exc}") from None
    except BaseException:
        if not machine.finished:
            line.write(machine.abort("interrupted").outgoing)
            with contextlib.suppress(Exception):
                _keep_cancelling(line, timeout)
        raise
    assert outcome is not None
    return outcome


def _keep_cancelling(line: Line, quiet: float) -> None:
    """Answer CAN CAN to whatever the peer still says until it stops talking.

    A receiver that takes the first CAN for line noise purges the line (eating the second) and asks
    again; lrzsz's ``rz`` does, depending on timing. Repeating the cancel is the only way to be heard."""
    quiet = min(quiet, 1.5)
    last = time.monotonic()
    for _ in range(50):
        if time.monotonic() - last >= quiet:
            return
        if line.read(1):
            extra = int(getattr(line, "in_waiting", 0) or 0)
            if extra:
                line.read(extra)
            line.write(ABORT)
            last = time.monotonic()


def send_file(line: Line, name: str, data: bytes, *, timeout: float = SEND_TIMEOUT,
              start_timeout: float = DEFAULT_START_TIMEOUT, block_size: int = 1024,
              progress: ProgressCallback | None = None) -> YmodemSender:
    """Send one file to a YMODEM receiver (a bootloader, ``rz``); raises :class:`TransferAborted`."""
    attempts = max(1, round(start_timeout / timeout))
    sender = YmodemSender(name, data, block_size=block_size, start_attempts=attempts)

    def report(event: Event) -> None:
        if progress is not None and isinstance(event, Progress):
            progress(event.done, event.total)

    outcome = run_machine(sender, line, timeout=timeout, on_event=report)
    if isinstance(outcome, Aborted):
        raise TransferAborted(outcome)
    return sender


def receive_file(line: Line, *, max_size: int | None = None, timeout: float = DEFAULT_TIMEOUT,
                 start_timeout: float = DEFAULT_START_TIMEOUT, receiver: YmodemReceiver | None = None,
                 progress: ProgressCallback | None = None) -> ReceivedFile | None:
    """Receive one file as a bootloader would (None for an empty batch); raises :class:`TransferAborted`."""
    attempts = max(1, round(start_timeout / timeout))
    machine = receiver or YmodemReceiver(max_size, start_attempts=attempts)
    buffer = bytearray()
    name: list[str] = []

    def store(event: Event) -> None:
        if isinstance(event, FileInfo):
            name.append(event.name)
            if progress is not None:
                progress(0, event.size)
        elif isinstance(event, Data):
            buffer[event.offset:event.offset + len(event.data)] = event.data
            if progress is not None and machine.file is not None:
                progress(event.offset + len(event.data), machine.file.size)

    outcome = run_machine(machine, line, machine.start(), timeout=timeout, on_event=store)
    if isinstance(outcome, Aborted):
        raise TransferAborted(outcome)
    return ReceivedFile(name[0], bytes(buffer)) if name else None

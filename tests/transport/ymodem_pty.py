"""Serial lines for the YMODEM interop tests and the transport benchmark: socat pty pairs, and a relay
between two pairs that can damage one byte on its way, as a glitch on a real UART would."""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

_PTY_LINE = re.compile(rb"N PTY is (\S+)")


@contextlib.contextmanager
def pty_pair(socat: str = "socat") -> Iterator[tuple[str, str]]:
    """Two pty paths joined like the two ends of a null-modem cable, for as long as the block runs."""
    proc = subprocess.Popen([socat, "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    paths: list[str] = []
    try:
        while len(paths) < 2:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"socat exited {proc.wait()} before opening two ptys")
            found = _PTY_LINE.search(line)
            if found:
                paths.append(found.group(1).decode())
        # socat is ready once both ptys are announced and it starts its transfer loop.
        while b"starting data transfer loop" not in proc.stderr.readline():
            pass
        # socat may still log (a peer closing, EAGAIN): drain it, or a full pipe stalls the line.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield paths[0], paths[1]
    finally:
        proc.terminate()
        proc.wait(timeout=5)


Tamper = Callable[[int, bytes], bytes]


@contextlib.contextmanager
def relayed_line(socat: str = "socat", forward: Tamper | None = None,
                 backward: Tamper | None = None) -> Iterator[tuple[str, str]]:
    """Like :func:`pty_pair`, but the bytes pass through this process: ``forward(offset, chunk)``
    may change what goes from the first path to the second (``backward`` the other way)."""
    with pty_pair(socat) as (a_outer, a_inner), pty_pair(socat) as (b_inner, b_outer):
        fds = [os.open(a_inner, os.O_RDWR | os.O_NOCTTY), os.open(b_inner, os.O_RDWR | os.O_NOCTTY)]
        stop_r, stop_w = os.pipe()
        thread = threading.Thread(target=_relay, args=(fds, stop_r, (forward, backward)), daemon=True)
        thread.start()
        try:
            yield a_outer, b_outer
        finally:
            os.write(stop_w, b"x")
            thread.join(timeout=5)
            for fd in (*fds, stop_r, stop_w):
                os.close(fd)


def _relay(fds: list[int], stop: int, tampers: tuple[Tamper | None, Tamper | None]) -> None:
    offsets = [0, 0]
    while True:
        ready, _, _ = select.select([*fds, stop], [], [])
        if stop in ready:
            return
        for direction, fd in enumerate(fds):
            if fd not in ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            tamper = tampers[direction]
            out = tamper(offsets[direction], chunk) if tamper else chunk
            offsets[direction] += len(chunk)
            os.write(fds[1 - direction], out)


def flip_byte_at(position: int) -> Tamper:
    """A tamper that inverts the one byte at ``position`` of the stream, once."""
    def tamper(offset: int, chunk: bytes) -> bytes:
        if offset <= position < offset + len(chunk):
            i = position - offset
            return chunk[:i] + bytes((chunk[i] ^ 0xFF,)) + chunk[i + 1:]
        return chunk
    return tamper


def run_lrzsz(argv: list[str], line: str, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``sz``/``rz`` with the pty as its stdin and stdout, as it runs on a serial console."""
    fd = os.open(line, os.O_RDWR | os.O_NOCTTY)
    # lrzsz reports every block on stderr: a pipe nobody drains would fill up and stall the transfer.
    try:
        return subprocess.Popen(argv, stdin=fd, stdout=fd, stderr=subprocess.DEVNULL, cwd=cwd)
    finally:
        os.close(fd)

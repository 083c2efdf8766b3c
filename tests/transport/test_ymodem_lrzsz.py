"""mcuota's YMODEM against Debian's lrzsz (``sz --ymodem`` / ``rz --ymodem``) over socat pty pairs:
the field's reference implementation is the other end of every transfer here."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from ymodem_pty import flip_byte_at, pty_pair, relayed_line, run_lrzsz

from conftest import require_tool
from mcuota.samples import sample_path
from mcuota.transport.ymodem import Data, Event, YmodemReceiver
from mcuota.transport.ymodem_serial import (
    TransferAborted,
    open_serial,
    receive_file,
    run_machine,
    send_file,
)

pytestmark = pytest.mark.interop
LRZSZ_WAIT = 30


@pytest.fixture
def tools() -> tuple[str, str, str]:
    return require_tool("sz"), require_tool("rz"), require_tool("socat")


@pytest.fixture
def firmware() -> bytes:
    return sample_path("stm32-header-f103", "2.0.0", "bin").read_bytes()


@contextlib.contextmanager
def port(path: str) -> Iterator[serial.Serial]:
    line = open_serial(path)
    try:
        yield line
    finally:
        line.close()


def test_sz_to_our_receiver_is_byte_identical(tools: tuple[str, str, str], tmp_path: Path,
                                               firmware: bytes) -> None:
    (tmp_path / "app.bin").write_bytes(firmware)
    with pty_pair(tools[2]) as (theirs, ours), port(ours) as line:
        sz = run_lrzsz([tools[0], "--ymodem", "app.bin"], theirs, tmp_path)
        received = receive_file(line, max_size=len(firmware))
        assert sz.wait(LRZSZ_WAIT) == 0
    assert received is not None
    assert received.name == "app.bin"
    assert received.data == firmware


def test_our_sender_to_rz_is_byte_identical(tools: tuple[str, str, str], tmp_path: Path,
                                            firmware: bytes) -> None:
    seen: list[tuple[int, int | None]] = []
    with pty_pair(tools[2]) as (theirs, ours), port(ours) as line:
        rz = run_lrzsz([tools[1], "--ymodem"], theirs, tmp_path)
        send_file(line, "app.bin", firmware, progress=lambda done, total: seen.append((done, total)))
        assert rz.wait(LRZSZ_WAIT) == 0
    assert (tmp_path / "app.bin").read_bytes() == firmware
    assert seen[-1] == (len(firmware), len(firmware))


def test_odd_sized_file_round_trips_with_small_blocks(tools: tuple[str, str, str], tmp_path: Path) -> None:
    data = random.Random(7).randbytes(1025 + 3 * 128 + 1)
    with pty_pair(tools[2]) as (theirs, ours), port(ours) as line:
        rz = run_lrzsz([tools[1], "--ymodem"], theirs, tmp_path)
        send_file(line, "odd.bin", data, block_size=128)
        assert rz.wait(LRZSZ_WAIT) == 0
    assert (tmp_path / "odd.bin").read_bytes() == data


def test_corrupted_block_from_sz_is_resent(tools: tuple[str, str, str], tmp_path: Path,
                                           firmware: bytes) -> None:
    (tmp_path / "app.bin").write_bytes(firmware)
    # Block 0 is 133 bytes; byte 133 + 1500 sits in the data of block 2 whatever sz's block size.
    with relayed_line(tools[2], forward=flip_byte_at(133 + 1500)) as (theirs, ours), port(ours) as line:
        sz = run_lrzsz([tools[0], "--ymodem", "app.bin"], theirs, tmp_path)
        received = receive_file(line)
        assert sz.wait(LRZSZ_WAIT) == 0
    assert received is not None
    assert received.data == firmware


def test_corrupted_block_to_rz_is_resent(tools: tuple[str, str, str], tmp_path: Path,
                                         firmware: bytes) -> None:
    with relayed_line(tools[2], forward=flip_byte_at(133 + 1029 + 700)) as (ours, theirs), \
            port(ours) as line:
        rz = run_lrzsz([tools[1], "--ymodem"], theirs, tmp_path)
        sender = send_file(line, "app.bin", firmware)
        assert rz.wait(LRZSZ_WAIT) == 0
    assert (tmp_path / "app.bin").read_bytes() == firmware
    assert sender.retransmissions >= 1


class _StopHere(Exception):
    pass


def test_our_cancel_makes_sz_fail(tools: tuple[str, str, str], tmp_path: Path, firmware: bytes) -> None:
    (tmp_path / "app.bin").write_bytes(firmware)

    def stop_after_first_block(event: Event) -> None:
        if isinstance(event, Data):
            raise _StopHere

    with pty_pair(tools[2]) as (theirs, ours), port(ours) as line:
        sz = run_lrzsz([tools[0], "--ymodem", "app.bin"], theirs, tmp_path)
        receiver = YmodemReceiver()
        with pytest.raises(_StopHere):
            run_machine(receiver, line, receiver.start(), on_event=stop_after_first_block)
        assert sz.wait(LRZSZ_WAIT) != 0
    assert receiver.finished


def test_our_cancel_makes_rz_fail(tools: tuple[str, str, str], tmp_path: Path, firmware: bytes) -> None:
    def stop(done: int, total: int | None) -> None:
        raise _StopHere

    with pty_pair(tools[2]) as (theirs, ours), port(ours) as line:
        rz = run_lrzsz([tools[1], "--ymodem"], theirs, tmp_path)
        with pytest.raises(_StopHere):
            send_file(line, "app.bin", firmware, progress=stop)
        assert rz.wait(LRZSZ_WAIT) != 0


def test_file_too_large_for_the_slot_is_refused(tools: tuple[str, str, str], tmp_path: Path,
                                                firmware: bytes) -> None:
    (tmp_path / "app.bin").write_bytes(firmware)
    with pty_pair(tools[2]) as (theirs, ours), port(ours) as line:
        sz = run_lrzsz([tools[0], "--ymodem", "app.bin"], theirs, tmp_path)
        with pytest.raises(TransferAborted, match=f"app.bin is {len(firmware)} bytes, more than the 1024"):
            receive_file(line, max_size=1024)
        assert sz.wait(LRZSZ_WAIT) != 0

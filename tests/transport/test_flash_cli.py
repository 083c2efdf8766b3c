"""``mcuota flash`` as a user runs it: against lrzsz's ``rz`` on a pty, and its one-line failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from ymodem_pty import pty_pair, run_lrzsz

from conftest import require_tool
from mcuota.samples import sample_path
from mcuota.transport.ymodem import YmodemReceiver
from mcuota.transport.ymodem_serial import TransferAborted, open_serial, receive_file

Run = Callable[..., CompletedProcess[str]]


@pytest.mark.interop
def test_flash_sends_the_image_to_rz(mcuota: Run, tmp_path: Path) -> None:
    rz, socat = require_tool("rz"), require_tool("socat")
    image = sample_path("gizwits-f103", "1.1.0", "bin")
    out = tmp_path / "board"
    out.mkdir()
    with pty_pair(socat) as (theirs, ours):
        receiver = run_lrzsz([rz, "--ymodem"], theirs, out)
        proc = mcuota("flash", "--port", ours, "--protocol", "ymodem", "--json", image)
        assert receiver.wait(30) == 0
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["name"], report["size"]) == (image.name, image.stat().st_size)
    assert (out / image.name).read_bytes() == image.read_bytes()


def test_missing_port_is_one_line_and_exit_2(mcuota: Run, tmp_path: Path) -> None:
    proc = mcuota("flash", "--port", str(tmp_path / "ttyUSB9"), sample_path("gizwits-f103", "1.1.0", "bin"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"mcuota: error: cannot open serial port {tmp_path / 'ttyUSB9'}: " \
                                  "No such file or directory"


def test_missing_image_is_one_line_and_exit_2(mcuota: Run, tmp_path: Path) -> None:
    proc = mcuota("flash", "--port", "/dev/null", tmp_path / "none.bin")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "none.bin" in proc.stderr


@pytest.mark.interop
def test_device_refusal_shows_its_reason_and_exits_1(mcuota: Run, tmp_path: Path) -> None:
    socat = require_tool("socat")
    with pty_pair(socat) as (theirs, ours):
        # A bootloader whose slot is too small answers the header with CAN CAN.
        line = open_serial(theirs)
        refused: list[str] = []

        def device() -> None:
            try:
                receive_file(line, max_size=100, receiver=YmodemReceiver(100))
            except TransferAborted as exc:
                refused.append(str(exc))

        thread = threading.Thread(target=device)
        thread.start()
        proc = mcuota("flash", "--port", ours, sample_path("gizwits-f103", "1.1.0", "bin"), "--quiet")
        thread.join(30)
        line.close()
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("mcuota: error: transfer aborted by device: "
                                   "the receiver cancelled the transfer")
    assert len(refused) == 1
    assert "more than the 100 bytes" in refused[0]

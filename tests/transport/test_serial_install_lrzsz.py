"""``mcuota sim device serve-serial``: a simulated device on one end of a socat pty pair takes firmware
from Debian's ``sz --ymodem`` and from ``mcuota flash``, installs it through its bootloader and runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ymodem_pty import pty_pair, run_lrzsz

from conftest import require_tool
from mcuota.device.config import DeviceConfig
from mcuota.device.device import SimDevice
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path

pytestmark = pytest.mark.interop


def _serve(state: Path, port: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mcuota.cli.main", "sim", "device", "serve-serial",
                             "--state", str(state), "--port", port, "--timeout", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _device(mcuota, tmp_path: Path) -> tuple[Path, bytes]:
    state = tmp_path / "dev"
    mcuota("sim", "device", "create", "--state", state, "--layout", "stm32-header-f103", "--firmware",
           sample_path("stm32-header-f103", "1.0.0", "bin"), "--version", "1.0.0", "--serial", "UART1",
           check=True)
    maker = SimDevice(DeviceConfig("X", "stm32-header-f103", "B"))
    image = maker.make_release(sample_path("stm32-header-f103", "2.0.0", "bin").read_bytes(),
                               ImageVersion.parse("2.0.0")).data
    return state, image


def test_sz_installs_on_a_simulated_device(mcuota, tmp_path: Path) -> None:
    sz = require_tool("sz")
    socat = require_tool("socat")
    state, image = _device(mcuota, tmp_path)
    (tmp_path / "app-2.0.0.img").write_bytes(image)
    with pty_pair(socat) as (theirs, ours):
        device = _serve(state, ours)
        sender = run_lrzsz([sz, "--ymodem", "app-2.0.0.img"], theirs, tmp_path)
        out, err = device.communicate(timeout=60)
        sender.wait(timeout=30)
    assert device.returncode == 0, out + err
    assert "installed; runs 2.0.0" in out
    status = json.loads(mcuota("sim", "device", "status", state, "--json", check=True).stdout)
    assert status["running_version"] == "2.0.0"


def test_mcuota_flash_to_a_simulated_device_and_a_refusal(mcuota, tmp_path: Path) -> None:
    socat = require_tool("socat")
    state, image = _device(mcuota, tmp_path)
    good = tmp_path / "good.img"
    good.write_bytes(image)
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x00" * 5000)
    with pty_pair(socat) as (theirs, ours):
        device = _serve(state, ours)
        sent = mcuota("flash", "--port", theirs, "--protocol", "ymodem", junk)
        out, err = device.communicate(timeout=60)
    assert device.returncode == 1, out + err
    assert "refused: WRONG_FORMAT" in out
    assert "still runs 1.0.0" in out
    assert sent.returncode in (0, 1)
    with pty_pair(socat) as (theirs, ours):
        device = _serve(state, ours)
        mcuota("flash", "--port", theirs, "--protocol", "ymodem", good, check=True)
        out, err = device.communicate(timeout=60)
    assert device.returncode == 0, out + err
    assert "runs 2.0.0" in out

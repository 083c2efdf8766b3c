"""``mcuota dfu`` as a user runs it: a virtual board in a directory, and real USB failing in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcuota.image.dfu import add_dfu_suffix


def test_virtual_board_download_list_upload_round_trip(mcuota, sample, tmp_path: Path) -> None:
    board = tmp_path / "board"
    missing = mcuota("dfu", "list", "--virtual", board)
    assert missing.returncode == 2
    assert "creates one" in missing.stderr
    first = mcuota("dfu", "download", "--virtual", board, sample("dapboot-f103", "1.1.0", "bin"))
    assert first.returncode == 0, first.stderr
    assert "it prints v1.1.0" in first.stdout
    listed = mcuota("dfu", "list", "--virtual", board, "--json", check=True)
    assert json.loads(listed.stdout)[0]["runtime"] is True, "the board now runs its application"
    dfu_file = tmp_path / "app.dfu"
    dfu_file.write_bytes(add_dfu_suffix(sample("dapboot-f103", "2.0.0", "bin").read_bytes(),
                                        vid=0x1209, pid=0xDB42))
    second = mcuota("dfu", "download", "--virtual", board, dfu_file, "--json", check=True)
    summary = json.loads(second.stdout)
    assert summary["application"] == "2.0.0"
    assert summary["manifested"]
    out = tmp_path / "read.bin"
    mcuota("dfu", "upload", "--virtual", board, out, "--length", "11128", check=True)
    assert out.read_bytes() == sample("dapboot-f103", "2.0.0", "bin").read_bytes()


def test_a_file_for_another_device_is_one_line_and_leaves_the_board_alone(mcuota, sample, tmp_path: Path
                                                                          ) -> None:
    board = tmp_path / "board"
    mcuota("dfu", "download", "--virtual", board, sample("dapboot-f103", "1.0.0", "bin"), check=True)
    before = (board / "internal.flash").read_bytes()
    foreign = tmp_path / "st.dfu"
    foreign.write_bytes(add_dfu_suffix(sample("dapboot-f103", "2.0.0", "bin").read_bytes(),
                                       vid=0x0483, pid=0xDF11))
    proc = mcuota("dfu", "download", "--virtual", board, foreign)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "0483:df11" in proc.stderr
    assert (board / "internal.flash").read_bytes() == before


def test_real_usb_without_a_device_is_one_clear_line(mcuota, sample) -> None:
    proc = mcuota("dfu", "download", "--device", "ffff:fffe", sample("dapboot-f103", "2.0.0", "bin"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "no USB DFU device ffff:fffe" in proc.stderr or "no USB backend" in proc.stderr


def _search(code: str) -> subprocess.CompletedProcess[str]:
    """Run a device search in a fresh interpreter: pyusb caches the backend it loaded."""
    script = ("from mcuota.transport.dfu_usb import find_devices\n" + code +
              "\ntry:\n    find_devices(**kwargs)\nexcept Exception as exc:\n"
              "    print(type(exc).__name__, exc)\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)


def test_the_usb_search_names_a_missing_backend_or_pyusb() -> None:
    no_backend = _search("kwargs = {'find_library': lambda name: None}")
    assert no_backend.stdout.startswith("UsageError no USB backend: install libusb-1.0")
    no_pyusb = _search("import sys\nsys.modules['usb'] = None\nkwargs = {}")
    assert no_pyusb.stdout.startswith("UsageError USB DFU needs pyusb")

"""``mcuota emulate``: the firmware's console on stdout, a verdict on stderr, exit 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcuota.cli.emulate_cmd import PART_NAMES
from mcuota.cli.main import main
from mcuota.emu.parts import PARTS
from mcuota.samples import sample_path

BANNER = "\r\nInside Test Application!!\r\nsample-app v{} (features {})\r\n> "


def emulate(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["emulate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_elf_prints_its_banner_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = emulate(capsys, sample_path("mcuboot-f407", "2.0.0", "elf"))
    assert code == 0
    assert out == BANNER.format("2.0.0", 3) + "\n"
    assert "uart-idle" in err


def test_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = emulate(capsys, sample_path("gizwits-f103", "1.1.0", "hex"), "--cpu", "cortex-m3",
                           "--json")
    assert code == 0
    report = json.loads(out)
    assert report["uart"] == BANNER.format("1.1.0", 2)
    assert report["version"] == "1.1.0"
    assert report["stop_reason"] == "uart-idle"
    assert report["fault"] is False
    assert report["instructions"] > 0
    assert 0x08003000 <= report["pc"] < 0x08009800
    assert report["part"] == "stm32f103xb"
    assert report["vector_problems"] == []


def test_bin_with_load_address_and_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = emulate(capsys, sample_path("interrupt-f429", "1.0.1", "bin"),
                           "--load-address", "0x08020080", "--input", "version")
    assert code == 0
    assert out == BANNER.format("1.0.1", 1) + "sample-app v1.0.1 (features 1)\r\n> \n"


def test_input_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = emulate(capsys, sample_path("large-f407", "1.1.0", "elf"), "--input", r"led 50\rled x\r")
    assert code == 0
    assert out.endswith("> ok\r\n> error: period must be 11..9999 ms\r\n> \n")


def test_reboot_request_is_not_a_fault(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = emulate(capsys, sample_path("large-f407", "2.0.0", "elf"), "--input", "reboot", "--json")
    assert code == 0
    assert json.loads(out)["stop_reason"] == "reset-requested"


def test_wrong_load_address_is_a_fault_with_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = emulate(capsys, sample_path("dapboot-f103", "2.0.0", "bin"),
                             "--load-address", "0x08003000", "--cpu", "cortex-m3")
    assert code == 1
    assert out == ""
    assert "warning: reset handler 0x08002044 is outside" in err
    assert "fault: invalid-instruction" in err
    assert "erased flash" in err


def test_f4_build_on_an_m3_part_faults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = emulate(capsys, sample_path("mcuboot-f407", "1.0.0", "elf"), "--cpu", "cortex-m3",
                           "--json")
    assert code == 1
    report = json.loads(out)
    assert report["stop_reason"] == "invalid-write"
    assert report["fault"] is True
    assert report["version"] is None
    assert report["vector_problems"] == ["sp-outside-ram"]


def test_erased_image_is_a_fault(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    erased = tmp_path / "erased.bin"
    erased.write_bytes(b"\xff" * 1024)
    code, _, err = emulate(capsys, erased, "--load-address", "0x08020000")
    assert code == 1
    assert "bad-vector-table" in err
    assert "erased" in err


def test_instruction_budget(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = emulate(capsys, sample_path("mcuboot-f407", "1.0.0", "elf"), "--instructions", "500")
    assert code == 0
    assert out == ""
    assert "instruction-limit after 500 instructions" in err


@pytest.mark.parametrize("args", [
    [],                                               # a raw binary needs --load-address
    ["--load-address", "0x08020200", "--instructions", "0"],
    ["--load-address", "0x20000000"],                 # that is RAM
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = emulate(capsys, sample_path("mcuboot-f407", "1.0.0", "bin"), *args)
    assert code == 2
    assert out == ""
    assert err.startswith("mcuota: error: ")


def test_missing_file_and_unknown_cpu_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = emulate(capsys, tmp_path / "missing.elf")
    assert code == 2
    assert "does not exist" in err
    with pytest.raises(SystemExit) as exited:
        emulate(capsys, sample_path("mcuboot-f407", "1.0.0", "elf"), "--cpu", "cortex-m7")
    assert exited.value.code == 2


def test_as_a_user_runs_it(mcuota) -> None:
    proc = mcuota("emulate", sample_path("stm32-header-f103", "2.0.0", "elf"), "--cpu", "cortex-m3")
    assert proc.returncode == 0, proc.stderr
    assert "sample-app v2.0.0 (features 3)" in proc.stdout
    help_text = mcuota("emulate", "--help").stdout
    assert help_text.rstrip().endswith("--input 'version'")
    assert "example:" in help_text



def test_part_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert tuple(PARTS) == PART_NAMES
    code, out, _ = emulate(capsys, sample_path("nrf52840", "1.1.0", "bin"), "--load-address", "0xC200",
                           "--part", "nrf52840", "--json")
    assert code == 0
    assert json.loads(out)["version"] == "1.1.0"
    code, _, err = emulate(capsys, sample_path("nrf52840", "1.1.0", "elf"), "--part", "nrf52840",
                           "--cpu", "cortex-m3")
    assert code == 2
    assert "has a cortex-m4" in err

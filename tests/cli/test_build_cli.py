"""``mcuota image build / verify / checksum`` run as a user runs them: a child process, real files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from mcuota.cli.image_build_cmd import CHECKSUM_HELP
from mcuota.image import gizwits, interrupt, stm32_header
from mcuota.image.checksums import CHECKSUM_NAMES, checksum

Run = Callable[..., subprocess.CompletedProcess[str]]
Sample = Callable[..., Path]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mcuota: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_of_each_command_ends_with_an_example(mcuota: Run) -> None:
    for verb in ("build", "verify", "checksum"):
        proc = mcuota("image", verb, "--help", check=True)
        tail = proc.stdout.rstrip().splitlines()
        assert tail[-2 if verb == "build" else -1].strip().startswith("mcuota image " + verb)
        assert "example:" in proc.stdout


def test_checksum_help_lists_every_registered_algorithm() -> None:
    assert ", ".join(CHECKSUM_NAMES) == CHECKSUM_HELP


def test_start_up_does_not_import_the_format_modules() -> None:
    code = ("import sys; from mcuota.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m in ('mcuota.image.checksums', 'mcuota.image.gizwits', "
            "'mcuota.image.interrupt', 'mcuota.image.stm32_header')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------------ build

@pytest.mark.parametrize(("fmt", "target", "options"), [
    ("stm32-header", "stm32-header-f103", ["--version", "0x104"]),
    ("interrupt", "interrupt-f429", ["--version", "1.1.0", "--git-sha", "a1b2c3d4"]),
    ("gizwits", "gizwits-f103", ["--version", "01010000"]),
])
def test_bin_hex_and_elf_inputs_build_the_same_image(mcuota: Run, sample: Sample, tmp_path: Path, *,
                                                     fmt: str, target: str, options: list[str]) -> None:
    images = {}
    for ext in ("bin", "hex", "elf"):
        out = tmp_path / f"{ext}.img"
        proc = mcuota("image", "build", "--format", fmt, *options, sample(target, "1.1.0", ext), out,
                      check=True)
        assert proc.stdout.startswith(f"wrote {out}")
        images[ext] = out.read_bytes()
    assert images["bin"] == images["hex"] == images["elf"]


def test_stm32_header_image(mcuota: Run, sample: Sample, tmp_path: Path) -> None:
    app = sample("stm32-header-f103", "2.0.0", "bin")
    out = tmp_path / "ota_image.bin"
    mcuota("image", "build", "--format", "stm32-header", "--version", "4", app, out, check=True)
    image = out.read_bytes()
    assert image == stm32_header.build_stm32_image(app.read_bytes(), 4)
    assert stm32_header.parse_stm32_image(image).header.crc == zlib.crc32(app.read_bytes())
    stm = tmp_path / "stm.bin"
    mcuota("image", "build", "--format", "stm32-header", "--crc", "crc32-stm32", "--version", "4", app, stm,
           check=True)
    assert stm32_header.describe(stm.read_bytes())["crc_variant"] == "crc32-stm32"


def test_interrupt_image(mcuota: Run, sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "app.img"
    mcuota("image", "build", "--format", "interrupt", "--version", "2.0.0", "--git-sha", "cafef00d",
           sample("interrupt-f429", "2.0.0", "elf"), out, check=True)
    described = interrupt.describe(out.read_bytes())
    assert (described["vector_addr"], described["version"], described["git_sha"]) == (
        "0x08020080", "2.0.0", "cafef00d")
    assert out.read_bytes()[0x80:] == sample("interrupt-f429", "2.0.0", "bin").read_bytes()


def test_interrupt_loader_goes_to_slot_one(mcuota: Run, tmp_path: Path) -> None:
    app = tmp_path / "loader.bin"
    app.write_bytes(b"\x00\x00\x02\x20" + bytes(60))
    out = tmp_path / "loader.img"
    mcuota("image", "build", "--format", "interrupt", "--type", "loader", app, out, check=True)
    header = interrupt.parse_interrupt_image(out.read_bytes()).header
    assert (header.image_type, header.vector_addr) == (1, 0x08004080)


def test_gizwits_writes_the_bin_and_its_sidecar(mcuota: Run, sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "app.bin"
    mcuota("image", "build", "--format", "gizwits", "--version", "3.3.6", "--hard-ver", "00000001",
           sample("gizwits-f103", "2.0.0", "hex"), out, check=True)
    payload = sample("gizwits-f103", "2.0.0", "bin").read_bytes()
    assert out.read_bytes() == payload
    assert json.loads(Path(f"{out}.json").read_text()) == {
        "format": "gizwits", "size": len(payload),
        "md5": hashlib.md5(payload, usedforsecurity=False).hexdigest(),
        "soft_ver": "03030006", "hard_ver": "00000001",
    }


# ------------------------------------------------------------------------------ build: bad input

@pytest.mark.parametrize(("args", "fragments"), [
    (["--format", "stm32-header", "--version", "4294967296"], ["out of range (0..4294967295)"]),
    (["--format", "stm32-header", "--version", "1.2.3"], ["must be an integer"]),
    (["--format", "interrupt", "--version", "1.2.256"], ["patch 256 is out of range (0..255)"]),
    (["--format", "interrupt", "--version", "256.0.0"], ["major 256 is out of range"]),
    (["--format", "interrupt", "--version", "one"], ["invalid version 'one'"]),
    (["--format", "gizwits", "--version", "0303006"], ["exactly 8 ASCII digits"]),
    (["--format", "gizwits", "--version", "100.0.0"], ["does not fit a gizwits softVer"]),
    (["--format", "gizwits"], ["gizwits needs --version"]),
    (["--format", "gizwits", "--version", "03030006", "--crc", "crc32"], ["--crc applies only to"]),
    (["--format", "stm32-header", "--slot", "0x08020000"], ["--slot applies only to --format interrupt"]),
    (["--format", "interrupt", "--header-region", "0x40"], ["not 128-byte aligned"]),
    (["--format", "stm32-header", "--max-size", "1K"], ["over the 1024-byte limit"]),
])
def test_bad_options_fail_in_one_line_and_write_nothing(mcuota: Run, sample: Sample, tmp_path: Path,
                                                        args: list[str], fragments: list[str]) -> None:
    out = tmp_path / "out.bin"
    proc = mcuota("image", "build", *args, sample("gizwits-f103", "1.0.0", "bin"), out)
    assert_one_line_error(proc, 2, *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("fmt", "target", "fragments"), [
    ("interrupt", "gizwits-f103", ["linked at 0x08003000", "at 0x08020080"]),
    ("gizwits", "interrupt-f429", ["linked at 0x08020080", "at 0x08003000"]),
    ("stm32-header", "gizwits-f103", ["linked at 0x08003000", "at 0x08004400"]),
])
def test_input_linked_for_another_place_is_refused(mcuota: Run, sample: Sample, tmp_path: Path, *,
                                                   fmt: str, target: str, fragments: list[str]) -> None:
    out = tmp_path / "out.bin"
    proc = mcuota("image", "build", "--format", fmt, "--version", "01000000" if fmt == "gizwits" else "1",
                  sample(target, "1.0.0", "elf"), out)
    assert_one_line_error(proc, 2, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_oversized_gizwits_application(mcuota: Run, sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "big.bin"
    proc = mcuota("image", "build", "--format", "gizwits", "--version", "01000000",
                  sample("large-f407", "1.0.0", "bin"), out)
    assert_one_line_error(proc, 2, "over the 26624-byte APP partition")
    assert list(tmp_path.iterdir()) == []


def test_oversized_interrupt_image_for_its_slot(mcuota: Run, tmp_path: Path) -> None:
    app = tmp_path / "app.bin"
    app.write_bytes(b"\0" * (112 * 1024))
    proc = mcuota("image", "build", "--format", "interrupt", "--type", "loader", app, tmp_path / "out.img")
    assert_one_line_error(proc, 2, "over the 114688-byte slot")
    assert not (tmp_path / "out.img").exists()


@pytest.mark.parametrize(("name", "content", "fragments"), [
    ("garbage.hex", b"\x00\x01\x02 not intel hex", ["has a .hex name but its content is not hex"]),
    ("broken.hex", b":10000000ZZ\n", ["broken.hex"]),
    ("empty.bin", b"", ["empty"]),
    ("missing.bin", None, ["does not exist"]),
])
def test_unusable_input_files(mcuota: Run, tmp_path: Path, *, name: str, content: bytes | None,
                              fragments: list[str]) -> None:
    source = tmp_path / name
    if content is not None:
        source.write_bytes(content)
    out = tmp_path / "out.img"
    proc = mcuota("image", "build", "--format", "interrupt", source, out)
    assert_one_line_error(proc, 2, *fragments)
    assert not out.exists()


def test_output_must_be_a_raw_binary_name(mcuota: Run, sample: Sample, tmp_path: Path) -> None:
    proc = mcuota("image", "build", "--format", "interrupt", sample("interrupt-f429", "1.0.0", "bin"),
                  tmp_path / "out.hex")
    assert_one_line_error(proc, 2, "writes a raw binary")


def test_gizwits_writes_both_files_or_neither(mcuota: Run, sample: Sample, tmp_path: Path) -> None:
    out = tmp_path / "app.bin"
    Path(f"{out}.json").mkdir()  # the sidecar cannot be written
    proc = mcuota("image", "build", "--format", "gizwits", "--version", "01000000",
                  sample("gizwits-f103", "1.0.0", "bin"), out)
    assert_one_line_error(proc, 2, "cannot write", "app.bin.json")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["app.bin.json"]  # just the directory we made


def test_missing_output_directory(mcuota: Run, sample: Sample, tmp_path: Path) -> None:
    proc = mcuota("image", "build", "--format", "interrupt", sample("interrupt-f429", "1.0.0", "bin"),
                  tmp_path / "nowhere" / "out.img")
    assert_one_line_error(proc, 2, "does not exist")


# ------------------------------------------------------------------------------------------ check

@pytest.fixture
def built(mcuota: Run, sample: Sample, tmp_path: Path) -> dict[str, Path]:
    paths = {"stm32-header": tmp_path / "s.img", "interrupt": tmp_path / "i.img",
             "gizwits": tmp_path / "g.bin"}
    mcuota("image", "build", "--format", "stm32-header", "--version", "7",
           sample("stm32-header-f103", "1.0.0", "bin"), paths["stm32-header"], check=True)
    mcuota("image", "build", "--format", "interrupt", "--version", "1.0.0",
           sample("interrupt-f429", "1.0.0", "bin"), paths["interrupt"], check=True)
    mcuota("image", "build", "--format", "gizwits", "--version", "01000000",
           sample("gizwits-f103", "1.0.0", "bin"), paths["gizwits"], check=True)
    return paths


def test_check_recognises_and_accepts_good_images(mcuota: Run, built: dict[str, Path]) -> None:
    for fmt, path in built.items():
        proc = mcuota("image", "verify", path, check=True)
        assert f"valid {fmt}" in proc.stdout
    assert "valid gizwits" in mcuota("image", "verify", f"{built['gizwits']}.json", check=True).stdout
    assert mcuota("image", "verify", "--slot", "0x08020000", built["interrupt"]).returncode == 0
    assert "crc32 0x" in mcuota("image", "verify", "--crc", "crc32", built["stm32-header"], check=True).stdout


@pytest.mark.parametrize("fmt", ["stm32-header", "interrupt", "gizwits"])
def test_a_corrupted_byte_fails_verification_with_exit_1(mcuota: Run, built: dict[str, Path],
                                                         fmt: str) -> None:
    path = built[fmt]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert_one_line_error(mcuota("image", "verify", path), 1, "mismatch")


def test_wrong_crc_variant_and_wrong_slot_fail_with_exit_1(mcuota: Run, built: dict[str, Path]) -> None:
    assert_one_line_error(mcuota("image", "verify", "--crc", "crc32-stm32", built["stm32-header"]), 1,
                          "crc32-stm32 mismatch")
    assert_one_line_error(mcuota("image", "verify", "--slot", "0x08004000", built["interrupt"]), 1,
                          "outside the image in slot 0x08004000")


def test_malformed_images_fail_verification(mcuota: Run, built: dict[str, Path], tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.img"
    truncated.write_bytes(built["stm32-header"].read_bytes()[:10])
    assert_one_line_error(mcuota("image", "verify", "--format", "stm32-header", truncated), 1,
                          "truncated header: 10 of 16")
    cut = tmp_path / "cut.img"
    cut.write_bytes(built["interrupt"].read_bytes()[:-5])
    assert_one_line_error(mcuota("image", "verify", cut), 1, "truncated image")
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(bytes(range(256)) * 4)
    assert_one_line_error(mcuota("image", "verify", garbage), 1, "bad magic")
    assert_one_line_error(mcuota("image", "verify", "--format", "interrupt", garbage), 1,
                          "bad magic 0x0100 at offset 0")
    Path(f"{built['gizwits']}.json").write_text('{"format": "gizwits", "size": 1}')
    assert_one_line_error(mcuota("image", "verify", built["gizwits"]), 1, '"md5"')


def test_invalidated_interrupt_image_is_reported_as_such(mcuota: Run, built: dict[str, Path]) -> None:
    path = built["interrupt"]
    path.write_bytes(interrupt.invalidate_interrupt_image(path.read_bytes()))
    assert_one_line_error(mcuota("image", "verify", "--format", "interrupt", path), 1, "invalidated")


# --------------------------------------------------------------------------------------- checksum

def test_checksum_prints_every_algorithm_by_default(mcuota: Run, sample: Sample) -> None:
    path = sample("dapboot-f103", "1.0.0", "bin")
    lines = mcuota("image", "checksum", path, check=True).stdout.splitlines()
    printed = dict(line.split() for line in lines)
    assert list(printed) == list(CHECKSUM_NAMES)
    for name, value in printed.items():
        assert value == checksum(name, path.read_bytes()).hex()


def test_checksum_json_and_firmware_decoding(mcuota: Run, sample: Sample) -> None:
    binary = sample("gizwits-f103", "1.1.0", "bin")
    from_bin = json.loads(mcuota("image", "checksum", "--json", "--algo", "md5", "--algo", "crc32-stm32",
                                 binary, check=True).stdout)
    assert from_bin == {"md5": checksum("md5", binary.read_bytes()).hex(),
                        "crc32-stm32": checksum("crc32-stm32", binary.read_bytes()).hex()}
    hex_file = sample("gizwits-f103", "1.1.0", "hex")
    from_hex = json.loads(mcuota("image", "checksum", "--json", "--firmware", "--algo", "md5",
                                 "--algo", "crc32-stm32", hex_file, check=True).stdout)
    assert from_hex == from_bin
    raw_hex = json.loads(mcuota("image", "checksum", "--json", "--algo", "md5", hex_file, check=True).stdout)
    assert raw_hex["md5"] == checksum("md5", hex_file.read_bytes()).hex()


def test_checksum_errors(mcuota: Run, tmp_path: Path) -> None:
    assert_one_line_error(mcuota("image", "checksum", "--algo", "crc64", tmp_path), 2,
                          "unknown checksum 'crc64'")
    assert_one_line_error(mcuota("image", "checksum", tmp_path / "nope.bin"), 2, "does not exist")
    assert_one_line_error(mcuota("image", "checksum", tmp_path), 2, "is a directory")


def test_gizwits_constants_used_in_messages_are_the_seed_map() -> None:
    assert (gizwits.APP_ADDRESS, gizwits.APP_SIZE) == (0x08003000, 26 * 1024)
    assert stm32_header.APP_ADDRESS == 0x08004400

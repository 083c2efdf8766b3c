"""``mcuota image sign | verify`` as a user runs them, on the shipped MCUboot sample.

Every input container gives the same image; HEX output carries the same bytes at the slot address.
Failures get the same care as successes: one line on stderr, exit 2 (1 when verification fails), no
traceback and no output file, not even a temporary one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcuota.image.firmware import load_firmware, parse_firmware, render_firmware
from mcuota.image.keys import generate_private_key
from mcuota.image.mcuboot import BOOT_MAGIC, parse_image, verify_image

COMMON = ["--version", "2.0.0+7", "--header-size", "0x200", "--slot-size", "0x20000"]
SLOT_ADDRESS = 0x08020000


def assert_clean_failure(proc: subprocess.CompletedProcess[str], message: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in lines[0], lines[0]


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "signing.pem"
    path.write_bytes(generate_private_key("ed25519").pem())
    return path


@pytest.mark.parametrize("verb", ["sign", "verify"])
def test_help_ends_with_an_example(mcuota, verb: str) -> None:
    proc = mcuota("image", verb, "--help")
    assert proc.returncode == 0
    lines = proc.stdout.rstrip().splitlines()
    assert lines[-2] == "example:"
    assert lines[-1].startswith(f"  mcuota image {verb} ")


def test_every_input_container_signs_the_same_image(mcuota, sample, key: Path, tmp_path: Path) -> None:
    srec = tmp_path / "app.srec"
    srec.write_bytes(render_firmware(load_firmware(sample("mcuboot-f407", "2.0.0", "hex")), "srec"))
    sources = [sample("mcuboot-f407", "2.0.0", ext) for ext in ("bin", "hex", "elf")] + [srec]
    images = []
    for index, source in enumerate(sources):
        out = tmp_path / f"signed-{index}.bin"
        proc = mcuota("image", "sign", "--key", key, *COMMON, "--pad-header", source, out)
        assert proc.returncode == 0, proc.stderr
        assert "MCUboot image 2.0.0+7, signed with ed25519" in proc.stdout
        images.append(out.read_bytes())
    assert all(image == images[0] for image in images)
    image = parse_image(images[0])
    assert image.payload(images[0]) == Path(sample("mcuboot-f407", "2.0.0", "bin")).read_bytes()


def test_hex_output_sits_at_the_slot_address(mcuota, sample, key: Path, tmp_path: Path) -> None:
    binary, hexfile = tmp_path / "signed.bin", tmp_path / "signed.hex"
    flags = ["--pad-header", "--confirm", "--align", "8"]
    assert mcuota("image", "sign", "-k", key, *COMMON, *flags, sample("mcuboot-f407", "2.0.0", "hex"),
                  binary).returncode == 0
    proc = mcuota("image", "sign", "-k", key, *COMMON, *flags, sample("mcuboot-f407", "2.0.0", "hex"),
                  hexfile)
    assert proc.returncode == 0, proc.stderr
    firmware = load_firmware(hexfile)
    assert firmware.start == SLOT_ADDRESS
    assert firmware.end == SLOT_ADDRESS + 0x20000
    assert firmware.contiguous(0xFF) == binary.read_bytes()
    assert firmware.contiguous(0xFF)[-16:] == BOOT_MAGIC
    proc = mcuota("image", "verify", "--key", key, hexfile)
    assert proc.returncode == 0, proc.stderr


def test_raw_binary_to_hex_needs_an_address(mcuota, sample, key: Path, tmp_path: Path) -> None:
    out = tmp_path / "signed.hex"
    app = sample("mcuboot-f407", "2.0.0", "bin")
    assert_clean_failure(mcuota("image", "sign", "-k", key, *COMMON, "--pad-header", app, out),
                         "give --hex-addr")
    assert not out.exists()
    proc = mcuota("image", "sign", "-k", key, *COMMON, "--pad-header", "--hex-addr", "0x08020000", app, out)
    assert proc.returncode == 0, proc.stderr
    assert load_firmware(out).start == SLOT_ADDRESS


def test_verify_reports_and_exits(mcuota, sample, key: Path, tmp_path: Path) -> None:
    signed = tmp_path / "signed.bin"
    assert mcuota("image", "sign", "-k", key, *COMMON, "--pad-header", "-s", "auto",
                  sample("mcuboot-f407", "2.0.0", "bin"), signed).returncode == 0
    ok = mcuota("image", "verify", "--key", key, signed)
    assert ok.returncode == 0, ok.stderr
    assert "valid, version 2.0.0+7" in ok.stdout
    assert "ED25519 signature verified with trusted key #1" in ok.stdout

    other = tmp_path / "other.pem"
    other.write_bytes(generate_private_key("ed25519").pem())
    both = mcuota("image", "verify", "--key", other, "--key", key, "--json", signed)
    assert both.returncode == 0
    report = json.loads(both.stdout)
    assert report["status"] == "ok"
    assert report["key_index"] == 1
    assert report["version"] == "2.0.0+7"
    assert report["security_counter"] == 0x02000000
    assert report["signature_checked"] is True

    unchecked = mcuota("image", "verify", "--json", signed)
    assert unchecked.returncode == 0
    assert json.loads(unchecked.stdout)["signature_checked"] is False

    assert_clean_failure(mcuota("image", "verify", "--key", other, signed),
                         "invalid (no_matching_signature)", 1)
    wrong = mcuota("image", "verify", "--key", other, "--json", signed)
    assert wrong.returncode == 1
    assert json.loads(wrong.stdout)["status"] == "no_matching_signature"

    data = bytearray(signed.read_bytes())
    data[0x400] ^= 0xFF
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(bytes(data))
    assert_clean_failure(mcuota("image", "verify", "--key", key, corrupt), "invalid (bad_hash)", 1)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(signed.read_bytes()[:-10])
    assert_clean_failure(mcuota("image", "verify", "--key", key, truncated),
                         "invalid (malformed): truncated", 1)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00garbage!" * 50)
    assert_clean_failure(mcuota("image", "verify", garbage), "invalid (malformed): bad magic", 1)
    text = tmp_path / "text.hex"
    text.write_text(":this is not hex\n")
    assert_clean_failure(mcuota("image", "verify", text), "invalid (malformed)", 1)
    assert_clean_failure(mcuota("image", "verify", tmp_path / "missing.bin"), "does not exist", 2)
    assert_clean_failure(mcuota("image", "verify", "--key", tmp_path / "nokey.pem", signed),
                         "does not exist", 2)


def test_encrypted_signing_key(mcuota, sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_private_key("ecdsa-p256")
    path = tmp_path / "enc.pem"
    path.write_bytes(key.pem(b"pw"))
    out = tmp_path / "signed.bin"
    app = sample("mcuboot-f407", "2.0.0", "bin")
    monkeypatch.setenv("MCUOTA_TEST_SIGN_PW", "pw")
    proc = mcuota("image", "sign", "-k", path, *COMMON, "--pad-header", "--password-env",
                  "MCUOTA_TEST_SIGN_PW", app, out)
    assert proc.returncode == 0, proc.stderr
    assert verify_image(out.read_bytes(), [key.public()]).ok
    out.unlink()
    monkeypatch.setenv("MCUOTA_TEST_SIGN_PW", "wrong")
    assert_clean_failure(mcuota("image", "sign", "-k", path, *COMMON, "--pad-header", "--password-env",
                                "MCUOTA_TEST_SIGN_PW", app, out), "wrong password")
    assert_clean_failure(mcuota("image", "sign", "-k", path, *COMMON, "--pad-header", app, out),
                         "password-protected")
    assert names(tmp_path) == ["enc.pem"]


@pytest.mark.parametrize(("args", "message"), [
    (["--version", "256.0.0"], "version major 256 is out of range"),
    (["--version", "1.2.3+4294967296"], "version build 4294967296 is out of range"),
    (["--version", "1.x"], "invalid version '1.x'"),
    (["--slot-size", "0x2000"], "does not fit the slot of 8192 bytes (0x2000)"),
    (["--security-counter", "0x100000000"], "does not fit 32 bits"),
    (["--dependencies", "1,1.0"], "invalid --dependencies"),
    (["--dependencies", "(300,1.0)"], "dependency image id 300"),
    (["--erased-val", "0x55"], "erased flash reads 0 or 0xff"),
    (["--align", "3"], "invalid choice"),
    (["--custom-tlv", "0x10", "x"], "vendor range"),
    (["--load-addr", "0x20000000", "--rom-fixed", "0x08020000"], "cannot both be set"),
])
def test_bad_options_fail_cleanly(mcuota, sample, key: Path, tmp_path: Path, args: list[str],  # noqa: PLR0917
                                  message: str) -> None:
    out = tmp_path / "signed.bin"
    proc = mcuota("image", "sign", "-k", key, *COMMON, "--pad-header", *args,
                  sample("mcuboot-f407", "2.0.0", "bin"), out)
    assert_clean_failure(proc, message)
    assert names(tmp_path) == ["signing.pem"]


def test_image_larger_than_slot_names_both_sizes(mcuota, sample, key: Path, tmp_path: Path) -> None:
    app = sample("large-f407", "2.0.0", "bin")
    out = tmp_path / "signed.bin"
    proc = mcuota("image", "sign", "-k", key, *COMMON, "--pad-header", app, out)
    assert_clean_failure(proc, "does not fit the slot of 131072 bytes (0x20000)")
    size = Path(app).stat().st_size
    assert "image of " in proc.stderr
    assert "-byte trailer" in proc.stderr
    assert int(proc.stderr.split("image of ")[1].split(" ")[0]) > size
    assert names(tmp_path) == ["signing.pem"]
    big = mcuota("image", "sign", "-k", key, *COMMON[:4], "--slot-size", "0x40000", "--pad-header", app, out)
    assert big.returncode == 0, big.stderr


def test_bad_inputs_fail_cleanly(mcuota, sample, key: Path, tmp_path: Path) -> None:
    out = tmp_path / "signed.bin"
    app = sample("mcuboot-f407", "2.0.0", "bin")
    assert_clean_failure(mcuota("image", "sign", "-k", key, *COMMON, app, out),
                         "first 0x200 bytes of the input are not empty")
    assert_clean_failure(mcuota("image", "sign", "-k", key, *COMMON, "--pad-header", tmp_path / "none.bin",
                                out),
                         "does not exist")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert_clean_failure(mcuota("image", "sign", *COMMON, "--pad-header", empty, out), "is empty")
    broken_hex = tmp_path / "broken.hex"
    broken_hex.write_text(":10000000")
    assert_clean_failure(mcuota("image", "sign", *COMMON, "--pad-header", broken_hex, out), "broken.hex")
    garbage_key = tmp_path / "garbage.pem"
    garbage_key.write_bytes(b"\x00\x01\x02")
    assert_clean_failure(mcuota("image", "sign", "-k", garbage_key, *COMMON, "--pad-header", app, out),
                         "not a PEM key file")
    public = tmp_path / "public.pem"
    public.write_bytes(generate_private_key("ed25519").public().pem())
    assert_clean_failure(mcuota("image", "sign", "-k", public, *COMMON, "--pad-header", app, out),
                         "signing needs the private key")
    assert_clean_failure(mcuota("image", "sign", "-k", key, *COMMON, "--pad-header", app,
                                tmp_path / "nodir" / "out.bin"), "does not exist")
    missing = mcuota("image", "sign", "-k", key, "--version", "1.0", app, out)
    assert_clean_failure(missing, "required")
    assert names(tmp_path) == sorted(["signing.pem", "empty.bin", "broken.hex", "garbage.pem", "public.pem"])


def test_unsigned_image_and_pad(mcuota, sample, tmp_path: Path) -> None:
    out = tmp_path / "unsigned.bin"
    proc = mcuota("image", "sign", *COMMON, "--pad-header", "--pad", sample("mcuboot-f407", "2.0.0", "bin"),
                  out)
    assert proc.returncode == 0, proc.stderr
    assert "unsigned (SHA-256 only)" in proc.stdout
    assert "padded with a test trailer" in proc.stdout
    data = out.read_bytes()
    assert len(data) == 0x20000
    assert data[-16:] == BOOT_MAGIC
    assert verify_image(data).ok


def test_start_up_stays_lean() -> None:
    """Building the parser loads no crypto and no ELF reader; signing a .bin never loads pyelftools."""
    code = ("import sys, mcuota.cli.main as m; m.build_parser(); "
            "print(sorted(n for n in ('cryptography', 'elftools', 'mcuota.image.keys') if n in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_signing_a_bin_does_not_load_the_elf_reader(sample, key: Path, tmp_path: Path) -> None:
    app = sample("mcuboot-f407", "2.0.0", "bin")
    code = ("import sys, mcuota.cli.main as m; "
            f"rc = m.main(['image', 'sign', '-k', {str(key)!r}, '-v', '1.0', '-H', '0x200', '-S', '0x20000', "
            f"'--pad-header', {str(app)!r}, {str(tmp_path / 'o.bin')!r}]); "
            "print(rc, 'elftools' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "0 False"
    assert parse_firmware((tmp_path / "o.bin").read_bytes()).source_kind == "bin"

"""Our MCUboot images and keys against imgtool 2.5 itself, run as a subprocess, on the shipped sample.

Both directions for every key type: imgtool verifies what we sign, we verify what imgtool signs, and keys
move between the tools. For Ed25519 (deterministic signatures) our ``mcuota image sign`` output is
byte-identical to ``imgtool sign`` given the same key, payload and options: that pins the header, the
TLV order, the padding and the trailer, not just "a valid image".
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import require_tool, run_mcuota
from mcuota.image.firmware import load_firmware
from mcuota.image.keys import KEY_TYPES, generate_private_key, load_private_key_file, load_public_key_file
from mcuota.image.mcuboot import VerifyStatus, parse_image, verify_image
from mcuota.samples import sample_path

pytestmark = pytest.mark.interop

COMMON = ["--version", "1.2.3+4", "--header-size", "0x200", "--slot-size", "0x20000"]


def run(*args: str | Path, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    # A new session has no controlling terminal, so imgtool's getpass reads a password from stdin.
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False,
                          input=input_text, start_new_session=True)


@pytest.fixture(scope="module")
def imgtool() -> str:
    return require_tool("imgtool")


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory, imgtool: str) -> Path:
    """For each type: ``imgtool-<type>.pem`` made by imgtool keygen and ``mcuota-<type>.pem`` made by us."""
    directory = tmp_path_factory.mktemp("keys")
    for key_type in KEY_TYPES:
        proc = run(imgtool, "keygen", "-t", key_type, "-k", directory / f"imgtool-{key_type}.pem")
        assert proc.returncode == 0, proc.stderr
        proc = run_mcuota("keys", "generate", "--type", key_type, "--out",
                          directory / f"mcuota-{key_type}.pem")
        assert proc.returncode == 0, proc.stderr
    return directory


@pytest.fixture(scope="module")
def app() -> Path:
    """The MCUboot sample, linked at 0x08020200 for a 0x200 header: signed with --pad-header."""
    return sample_path("mcuboot-f407", "2.0.0", "bin")


def imgtool_sign(imgtool: str, key: Path | None, flags: list[str], src: Path, out: Path) -> bytes:
    proc = run(imgtool, "sign", *(["-k", key] if key else []), *COMMON, *flags, src, out)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def mcuota_sign(key: Path | None, flags: list[str], src: Path, out: Path) -> bytes:
    proc = run_mcuota("image", "sign", *(["--key", key] if key else []), *COMMON, *flags, src, out)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


IDENTICAL_CASES = [
    [],
    ["--pad"],
    ["--confirm"],
    ["--security-counter", "7"],
    ["--security-counter", "auto", "--confirm"],
    ["--public-key-format", "full"],
    ["--public-key-format", "full", "--pad", "--security-counter", "0x10203"],
    ["--align", "8", "--confirm"],
    ["--align", "32", "--pad"],
    ["--align", "8", "--max-align", "16", "--confirm"],
    ["--align", "4", "--max-sectors", "32", "--pad"],
    ["--erased-val", "0", "--confirm", "--align", "4"],
    ["--overwrite-only", "--confirm", "--align", "8"],
    ["--dependencies", "(1,1.2.3+4),(2,0.1)"],
    ["--load-addr", "0x20000000"],
    ["--rom-fixed", "0x08020000", "--non-bootable"],
    ["--custom-tlv", "0xa0", "0x0102ff", "--custom-tlv", "0x1234", "text"],
]


@pytest.mark.parametrize("flags", IDENTICAL_CASES, ids=lambda f: " ".join(f) or "plain")
def test_ed25519_output_is_byte_identical(imgtool: str, key_dir: Path, app: Path, tmp_path: Path,
                                          flags: list[str]) -> None:
    key = key_dir / "mcuota-ed25519.pem"
    theirs = imgtool_sign(imgtool, key, ["--pad-header", *flags], app, tmp_path / "imgtool.bin")
    ours = mcuota_sign(key, ["--pad-header", *flags], app, tmp_path / "mcuota.bin")
    assert ours == theirs
    assert verify_image(ours, [load_public_key_file(key)]).ok


def test_unsigned_and_header_room_inputs_are_byte_identical(imgtool: str, app: Path, tmp_path: Path) -> None:
    theirs = imgtool_sign(imgtool, None, ["--pad-header", "--confirm"], app, tmp_path / "imgtool.bin")
    assert mcuota_sign(None, ["--pad-header", "--confirm"], app, tmp_path / "mcuota.bin") == theirs
    roomy = tmp_path / "with-room.bin"
    roomy.write_bytes(bytes(0x200) + app.read_bytes())
    theirs = imgtool_sign(imgtool, None, [], roomy, tmp_path / "imgtool-room.bin")
    assert mcuota_sign(None, [], roomy, tmp_path / "mcuota-room.bin") == theirs


def test_imgtool_key_signs_identically(imgtool: str, key_dir: Path, app: Path, tmp_path: Path) -> None:
    key = key_dir / "imgtool-ed25519.pem"
    flags = ["--pad-header", "--confirm", "--align", "8"]
    theirs = imgtool_sign(imgtool, key, flags, app, tmp_path / "imgtool.bin")
    assert mcuota_sign(key, flags, app, tmp_path / "mcuota.bin") == theirs


@pytest.mark.parametrize("flags", [["--pad-header"], ["--pad-header", "--confirm", "--align", "8"]],
                         ids=["plain", "confirm"])
def test_hex_in_hex_out_matches(imgtool: str, key_dir: Path, sample, tmp_path: Path,
                                flags: list[str]) -> None:
    key = key_dir / "mcuota-ed25519.pem"
    src = Path(sample("mcuboot-f407", "2.0.0", "hex"))
    imgtool_sign(imgtool, key, flags, src, tmp_path / "imgtool.hex")
    mcuota_sign(key, flags, src, tmp_path / "mcuota.hex")
    theirs, ours = load_firmware(tmp_path / "imgtool.hex"), load_firmware(tmp_path / "mcuota.hex")
    assert ours.segments == theirs.segments
    assert ours.start == 0x08020000
    binary = mcuota_sign(key, flags, Path(sample("mcuboot-f407", "2.0.0", "bin")), tmp_path / "m.bin")
    assert ours.contiguous()[: len(binary)] == binary[: ours.end - ours.start]


@pytest.mark.parametrize("origin", ["imgtool", "mcuota"])
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_imgtool_verifies_our_images(imgtool: str, key_dir: Path, app: Path, tmp_path: Path,  # noqa: PLR0917
                                     key_type: str, origin: str) -> None:
    key = key_dir / f"{origin}-{key_type}.pem"
    out = tmp_path / "signed.bin"
    mcuota_sign(key, ["--pad-header", "--security-counter", "auto", "--confirm", "--align", "8"], app, out)
    proc = run(imgtool, "verify", "-k", key, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Image was correctly validated" in proc.stdout
    assert "Image version: 1.2.3+4" in proc.stdout
    other = key_dir / f"{'mcuota' if origin == 'imgtool' else 'imgtool'}-{key_type}.pem"
    assert run(imgtool, "verify", "-k", other, out).returncode == 1  # and it is the key that matters


@pytest.mark.parametrize("origin", ["imgtool", "mcuota"])
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_we_verify_imgtool_images(imgtool: str, key_dir: Path, app: Path, tmp_path: Path,  # noqa: PLR0917
                                  key_type: str, origin: str) -> None:
    key = key_dir / f"{origin}-{key_type}.pem"
    out = tmp_path / "signed.bin"
    data = imgtool_sign(imgtool, key, ["--pad-header", "--public-key-format", "full", "--pad"], app, out)
    result = verify_image(data, [load_public_key_file(key)])
    assert result.status is VerifyStatus.OK, result.reason
    assert result.key_type == key_type
    assert str(result.version) == "1.2.3+4"
    public = tmp_path / "pub.pem"
    proc = run_mcuota("keys", "public", key, "--out", public)
    assert proc.returncode == 0, proc.stderr
    proc = run_mcuota("image", "verify", "--key", public, out)
    assert proc.returncode == 0, proc.stderr
    assert "valid, version 1.2.3+4" in proc.stdout
    other = key_dir / f"{'mcuota' if origin == 'imgtool' else 'imgtool'}-{key_type}.pem"
    assert run_mcuota("image", "verify", "--key", other, out).returncode == 1


def test_hash_only_both_ways(imgtool: str, app: Path, tmp_path: Path) -> None:
    ours = tmp_path / "ours.bin"
    mcuota_sign(None, ["--pad-header"], app, ours)
    proc = run(imgtool, "verify", ours)
    assert proc.returncode == 0
    assert "correctly validated" in proc.stdout
    theirs = tmp_path / "theirs.bin"
    imgtool_sign(imgtool, None, ["--pad-header"], app, theirs)
    proc = run_mcuota("image", "verify", theirs)
    assert proc.returncode == 0
    assert "signature not checked" in proc.stdout


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_public_key_exports_match_getpub(imgtool: str, key_dir: Path, key_type: str) -> None:
    for origin in ("imgtool", "mcuota"):
        key = key_dir / f"{origin}-{key_type}.pem"
        theirs_c = run(imgtool, "getpub", "-k", key)
        ours_c = run_mcuota("keys", "public", key, "--format", "c")
        assert theirs_c.returncode == ours_c.returncode == 0, theirs_c.stderr + ours_c.stderr
        # Only the comment line differs ("Autogenerated by imgtool.py" vs ours).
        assert ours_c.stdout.splitlines()[1:] == theirs_c.stdout.splitlines()[1:]
        theirs_pem = run(imgtool, "getpub", "-k", key, "-e", "pem")
        assert run_mcuota("keys", "public", key).stdout == theirs_pem.stdout
        raw_hash = subprocess.run([imgtool, "getpubhash", "-k", str(key), "-e", "raw"], capture_output=True,
                                  check=True).stdout
        assert raw_hash == load_private_key_file(key).public().key_hash


def test_imgtool_reads_our_encrypted_key(imgtool: str, tmp_path: Path, app: Path) -> None:
    key = generate_private_key("ecdsa-p256")
    path = tmp_path / "enc.pem"
    path.write_bytes(key.pem(b"sekret"))
    proc = run(imgtool, "getpub", "-k", path, "-e", "pem", input_text="sekret\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.encode() == key.public().pem()
    out = tmp_path / "signed.bin"
    proc = run(imgtool, "sign", "-k", path, *COMMON, "--pad-header", app, out, input_text="sekret\n")
    assert proc.returncode == 0, proc.stderr
    assert verify_image(out.read_bytes(), [key.public()]).ok
    assert parse_image(out.read_bytes()).unprotected[1].value == key.public().key_hash

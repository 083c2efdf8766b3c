"""``mcuota keys generate | public`` as a user runs them: key files that are safe to keep (0600, never
silently replaced), passwords from the environment or a file, and one clear line for every failure."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from mcuota.image.keys import KEY_TYPES, load_private_key_file, load_public_key_file


def assert_clean_failure(proc: subprocess.CompletedProcess[str], message: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in lines[0], lines[0]


def names(directory: Path) -> list[str]:
    """A failed command leaves nothing behind, not even a temporary file."""
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("verb", [["keys", "generate"], ["keys", "public"]])
def test_help_ends_with_an_example(mcuota, verb: list[str]) -> None:
    proc = mcuota(*verb, "--help")
    assert proc.returncode == 0
    lines = proc.stdout.rstrip().splitlines()
    assert lines[-2] == "example:"
    assert lines[-1].startswith("  mcuota " + " ".join(verb))


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_generate_every_type(mcuota, tmp_path: Path, key_type: str) -> None:
    out = tmp_path / "signing.pem"
    proc = mcuota("keys", "generate", "--type", key_type, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"{key_type} private key" in proc.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_private_key_file(out)
    assert key.type == key_type
    assert key.public().key_hash.hex() in proc.stdout
    assert names(tmp_path) == ["signing.pem"]


def test_generate_never_replaces_without_force(mcuota, tmp_path: Path) -> None:
    out = tmp_path / "signing.pem"
    assert mcuota("keys", "generate", "-t", "ed25519", "-o", out).returncode == 0
    before = out.read_bytes()
    assert_clean_failure(mcuota("keys", "generate", "-t", "ed25519", "-o", out),
                         "already exists; use --force")
    assert out.read_bytes() == before
    proc = mcuota("keys", "generate", "-t", "ed25519", "-o", out, "--force")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() != before
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert names(tmp_path) == ["signing.pem"]


def test_password_from_environment(mcuota, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "enc.pem"
    monkeypatch.setenv("MCUOTA_TEST_KEY_PW", "correct horse")
    proc = mcuota("keys", "generate", "-t", "ecdsa-p256", "-o", out, "--password-env", "MCUOTA_TEST_KEY_PW")
    assert proc.returncode == 0, proc.stderr
    assert "encrypted" in proc.stdout
    assert out.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert load_private_key_file(out, b"correct horse").type == "ecdsa-p256"
    proc = mcuota("keys", "public", out, "--password-env", "MCUOTA_TEST_KEY_PW")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("-----BEGIN PUBLIC KEY-----")


def test_password_from_file(mcuota, tmp_path: Path) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("s3cret\n")
    out = tmp_path / "enc.pem"
    proc = mcuota("keys", "generate", "-t", "ed25519", "-o", out, "--password-file", secret)
    assert proc.returncode == 0, proc.stderr
    assert load_private_key_file(out, b"s3cret").type == "ed25519"  # the newline is not part of it


def test_password_problems(mcuota, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "enc.pem"
    monkeypatch.delenv("MCUOTA_UNSET_VAR", raising=False)
    assert_clean_failure(mcuota("keys", "generate", "-t", "ed25519", "-o", out, "--password-env",
                                "MCUOTA_UNSET_VAR"), "MCUOTA_UNSET_VAR is not set")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert_clean_failure(mcuota("keys", "generate", "-t", "ed25519", "-o", out, "--password-file", empty),
                         "is empty")
    assert_clean_failure(mcuota("keys", "generate", "-t", "ed25519", "-o", out, "--password-file", empty,
                                "--password-env", "X"), "not allowed with argument")
    assert names(tmp_path) == ["empty.txt"]


def test_public_formats(mcuota, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert mcuota("keys", "generate", "-t", "rsa-2048", "-o", key).returncode == 0
    public = load_private_key_file(key).public()
    pem = mcuota("keys", "public", key)
    assert pem.returncode == 0
    assert pem.stdout.encode() == public.pem()
    c = mcuota("keys", "public", key, "--format", "c")
    assert c.returncode == 0
    assert c.stdout.startswith("/* rsa-2048 public key of k.pem")
    assert "const unsigned char rsa_pub_key[] = {" in c.stdout
    assert f"const unsigned int rsa_pub_key_len = {len(public.mcuboot_der)};" in c.stdout
    out = tmp_path / "keys.c"
    proc = mcuota("keys", "public", key, "-f", "c", "--name", "boot_pub", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "const unsigned char boot_pub[]" in out.read_text()
    pub_pem = tmp_path / "pub.pem"
    assert mcuota("keys", "public", key, "--out", pub_pem).returncode == 0
    assert load_public_key_file(pub_pem) == public
    assert mcuota("keys", "public", pub_pem).stdout.encode() == public.pem()  # public in, public out


def test_public_failures(mcuota, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = tmp_path / "enc.pem"
    monkeypatch.setenv("MCUOTA_TEST_KEY_PW", "right")
    assert mcuota("keys", "generate", "-t", "ed25519", "-o", enc, "--password-env",
                  "MCUOTA_TEST_KEY_PW").returncode == 0
    assert_clean_failure(mcuota("keys", "public", enc), "password-protected and no password was given")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope")
    assert_clean_failure(mcuota("keys", "public", enc, "--password-file", wrong), "wrong password")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(os.urandom(200))
    assert_clean_failure(mcuota("keys", "public", garbage), "not a PEM key file")
    assert_clean_failure(mcuota("keys", "public", tmp_path / "missing.pem"), "does not exist")
    assert_clean_failure(mcuota("keys", "public", enc, "--password-file", wrong, "--out",
                                tmp_path / "out.pem"), "wrong password")
    assert_clean_failure(mcuota("keys", "generate", "-t", "ed25519", "-o", tmp_path / "no" / "k.pem"),
                         "does not exist")
    assert_clean_failure(mcuota("keys", "generate", "-t", "ecdsa-p384", "-o", tmp_path / "k.pem"),
                         "invalid choice")
    assert names(tmp_path) == ["enc.pem", "garbage.pem", "wrong.txt"]

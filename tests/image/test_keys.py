"""Signing keys: the four MCUboot types, PEM in and out (with and without a password), the exact public
bytes MCUboot compiles in, and a one-line KeyFileError for every way a key file can be unusable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519

from mcuota.errors import KeyFileError, UsageError
from mcuota.image.keys import (
    KEY_TYPES,
    PrivateKey,
    generate_private_key,
    load_private_key,
    load_private_key_file,
    load_public_key,
    load_public_key_file,
)

ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    """One key per type, generated once: RSA-3072 generation is the slow part of this module."""
    return {key_type: generate_private_key(key_type) for key_type in KEY_TYPES}


def test_key_types_are_imgtools_names() -> None:
    assert KEY_TYPES == ("ed25519", "ecdsa-p256", "rsa-2048", "rsa-3072")


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_pem_round_trip_keeps_the_key(keys: dict[str, PrivateKey], key_type: str) -> None:
    key = keys[key_type]
    pem = key.pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as imgtool keygen writes
    again = load_private_key(pem)
    assert again.type == key_type
    assert again.public() == key.public()
    assert load_public_key(pem) == key.public()
    assert load_public_key(key.public().pem()) == key.public()


def test_mcuboot_bytes_are_spki_for_ec_and_pkcs1_for_rsa(keys: dict[str, PrivateKey]) -> None:
    ed = keys["ed25519"].public()
    assert ed.mcuboot_der.startswith(ED25519_SPKI_PREFIX)
    assert len(ed.mcuboot_der) == 44
    p256 = keys["ecdsa-p256"].public()
    assert p256.mcuboot_der.startswith(P256_SPKI_PREFIX)
    assert len(p256.mcuboot_der) == 91
    for key_type in ("rsa-2048", "rsa-3072"):
        public = keys[key_type].public()
        pkcs1 = public.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        spki = public.key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        assert public.mcuboot_der == pkcs1 != spki
    for key in keys.values():
        assert key.public().key_hash == hashlib.sha256(key.public().mcuboot_der).digest()


def test_pem_export_is_spki_for_every_type(keys: dict[str, PrivateKey]) -> None:
    for key in keys.values():
        assert key.public().pem().startswith(b"-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_sign_digest_verifies_and_rejects_tampering(keys: dict[str, PrivateKey], key_type: str) -> None:
    key = keys[key_type]
    digest = hashlib.sha256(b"firmware").digest()
    signature = key.sign_digest(digest)
    public = key.public()
    assert public.verify_digest(signature, digest)
    assert not public.verify_digest(signature, hashlib.sha256(b"other").digest())
    tampered = bytearray(signature)
    tampered[len(tampered) // 2] ^= 0x01
    assert not public.verify_digest(bytes(tampered), digest)
    assert not public.verify_digest(b"", digest)
    other = next(k for t, k in keys.items() if t != key_type)
    assert not other.public().verify_digest(signature, digest)


def test_ecdsa_signature_is_der_and_imgtool_padding_is_tolerated(keys: dict[str, PrivateKey]) -> None:
    key = keys["ecdsa-p256"]
    digest = hashlib.sha256(b"x").digest()
    signature = key.sign_digest(digest)
    assert signature[0] == 0x30
    assert len(signature) == signature[1] + 2
    assert 68 <= len(signature) <= 72
    padded = signature + bytes(72 - len(signature) + 1)  # imgtool --pad-sig appends zeros
    assert key.public().verify_digest(padded, digest)


def test_ed25519_signs_the_digest_as_its_message(keys: dict[str, PrivateKey]) -> None:
    """MCUboot's Ed25519 convention: the 32-byte image hash is the signed message."""
    key = keys["ed25519"]
    digest = hashlib.sha256(b"image").digest()
    key.public().key.verify(key.sign_digest(digest), digest)  # raises if not


def test_encrypted_key_needs_the_right_password(keys: dict[str, PrivateKey]) -> None:
    pem = keys["ecdsa-p256"].pem(b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert load_private_key(pem, b"correct horse").public() == keys["ecdsa-p256"].public()
    with pytest.raises(KeyFileError, match="password-protected and no password was given"):
        load_private_key(pem, name="signing.pem")
    with pytest.raises(KeyFileError, match=r"signing.pem: wrong password"):
        load_private_key(pem, b"wrong", name="signing.pem")
    with pytest.raises(KeyFileError, match="wrong password"):
        load_public_key(pem, b"wrong")


def test_password_for_an_unencrypted_key_is_ignored(keys: dict[str, PrivateKey]) -> None:
    assert load_private_key(keys["ed25519"].pem(), b"unused").public() == keys["ed25519"].public()


def test_empty_password_is_refused(keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(UsageError, match="empty password"):
        keys["ed25519"].pem(b"")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "not a PEM key file"),
    (b"\x00\x01garbage\xff" * 10, "not a PEM key file"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "holds no private or public key"),
    (b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",
     "not a valid PEM private"),
    (b"-----BEGIN PUBLIC KEY-----\nnot base64!!\n-----END PUBLIC KEY-----\n", "not a valid PEM public"),
])
def test_not_a_key_is_one_clear_error(data: bytes, message: str) -> None:
    loader = load_public_key if b"PUBLIC" in data else load_private_key
    with pytest.raises(KeyFileError, match=message):
        loader(data, name="k.pem")


def test_truncated_pem_is_refused(keys: dict[str, PrivateKey]) -> None:
    pem = keys["rsa-2048"].pem()
    with pytest.raises(KeyFileError, match=r"k\.pem"):
        load_private_key(pem[: len(pem) // 2], name="k.pem")


def test_public_key_cannot_sign(keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(KeyFileError, match="is a public key; signing needs the private key"):
        load_private_key(keys["ed25519"].public().pem(), name="pub.pem")


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ec.generate_private_key(ec.SECP384R1()), "curve secp384r1"),
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024-bit RSA"),  # noqa: S505
    (x25519.X25519PrivateKey.generate, "X25519PrivateKey"),
])
def test_unsupported_key_types_are_named(make, message: str) -> None:
    pem = make().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    with pytest.raises(KeyFileError, match=message):
        load_private_key(pem, name="odd.pem")
    with pytest.raises(KeyFileError, match=message):
        load_public_key(pem, name="odd.pem")


def test_traditional_openssl_pem_loads_too() -> None:
    raw = ec.generate_private_key(ec.SECP256R1())
    pem = raw.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert load_private_key(pem).type == "ecdsa-p256"


def test_c_array_is_the_mcuboot_bytes(keys: dict[str, PrivateKey]) -> None:
    public = keys["ed25519"].public()
    text = public.c_array()
    assert text.startswith("const unsigned char ed25519_pub_key[] = {\n")
    assert text.endswith(f"const unsigned int ed25519_pub_key_len = {len(public.mcuboot_der)};\n")
    values = bytes(int(tok, 16) for tok in text.split("{")[1].split("}")[0].replace(",", " ").split())
    assert values == public.mcuboot_der
    assert keys["rsa-3072"].public().c_array("boot_key").startswith("const unsigned char boot_key[]")


def test_file_wrappers(tmp_path: Path, keys: dict[str, PrivateKey]) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(keys["ed25519"].pem(b"pw"))
    assert load_private_key_file(path, b"pw").public() == keys["ed25519"].public()
    assert load_public_key_file(path, b"pw") == keys["ed25519"].public()
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key_file(tmp_path / "missing.pem")
    with pytest.raises(KeyFileError, match="is a directory"):
        load_public_key_file(tmp_path)


def test_repr_shows_no_secret(keys: dict[str, PrivateKey]) -> None:
    key = keys["ed25519"]
    text = repr(key)
    assert "PrivateKey(ed25519" in text
    assert key.pem().decode().splitlines()[1][:20] not in text

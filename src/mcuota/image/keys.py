"""Signing keys as MCUboot sees them: the four key types it verifies, PEM files in and out, and the exact
public-key bytes a bootloader compiles in (and that an image's KEYHASH / PUBKEY TLV refers to).

Why a module of its own: the image builder, ``mcuota keys``, the bootloader model and the server all need
the *same* answer to "which bytes are this key's identity". MCUboot (and imgtool, which we must match
byte for byte) use the DER SubjectPublicKeyInfo for ECDSA and Ed25519 but the bare PKCS#1
``RSAPublicKey`` for RSA; getting that wrong produces images that every bootloader rejects with a
"key hash mismatch" no one can explain. :attr:`PublicKey.mcuboot_der` is the one place that decides it.

All MCUboot signatures cover the image hash region, so one call shape fits every type:
:meth:`PrivateKey.sign_digest` takes the SHA-256 of that region. Ed25519 signs the 32 digest bytes as its
message (MCUboot's convention); ECDSA-P256 and RSA-PSS sign the region itself, which cryptography lets us
express as a pre-hashed digest, so a 1 MiB image is hashed once, not twice.

Private keys are written as PKCS#8 PEM (optionally password-encrypted), as ``imgtool keygen`` does, so
either tool reads the other's keys.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
else:
    # Start-up budget: the public ``serialization`` package also loads its SSH support (ciphers, bcrypt
    # probing), 10-20 ms per process, more than signing a 1 MiB image. Its PEM loaders are these Rust
    # functions re-exported, and its enums live in ``_serialization``; use them directly, falling back
    # to the public API should a cryptography release move them.
    try:
        from cryptography.hazmat.bindings._rust import openssl as _rust_openssl
        from cryptography.hazmat.primitives import _serialization as serialization

        load_pem_private_key = _rust_openssl.keys.load_pem_private_key
        load_pem_public_key = _rust_openssl.keys.load_pem_public_key
        _ = (serialization.Encoding.DER, serialization.PublicFormat.PKCS1, serialization.PrivateFormat.PKCS8,
             serialization.NoEncryption, serialization.BestAvailableEncryption)
    except (ImportError, AttributeError):  # pragma: no cover - depends on the cryptography release
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from mcuota.errors import KeyFileError, UsageError
from mcuota.fsutil import read_input
from mcuota.image.bin2c import to_c_array

KeyType = Literal["ed25519", "ecdsa-p256", "rsa-2048", "rsa-3072"]
#: The key types MCUboot verifies and mcuota signs with, by their ``imgtool keygen -t`` names.
KEY_TYPES: tuple[KeyType, ...] = ("ed25519", "ecdsa-p256", "rsa-2048", "rsa-3072")

#: imgtool's short names, used for the C identifiers of ``getpub`` (``ed25519_pub_key`` …).
_SHORT_NAMES: dict[KeyType, str] = {
    "ed25519": "ed25519", "ecdsa-p256": "ecdsa", "rsa-2048": "rsa", "rsa-3072": "rsa",
}

_PublicObject: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_PrivateObject: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# MCUboot only accepts a 32-byte salt (the SHA-256 length) for RSA-PSS.
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_SHA256_PREHASHED = Prehashed(hashes.SHA256())


def key_type_of(key: _PublicObject | _PrivateObject, name: str = "key") -> KeyType:
    """The MCUboot key type of a cryptography key object; anything MCUboot cannot verify is refused."""
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if key.curve.name == "secp256r1":
            return "ecdsa-p256"
        raise KeyFileError(f"{name} is an EC key on curve {key.curve.name}; supported key types: "
                           f"{', '.join(KEY_TYPES)}")
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size == 2048:
            return "rsa-2048"
        if key.key_size == 3072:
            return "rsa-3072"
        raise KeyFileError(f"{name} is a {key.key_size}-bit RSA key; MCUboot verifies RSA-2048 and "
                           "RSA-3072 only")
    raise KeyFileError(f"{name} holds a {type(key).__name__.removeprefix('_')} key; supported key types: "
                       f"{', '.join(KEY_TYPES)}")


class PublicKey:
    """A public key MCUboot can verify with; equal keys compare equal whatever file they came from.

    ``mcuboot_der`` is what MCUboot compiles in and a PUBKEY TLV carries: DER SubjectPublicKeyInfo for
    Ed25519 and ECDSA, DER PKCS#1 RSAPublicKey for RSA (what ``imgtool getpub`` prints). A plain slotted
    class, not a dataclass, to keep ``mcuota image sign`` start-up short.
    """

    __slots__ = ("key", "mcuboot_der", "type")

    def __init__(self, key_type: KeyType, mcuboot_der: bytes, key: _PublicObject) -> None:
        self.type: KeyType = key_type
        self.mcuboot_der = mcuboot_der
        self.key = key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return (self.type, self.mcuboot_der) == (other.type, other.mcuboot_der)

    def __hash__(self) -> int:
        return hash((self.type, self.mcuboot_der))

    def __repr__(self) -> str:
        return f"PublicKey({self.type}, key hash {self.key_hash.hex()[:16]}…)"

    @classmethod
    def from_key(cls, key: _PublicObject, name: str = "key") -> PublicKey:
        key_type = key_type_of(key, name)
        fmt = (serialization.PublicFormat.PKCS1 if key_type.startswith("rsa")
               else serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(key_type, key.public_bytes(serialization.Encoding.DER, fmt), key)

    @property
    def key_hash(self) -> bytes:
        """SHA-256 of :attr:`mcuboot_der`: what a KEYHASH TLV holds and a bootloader compares."""
        return hashlib.sha256(self.mcuboot_der).digest()

    @property
    def short_name(self) -> str:
        """imgtool's name for the key family (``ed25519``, ``ecdsa``, ``rsa``), used in C identifiers."""
        return _SHORT_NAMES[self.type]

    def pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``) for every type, as imgtool writes it."""
        return self.key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    def c_array(self, name: str | None = None) -> str:
        """The key as MCUboot's ``keys.c`` wants it: the same array and length imgtool's getpub emits."""
        ident = name or f"{self.short_name}_pub_key"
        return to_c_array(self.mcuboot_der, ident, per_line=8)

    def verify_digest(self, signature: bytes, digest: bytes) -> bool:
        """Whether ``signature`` is this key's MCUboot signature over a region whose SHA-256 is ``digest``."""
        key = self.key
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, digest)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(_strip_der_padding(signature), digest, ec.ECDSA(_SHA256_PREHASHED))
            else:
                key.verify(signature, digest, _PSS, _SHA256_PREHASHED)
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify_message(self, signature: bytes, message: bytes) -> bool:
        """Ed25519 over the whole region (MCUboot's SIG_PURE images); other types hash first anyway."""
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            try:
                self.key.verify(signature, message)
            except InvalidSignature:
                return False
            return True
        return self.verify_digest(signature, hashlib.sha256(message).digest())


def _strip_der_padding(signature: bytes) -> bytes:
    """imgtool's --pad-sig appends zeros after the DER SEQUENCE (for MCUboot < 1.5); drop them."""
    if len(signature) > 2 and signature[0] == 0x30 and signature[1] < 0x80:
        end = signature[1] + 2
        if end < len(signature) and not any(signature[end:]):
            return signature[:end]
    return signature


class PrivateKey:
    """A signing key of one of :data:`KEY_TYPES`; its repr never shows secret material."""

    __slots__ = ("key", "type")

    def __init__(self, key_type: KeyType, key: _PrivateObject) -> None:
        self.type: KeyType = key_type
        self.key = key

    def __repr__(self) -> str:
        return f"PrivateKey({self.type}, public key hash {self.public().key_hash.hex()[:16]}…)"

    def public(self) -> PublicKey:
        """The public half (what a bootloader or server is given to trust)."""
        return PublicKey.from_key(self.key.public_key())

    def sign_digest(self, digest: bytes) -> bytes:
        """MCUboot signature for a region whose SHA-256 is ``digest`` (ECDSA: DER, 70-72 bytes)."""
        key = self.key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(digest)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(digest, ec.ECDSA(_SHA256_PREHASHED))
        return key.sign(digest, _PSS, _SHA256_PREHASHED)

    def pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with ``password`` when one is given (as ``imgtool keygen -p``)."""
        if password is not None and not password:
            raise UsageError("an empty password would not protect the key; give a non-empty one")
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if password is not None:
            encryption = serialization.BestAvailableEncryption(password)
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      encryption)


def generate_private_key(key_type: KeyType) -> PrivateKey:
    """A fresh key; RSA uses e = 65537 like every MCUboot tool."""
    key: _PrivateObject
    if key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type in ("rsa-2048", "rsa-3072"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    else:
        raise UsageError(f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}")
    return PrivateKey(key_type, key)


def _pem_kind(data: bytes, name: str) -> Literal["private", "public"]:
    head = data.lstrip()[:4096]
    if b"-----BEGIN" not in head:
        raise KeyFileError(f"{name} is not a PEM key file (no '-----BEGIN' line)")
    if b"PRIVATE KEY-----" in head:
        return "private"
    if b"PUBLIC KEY-----" in head:
        return "public"
    raise KeyFileError(f"{name} is a PEM file but holds no private or public key")


def _is_encrypted_pem(data: bytes) -> bool:
    return b"ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_private_key(data: bytes, password: bytes | None = None, *, name: str = "key") -> PrivateKey:
    """Parse a PEM private key; every way it can fail is a one-line :class:`KeyFileError`.

    A password given for an unencrypted key is ignored: build pipelines often export one for every key.
    """
    if _pem_kind(data, name) != "private":
        raise KeyFileError(f"{name} is a public key; signing needs the private key")
    encrypted = _is_encrypted_pem(data)
    if encrypted and password is None:
        raise KeyFileError(f"{name} is password-protected and no password was given")
    try:
        key = load_pem_private_key(data, password if encrypted else None)
    except ValueError:
        if encrypted:
            raise KeyFileError(f"{name}: wrong password (cannot decrypt the key)") from None
        raise KeyFileError(f"{name} is not a valid PEM private key (corrupt or truncated)") from None
    except TypeError as exc:  # cryptography's "password was (not) given" complaints
        raise KeyFileError(f"{name}: {exc}") from None
    except UnsupportedAlgorithm as exc:
        raise KeyFileError(f"{name} holds an unsupported key type ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyFileError(f"{name} holds a {type(key).__name__.removeprefix('_')} key; supported key "
                           f"types: {', '.join(KEY_TYPES)}")
    return PrivateKey(key_type_of(key, name), key)


def load_public_key(data: bytes, password: bytes | None = None, *, name: str = "key") -> PublicKey:
    """Parse a PEM public key, or take the public half of a PEM private key (what verification needs)."""
    if _pem_kind(data, name) == "private":
        return load_private_key(data, password, name=name).public()
    try:
        key = load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(f"{name} is not a valid PEM public key (corrupt or truncated)") from None
    except UnsupportedAlgorithm as exc:
        raise KeyFileError(f"{name} holds an unsupported key type ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise KeyFileError(f"{name} holds a {type(key).__name__.removeprefix('_')} key; supported key "
                           f"types: {', '.join(KEY_TYPES)}")
    return PublicKey.from_key(key, name)


def load_private_key_file(path: str | Path, password: bytes | None = None) -> PrivateKey:
    """Thin file wrapper over :func:`load_private_key`; an unreadable file is a KeyFileError too."""
    return load_private_key(_read_key(path), password, name=str(path))


def load_public_key_file(path: str | Path, password: bytes | None = None) -> PublicKey:
    """Thin file wrapper over :func:`load_public_key`."""
    return load_public_key(_read_key(path), password, name=str(path))


def _read_key(path: str | Path) -> bytes:
    try:
        return read_input(path, "key file", limit=1024 * 1024)
    except UsageError as exc:
        raise KeyFileError(str(exc)) from None

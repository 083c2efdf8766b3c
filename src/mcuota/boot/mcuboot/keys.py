"""Which keys the simulated bootloader trusts, and which key signs a release made for it.

MCUboot is built with a public key compiled in; out of the box that is one of the development keys in
its repository (``root-ed25519.pem``, ``root-ec-p256.pem``), whose private halves are public. mcuota
does the same: a layout whose ``signature`` option names ed25519 or ecdsa-p256 and gives no ``keys``
trusts a fixed development key of that type, and :meth:`make_release` signs with it unless a signer is
given. Like MCUboot's, these keys are for simulation and tests only: anyone can sign with them.

A layout (option ``keys``) or a caller (``keys=`` when making the strategy) can give the trusted keys
instead: PEM bytes or text (public or private), or :class:`~mcuota.image.keys.PublicKey` /
:class:`~mcuota.image.keys.PrivateKey` objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mcuota.errors import UsageError
from mcuota.image.keys import PrivateKey, PublicKey, load_private_key, load_private_key_file, load_public_key

_DEV_KEYS = {
    "ed25519": b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIM0s9oQidYi5tJ+rFCBQedRQi+E39OuZvJAnHcdczC1f
-----END PRIVATE KEY-----
""",
    "ecdsa-p256": b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmRP7ySPeLcaRh6hg
9latAjMHBCT7r4EfJz3maVbnR5ShRANCAARbPYAz2vfVNVdGh6COB/r0LGdi+KkO
oFm7rDNRDO+3ScwnXdpc7qSMx8pCF+hrKP0q86qhSaaJIhPjLkd+BULX
-----END PRIVATE KEY-----
""",
}
_LOADED: dict[str, PrivateKey] = {}


def development_key(key_type: str) -> PrivateKey:
    """mcuota's development signing key of ``key_type`` (public knowledge, like MCUboot's root keys)."""
    key = _LOADED.get(key_type)
    if key is None:
        pem = _DEV_KEYS.get(key_type)
        if pem is None:
            raise UsageError(f"no development key of type {key_type}: give the trusted keys in the layout's "
                             f"'keys' option and a signer")
        key = _LOADED[key_type] = load_private_key(pem, name=f"mcuota {key_type} development key")
    return key


def _public(item: object) -> PublicKey:
    if isinstance(item, PublicKey):
        return item
    if isinstance(item, PrivateKey):
        return item.public()
    if isinstance(item, str):
        item = item.encode()
    if isinstance(item, bytes | bytearray):
        return load_public_key(bytes(item), name="trusted key")
    raise UsageError(f"a trusted key must be PEM bytes or text, a PublicKey or a PrivateKey, not "
                     f"{type(item).__name__}")


def trusted_keys(signature: str, given: Iterable[object]) -> tuple[PublicKey, ...]:
    """The keys the bootloader verifies with; empty means hash-only (``signature: none``)."""
    keys = tuple(_public(item) for item in given)
    if keys or signature == "none":
        return keys
    return (development_key(signature).public(),)


def signing_key(signature: str, signer: object | None) -> PrivateKey | None:
    """The key a release is signed with: ``signer`` (a PrivateKey, PEM bytes or a PEM file path), else the
    development key of the layout's type, or none for an unsigned layout."""
    if signer is None:
        return None if signature == "none" else development_key(signature)
    if isinstance(signer, PrivateKey):
        return signer
    if isinstance(signer, bytes | bytearray):
        return load_private_key(bytes(signer), name="signer")
    if isinstance(signer, str | Path):
        return load_private_key_file(signer)
    raise UsageError(f"signer must be a PrivateKey, PEM bytes or a key file path, not "
                     f"{type(signer).__name__}")

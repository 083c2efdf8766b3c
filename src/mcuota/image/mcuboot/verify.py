"""Verifying an MCUboot image the way the bootloader does, with a typed answer instead of exceptions.

A bad image is an expected input here (a download cut short, a tampered file, a key rotation gone
wrong), so :func:`verify_image` never raises for one: it returns a :class:`VerifyResult` whose
``status`` says what kind of bad, and whose ``reason`` is the one line to show. The server, the agent,
the bootloader model and ``mcuota image verify`` all map that status themselves.

Key selection follows bootutil: a KEYHASH (or PUBKEY) TLV names the signing key, and only a trusted key
with that hash is tried against the signature; without such a TLV every trusted key of the signature's
type is tried. With no trusted keys at all, only the hash is checked and the result says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from mcuota.errors import FormatError
from mcuota.image.mcuboot.header import ImageFlag
from mcuota.image.mcuboot.parse import McubootImage, parse_image
from mcuota.image.mcuboot.tlv import HASH_TYPES, SIGNATURE_TLV_FOR_KEY, SIGNATURE_TYPES, TlvType
from mcuota.image.version import ImageVersion

if TYPE_CHECKING:
    from mcuota.image.keys import PublicKey


class VerifyStatus(StrEnum):
    OK = "ok"
    BAD_HASH = "bad_hash"
    NO_MATCHING_SIGNATURE = "no_matching_signature"
    MALFORMED = "malformed"


class VerifyResult(NamedTuple):
    status: VerifyStatus
    reason: str
    version: ImageVersion | None = None
    hash: bytes | None = None
    """The SHA-256 computed over the hashed region (None when the image could not be parsed)."""
    key_index: int | None = None
    """Index into the trusted keys of the key whose signature verified."""
    key_type: str | None = None
    signature_checked: bool = False
    """False when no trusted key was given: only the hash was checked."""
    image: McubootImage | None = None

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "valid": self.ok,
            "reason": self.reason,
            "version": None if self.version is None else str(self.version),
            "hash": None if self.hash is None else self.hash.hex(),
            "signature_checked": self.signature_checked,
            "key_index": self.key_index,
            "key_type": self.key_type,
            "security_counter": None if self.image is None else self.image.security_counter,
        }


def verify_image(data: bytes, keys: Sequence[PublicKey] = ()) -> VerifyResult:
    """Check the hash and (given trusted ``keys``) the signature of an MCUboot image."""
    try:
        image = parse_image(data)
    except FormatError as exc:
        return VerifyResult(VerifyStatus.MALFORMED, str(exc))
    header = image.header
    version = header.version
    if header.flags & (ImageFlag.ENCRYPTED_AES128 | ImageFlag.ENCRYPTED_AES256):
        return VerifyResult(VerifyStatus.MALFORMED, "encrypted images are not supported (the hash covers the "
                            "plaintext)", version, image=image)
    hash_tlvs = [tlv for tlv in image.unprotected if tlv.type in HASH_TYPES]
    if not hash_tlvs:
        return VerifyResult(VerifyStatus.MALFORMED, "no SHA256/SHA384/SHA512 TLV", version, image=image)
    if len(hash_tlvs) > 1:
        return VerifyResult(VerifyStatus.MALFORMED, f"{len(hash_tlvs)} hash TLVs (MCUboot expects one)",
                            version, image=image)
    hash_tlv = hash_tlvs[0]
    hasher = hashlib.new(HASH_TYPES[TlvType(hash_tlv.type)])
    hasher.update(memoryview(data)[: header.hashed_size])
    digest = hasher.digest()
    if len(hash_tlv.value) != len(digest):
        return VerifyResult(VerifyStatus.MALFORMED, f"{hash_tlv.name} TLV at offset 0x{hash_tlv.offset:x} "
                            f"has {len(hash_tlv.value)} bytes, expected {len(digest)}", version, image=image)
    if digest != hash_tlv.value:
        return VerifyResult(VerifyStatus.BAD_HASH, f"image hash {digest.hex()} does not match the "
                            f"{hash_tlv.name} TLV {hash_tlv.value.hex()}", version, digest, image=image)
    if not keys:
        return VerifyResult(VerifyStatus.OK, "hash ok; signature not checked (no key given)", version, digest,
                            image=image)
    return _check_signature(image, data, digest, list(keys))


def _check_signature(image: McubootImage, data: bytes, digest: bytes, keys: list[PublicKey]) -> VerifyResult:
    version = image.version
    pure = bool(image.find(TlvType.SIG_PURE))
    signatures = [tlv for tlv in image.unprotected if tlv.type in SIGNATURE_TYPES]
    if not signatures:
        return VerifyResult(VerifyStatus.NO_MATCHING_SIGNATURE, "image is not signed (no signature TLV)",
                            version, digest, image=image)
    named: list[bytes] = []
    for tlv in image.unprotected:
        if tlv.type == TlvType.KEYHASH:
            named.append(tlv.value)
        elif tlv.type == TlvType.PUBKEY:
            named.append(hashlib.sha256(tlv.value).digest())
    candidates = [(i, key) for i, key in enumerate(keys) if not named or key.key_hash in named]
    if not candidates:
        return VerifyResult(VerifyStatus.NO_MATCHING_SIGNATURE,
                            f"signed by a key that is not trusted (key hash {named[0].hex()[:16]}…, "
                            f"{len(keys)} trusted key(s) given)", version, digest, image=image)
    tried = 0
    for tlv in signatures:
        for index, key in candidates:
            if SIGNATURE_TLV_FOR_KEY[key.type] != tlv.type:
                continue
            tried += 1
            valid = (key.verify_message(tlv.value, data[: image.header.hashed_size]) if pure
                     else key.verify_digest(tlv.value, digest))
            if valid:
                return VerifyResult(VerifyStatus.OK, f"hash ok; {tlv.name} signature verified with trusted "
                                    f"key #{index + 1} ({key.type})", version, digest, index, key.type,
                                    signature_checked=True, image=image)
    if not tried:
        kinds = ", ".join(sorted({tlv.name for tlv in signatures}))
        have = ", ".join(sorted({key.type for _, key in candidates}))
        return VerifyResult(VerifyStatus.NO_MATCHING_SIGNATURE,
                            f"image carries a {kinds} signature but the trusted key(s) are {have}",
                            version, digest, image=image)
    return VerifyResult(VerifyStatus.NO_MATCHING_SIGNATURE,
                        "signature does not verify with any trusted key", version, digest, image=image)

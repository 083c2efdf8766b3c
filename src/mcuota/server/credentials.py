"""Device tokens and operator API keys: issued once, stored only as hashes, compared in constant time.

Both are 256-bit random secrets with a readable prefix (``mcd_`` device, ``mca_`` admin) so a leaked one
is recognisable in a log or a repository scan. Being high-entropy, a plain SHA-256 is the right hash
(a slow password hash would add nothing but latency to every request): the database holds the digest,
lookups go by digest, and the final comparison uses :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

DEVICE_PREFIX = "mcd_"
ADMIN_PREFIX = "mca_"
SCOPES = ("read", "write", "admin")
"""Each scope includes the ones before it: ``write`` can read, ``admin`` can do everything."""


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def normalise_scopes(scopes: str | list[str] | tuple[str, ...]) -> str:
    """The space-separated canonical form; an unknown scope is a ValueError naming the known ones."""
    words = scopes.split() if isinstance(scopes, str) else list(scopes)
    unknown = [w for w in words if w not in SCOPES]
    if unknown or not words:
        raise ValueError(f"unknown scope(s) {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(SCOPES)}")
    return " ".join(s for s in SCOPES if s in words)


def grants(scopes: str, needed: str) -> bool:
    """Whether a key holding ``scopes`` may do what needs ``needed``."""
    rank = {name: i for i, name in enumerate(SCOPES)}
    held = [rank[s] for s in scopes.split() if s in rank]
    return bool(held) and max(held) >= rank[needed]

"""Release images stored by content: the file name is the SHA-256, so a release is stored once however
many boards or rows refer to it, and the ETag a device sees is the name of the file it reads.

A blob is written to a temporary file in the store and renamed into place only when complete and
synced, so a crash leaves either the whole blob or a temporary file that :meth:`FileBlobStore.sweep`
removes at the next start (together with blobs no release refers to).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 64 * 1024


def _check(digest: str) -> str:
    if not _SHA256.match(digest):
        raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
    return digest


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its SHA-256 hex digest."""
        ...

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int: ...

    def read(self, digest: str, start: int = 0, length: int | None = None) -> bytes: ...

    def iter_range(self, digest: str, start: int, length: int) -> Iterator[bytes]: ...

    def delete(self, digest: str) -> None: ...

    def sweep(self, keep: Iterable[str]) -> list[str]:
        """Delete every blob not in ``keep`` and every leftover temporary file; returns what went."""
        ...


class FileBlobStore:
    """Blobs under ``root/<aa>/<sha256>``, temporaries under ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        _check(digest)
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{digest[:16]}.", suffix=".tmp", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(name, 0o644)
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise KeyError(digest) from None

    def read(self, digest: str, start: int = 0, length: int | None = None) -> bytes:
        try:
            with self.path(digest).open("rb") as handle:
                handle.seek(start)
                return handle.read() if length is None else handle.read(length)
        except FileNotFoundError:
            raise KeyError(digest) from None

    def iter_range(self, digest: str, start: int, length: int) -> Iterator[bytes]:
        try:
            handle = self.path(digest).open("rb")
        except FileNotFoundError:
            raise KeyError(digest) from None
        with handle:
            handle.seek(start)
            left = length
            while left > 0:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("??/*") if _SHA256.match(p.name))

    def sweep(self, keep: Iterable[str]) -> list[str]:
        wanted = set(keep)
        gone = [d for d in self.digests() if d not in wanted]
        for digest in gone:
            self.delete(digest)
        for leftover in self.tmp.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        return gone


class MemoryBlobStore:
    """The same contract in memory, for tests that do not care about files."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._blobs.setdefault(digest, bytes(data))
        return digest

    def exists(self, digest: str) -> bool:
        return digest in self._blobs

    def size(self, digest: str) -> int:
        return len(self._blobs[digest])

    def read(self, digest: str, start: int = 0, length: int | None = None) -> bytes:
        data = self._blobs[digest]
        return data[start:] if length is None else data[start : start + length]

    def iter_range(self, digest: str, start: int, length: int) -> Iterator[bytes]:
        yield self.read(digest, start, length)

    def delete(self, digest: str) -> None:
        with self._lock:
            self._blobs.pop(digest, None)

    def sweep(self, keep: Iterable[str]) -> list[str]:
        wanted = set(keep)
        with self._lock:
            gone = [d for d in self._blobs if d not in wanted]
            for digest in gone:
                del self._blobs[digest]
        return gone

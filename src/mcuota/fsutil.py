"""Writing files so that a failure never leaves a half-written output behind.

Every command that produces a file goes through :func:`atomic_write`: the bytes land in a temporary
file in the destination's directory and are renamed over the target only once complete, so a user
sees either the old file, the whole new file, or (on error) nothing new at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mcuota.errors import UsageError


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` all at once; ``mode`` sets the permissions (e.g. 0o600 for keys)."""
    target = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"cannot write {target}: directory {directory} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_input(path: str | os.PathLike[str], what: str = "file", limit: int = 256 * 1024 * 1024) -> bytes:
    """Read a user-named input file, turning OS errors into one-line :class:`UsageError` messages."""
    source = Path(path)
    try:
        size = source.stat().st_size
        if size > limit:
            raise UsageError(f"{what} {source} is {size} bytes, over the {limit}-byte limit")
        return source.read_bytes()
    except IsADirectoryError:
        raise UsageError(f"{what} {source} is a directory") from None
    except FileNotFoundError:
        raise UsageError(f"{what} {source} does not exist") from None
    except PermissionError:
        raise UsageError(f"{what} {source} is not readable (permission denied)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {source}: {exc.strerror}") from None

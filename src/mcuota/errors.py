"""The one exception tree every layer raises from, so that the command line and the server can turn
any failure into one human line (and an exit code or a 4xx) without knowing where it came from.

Errors are split by *whose fault* they are, the way a user has to act on them::

    McuotaError                  anything mcuota reports on purpose (exit 2 unless said otherwise)
    ├── UsageError               the caller asked for something impossible: a bad option or value
    ├── FormatError              bytes that are not what they claim: truncated, bad magic, malformed
    ├── KeyFileError             a key that cannot be used: unreadable, wrong password, wrong type
    ├── CapacityError            does not fit: an image larger than its slot, a file over a limit
    └── IntegrityError           exit 1: a checksum, hash or signature did not match

Anything else escaping to the command line is a bug in mcuota; it is still shown as one line, with
the traceback only under ``MCUOTA_DEBUG=1``.
"""

from __future__ import annotations


class McuotaError(Exception):
    """Base of every deliberate mcuota failure; ``str()`` is the one line a user sees."""

    exit_code: int = 2


class UsageError(McuotaError):
    """An option or value that cannot be honoured (a version out of range, an unaligned address)."""


class FormatError(McuotaError):
    """Input bytes that do not parse as the format they were given or detected as."""


class KeyFileError(McuotaError):
    """A key file that cannot be loaded or used for the requested operation."""


class CapacityError(McuotaError):
    """Data that does not fit where it has to go."""


class IntegrityError(McuotaError):
    """A check of content failed: the data is well formed but not the data it claims to be."""

    exit_code = 1

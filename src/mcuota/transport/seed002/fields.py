"""Reading a seed-002 JSON document the way the device does: field names compared case-insensitively.

The agent's parser matches names with ``strncasecmp`` (so ``ManufacturerID`` and ``ManufacturerId`` are
the same field) and Infineon's own scripts send both spellings, so a lookup that respects case would
drop real devices' fields. A later duplicate wins, as it does in the C parser's single pass.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mcuota.image.version import ImageVersion
from mcuota.transport.seed002.results import OtaError, Seed002Error

MAX_DOCUMENT = 64 * 1024          # the agent's buffers are far smaller; anything bigger is not a job doc
_VERSION_RE = re.compile(r"^(\d{1,5})\.(\d{1,5})\.(\d{1,5})$")
_UNSIGNED_RE = re.compile(r"^\d{1,10}$")


class Fields:
    """A decoded JSON object whose keys are looked up without regard to case."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._values = {key.lower(): value for key, value in document.items()}

    def text(self, *names: str, required: bool = False) -> str:
        """The first present of ``names`` as a string ("" when absent and not required)."""
        for name in names:
            if name.lower() in self._values:
                value = self._values[name.lower()]
                if not isinstance(value, str):
                    raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                                       f'field "{name}" must be a string, not {type(value).__name__}')
                if not value.isascii():
                    try:
                        value.encode("utf-8")   # a "\ud800" escape decodes to text no device can echo
                    except UnicodeEncodeError:
                        raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                                           f'field "{name}" holds an unpaired surrogate') from None
                return value
        if required:
            raise Seed002Error(OtaError.MALFORMED_JOB_DOC, f'missing field "{names[0]}"')
        return ""

    def unsigned(self, name: str, *, required: bool = False, limit: int = 0xFFFFFFFF) -> int | None:
        """A non-negative integer sent as a decimal string (as the agent's ``"%ld"`` does) or a number."""
        value = self._values.get(name.lower())
        if value is None or value == "":
            if required:
                raise Seed002Error(OtaError.MALFORMED_JOB_DOC, f'missing field "{name}"')
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise Seed002Error(OtaError.MALFORMED_JOB_DOC, f'field "{name}" must be a decimal number')
        if isinstance(value, str):
            if not _UNSIGNED_RE.match(value.strip()):
                raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                                   f'field "{name}" is not a non-negative decimal number: {value!r}')
            value = int(value.strip())
        if not 0 <= value <= limit:
            raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                               f'field "{name}" {value} is out of range (0..{limit})')
        return value


def decode_document(payload: bytes | str) -> Fields:
    """Decode one JSON object; anything else is ``MALFORMED_JOB_DOC``. Surrounding whitespace and the
    C string terminator some devices send along are tolerated."""
    if isinstance(payload, bytes | bytearray | memoryview):
        raw = bytes(payload)
        if len(raw) > MAX_DOCUMENT:
            raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                               f"document of {len(raw)} bytes exceeds {MAX_DOCUMENT}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Seed002Error(OtaError.MALFORMED_JOB_DOC, f"not UTF-8 at byte {exc.start}") from None
    else:
        text = payload
    text = text.strip().rstrip("\x00").strip()
    if not text.startswith("{"):
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC, "not a JSON object (does not start with '{')")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC, f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC, "not a JSON object")
    return Fields(document)


def parse_seed_version(text: str, *, field: str = "Version") -> ImageVersion:
    """``"M.m.b"`` → :class:`ImageVersion` (major, minor, revision). The agent refuses anything without
    two dots, so this does too; each part must fit the image header's field."""
    match = _VERSION_RE.match(text.strip())
    if match is None:
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                           f'field "{field}" is not "major.minor.build": {text!r}')
    major, minor, build = (int(part) for part in match.groups())
    if major > 0xFF or minor > 0xFF or build > 0xFFFF:
        raise Seed002Error(OtaError.MALFORMED_JOB_DOC,
                           f'field "{field}" {text!r} is out of range (255.255.65535 at most)')
    return ImageVersion(major, minor, build)


def format_seed_version(version: ImageVersion) -> str:
    """The ``"M.m.b"`` spelling: the build number of ``1.2.3+4`` has no place in seed 002."""
    return f"{version.major}.{version.minor}.{version.revision}"


def encode_document(fields: dict[str, str]) -> bytes:
    """Compact, key order kept (the order of the agent's own templates), UTF-8."""
    return json.dumps(fields, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")

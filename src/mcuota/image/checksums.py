"""Checksums by name, so that an image header, a bootloader and the command line agree on what a
"CRC" is. The seed systems use five, and two of them are easy to confuse:

``crc32``
    zlib's CRC-32 (reflected, init and final XOR 0xFFFFFFFF) — what Python image scripts such as
    seed 001's ``app_final.py`` compute, and what seed 004's header holds.
``crc32-stm32``
    the STM32 hardware CRC unit: polynomial 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final
    XOR, fed 32-bit words read little-endian from memory (srec_cat's ``-stm32-l-e``). It is *not*
    zlib's CRC-32 (same polynomial, opposite bit order, no final XOR). The unit only eats whole
    words, so a trailing 1-3 bytes are **not covered**, exactly as srec_cat ignores them. Formats
    that pin this variant therefore pad their payload to a whole word themselves.
``crc16-xmodem``
    CRC-16/XMODEM (``binascii.crc_hqx(data, 0)``), the YMODEM packet check.
``md5``, ``sha256``
    hashlib; Gizwits' FLAG record and Wi-Fi protocol carry an MD5.

Every algorithm is available incrementally (:func:`new` → ``update``/``digest``) because the
bootloaders check while they write, piece by piece, in pieces of any length. A CRC's
:meth:`~Checksum.digest` is its value big-endian (``crc32`` of ``b"123456789"`` is ``cbf43926``),
the order people write CRCs in; headers that store a CRC little-endian pack the integer
:attr:`~Crc32.value` themselves.

``crc32-stm32`` is computed in C, not in a Python loop: the unit's CRC is zlib's table-driven CRC-32
run over the same words with every byte bit-reversed and the words byte-swapped, with the register
bit-reversed on the way in and out (about 2 ms per MiB, against about 140 ms for a byte-table loop
in Python; the tests hold it to a bit-by-bit model of the unit and to srec_cat).
"""

from __future__ import annotations

import binascii
import hashlib
import zlib
from array import array
from typing import Protocol, TypeAlias

from mcuota.errors import UsageError

BytesLike: TypeAlias = bytes | bytearray | memoryview  # what a writer's buffer may be

CHECKSUM_NAMES: tuple[str, ...] = ("crc32", "crc32-stm32", "crc16-xmodem", "md5", "sha256")

STM32_CRC_INIT = 0xFFFFFFFF

# An array type code with 4-byte items, for swapping the bytes of every word at C speed.
_WORD = next(code for code in "IL" if array(code).itemsize == 4)
# _BITREV[b] is b with its 8 bits in the opposite order.
_BITREV = bytes(int(f"{value:08b}"[::-1], 2) for value in range(256))


class Checksum(Protocol):
    """What every algorithm offers, hashlib-style, so a writer can check as it goes."""

    @property
    def name(self) -> str: ...

    @property
    def digest_size(self) -> int: ...

    def update(self, data: BytesLike) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...


def _octets(data: BytesLike) -> memoryview:
    """A byte view, so that lengths and word boundaries count bytes whatever the buffer's item type."""
    return memoryview(data).cast("B")


def _bitrev32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "little").translate(_BITREV), "big")


def crc32(data: BytesLike, value: int = 0) -> int:
    """zlib's CRC-32; ``value`` continues a previous result, as ``zlib.crc32`` does."""
    return zlib.crc32(data, value)


def crc32_stm32(data: BytesLike, value: int = STM32_CRC_INIT) -> int:
    """The STM32 CRC unit's result after feeding ``data`` as little-endian words.

    ``value`` is the unit's register before the first word (``STM32_CRC_INIT`` after a reset), so a
    result can be continued with more words. A trailing 1-3 bytes are ignored, as srec_cat ignores
    them; use :class:`Crc32Stm32` to feed data in pieces that do not end on word boundaries.
    """
    view = _octets(data)
    state = _Stm32State(value)
    state.feed_words(view, len(view) - len(view) % 4)
    return state.register


class _Stm32State:
    """The unit's register kept in zlib's reflected form, so each update is one zlib call."""

    def __init__(self, register: int) -> None:
        if not 0 <= register <= 0xFFFFFFFF:
            raise UsageError(f"CRC register value {register} is not a 32-bit value")
        self._zlib = _bitrev32(register) ^ 0xFFFFFFFF

    def feed_words(self, data: BytesLike, length: int) -> None:
        """Feed ``data[:length]``; ``length`` is a multiple of 4."""
        if not length:
            return
        words = array(_WORD)
        words.frombytes(bytes(data[:length]).translate(_BITREV))
        words.byteswap()  # each word's bytes most significant first, as the unit shifts them in
        self._zlib = zlib.crc32(words, self._zlib)

    @property
    def register(self) -> int:
        return _bitrev32(self._zlib ^ 0xFFFFFFFF)


def crc16_xmodem(data: BytesLike, value: int = 0) -> int:
    """CRC-16/XMODEM; ``value`` continues a previous result."""
    return binascii.crc_hqx(data, value)


class _Crc:
    """Shared shape of the CRCs: an integer value, digested big-endian."""

    name = ""
    digest_size = 4

    @property
    def value(self) -> int:
        raise NotImplementedError

    def digest(self) -> bytes:
        return self.value.to_bytes(self.digest_size, "big")

    def hexdigest(self) -> str:
        return self.digest().hex()


class Crc32(_Crc):
    """Incremental zlib CRC-32."""

    name = "crc32"
    digest_size = 4

    def __init__(self, data: BytesLike = b"") -> None:
        self._value = zlib.crc32(data)

    def update(self, data: BytesLike) -> None:
        self._value = zlib.crc32(data, self._value)

    @property
    def value(self) -> int:
        return self._value


class Crc32Stm32(_Crc):
    """Incremental STM32 hardware CRC, for writers whose pieces do not end on word boundaries.

    Bytes that do not yet make a whole word wait for the next :meth:`update`; :attr:`value` is the
    register over the whole words so far (a trailing 1-3 bytes are ignored, as srec_cat does), and
    :attr:`pending` says how many bytes that leaves out.
    """

    name = "crc32-stm32"
    digest_size = 4

    def __init__(self, data: BytesLike = b"") -> None:
        self._state = _Stm32State(STM32_CRC_INIT)
        self._tail = b""
        self.update(data)

    def update(self, data: BytesLike) -> None:
        data = self._tail + bytes(data) if self._tail else _octets(data)
        whole = len(data) - len(data) % 4
        self._state.feed_words(data, whole)
        self._tail = bytes(data[whole:])

    @property
    def pending(self) -> int:
        return len(self._tail)

    @property
    def value(self) -> int:
        return self._state.register


class Crc16Xmodem(_Crc):
    """Incremental CRC-16/XMODEM."""

    name = "crc16-xmodem"
    digest_size = 2

    def __init__(self, data: BytesLike = b"") -> None:
        self._value = binascii.crc_hqx(data, 0)

    def update(self, data: BytesLike) -> None:
        self._value = binascii.crc_hqx(data, self._value)

    @property
    def value(self) -> int:
        return self._value


class _Hash:
    """hashlib under the registry's name (hashlib calls SHA-256 "sha256" too, MD5 "md5")."""

    def __init__(self, name: str, data: BytesLike = b"") -> None:
        self._hash = hashlib.new(name, data, usedforsecurity=name != "md5")
        self.name = name
        self.digest_size = self._hash.digest_size

    def update(self, data: BytesLike) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def new(name: str, data: BytesLike = b"") -> Checksum:
    """A fresh incremental checksum by registry name; unknown names are a :class:`UsageError`."""
    if name == "crc32":
        return Crc32(data)
    if name == "crc32-stm32":
        return Crc32Stm32(data)
    if name == "crc16-xmodem":
        return Crc16Xmodem(data)
    if name in ("md5", "sha256"):
        return _Hash(name, data)
    raise UsageError(f"unknown checksum {name!r}; known: {', '.join(CHECKSUM_NAMES)}")


def checksum(name: str, data: BytesLike) -> bytes:
    """The digest of ``data`` under ``name`` (CRCs big-endian, see the module docstring)."""
    return new(name, data).digest()

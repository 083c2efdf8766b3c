"""Putting a seed-002 image back together on the device, whatever order the chunks arrive in.

MQTT at QoS 1 delivers at least once, a device that re-asks with "Request Data Chunk" may get pieces
cut at a different size, and a broker may drop queued messages for a slow subscriber. So the
reassembler keeps the set of byte ranges it holds rather than a list of indices: a chunk whose bytes
are all held already is a duplicate (and must agree with what is held), :meth:`Reassembler.missing`
lists the gaps to re-request, and :attr:`Reassembler.complete` says when there are none. Every chunk
must agree with the first on the image's size and version; a device gives ``running_version`` to get
the agent's INVALID_VERSION check and ``max_size`` (its slot) so a forged total_size cannot make it
reserve more memory than it has.
"""

from __future__ import annotations

import bisect
from enum import Enum

from mcuota.image.version import ImageVersion
from mcuota.transport.seed002.chunks import CHUNK_SIZE, Chunk, unpack_chunk
from mcuota.transport.seed002.results import OtaError, Seed002Error

DEFAULT_MAX_SIZE = 16 * 1024 * 1024


class ChunkOutcome(Enum):
    NEW = "new"                # bytes not held before (possibly overlapping held ones, which agreed)
    DUPLICATE = "duplicate"    # every byte already held, and identical


class Reassembler:
    """Collects chunks of one image; pure, no I/O."""

    def __init__(self, *, running_version: ImageVersion | None = None,
                 expected_version: ImageVersion | None = None, max_size: int = DEFAULT_MAX_SIZE,
                 max_data: int = CHUNK_SIZE) -> None:
        self.running_version = running_version
        self.expected_version = expected_version
        self.max_size = max_size
        self.max_data = max_data
        self.version: tuple[int, int, int] | None = None
        self.total_size: int | None = None
        self.chunks_new = 0
        self.chunks_duplicate = 0
        self._buffer = bytearray()
        self._starts: list[int] = []   # held ranges [start, end), sorted, disjoint, not touching
        self._ends: list[int] = []

    # ------------------------------------------------------------------------------------------ input

    def feed(self, payload: bytes) -> ChunkOutcome:
        """Parse one payload from the unique topic and take its bytes (see :func:`unpack_chunk`)."""
        return self.accept(unpack_chunk(payload, max_data=self.max_data))

    def accept(self, chunk: Chunk) -> ChunkOutcome:
        header = chunk.header
        triple = header.version_triple
        if self.version is None:
            self._check_first(triple, header.total_size)
            self.version, self.total_size = triple, header.total_size
            self._buffer = bytearray(header.total_size)
        elif triple != self.version or header.total_size != self.total_size:
            raise Seed002Error(OtaError.CHUNK_MISMATCH,
                               f"chunk {header.index} is version {'.'.join(map(str, triple))} of "
                               f"{header.total_size} bytes; earlier chunks said "
                               f"{'.'.join(map(str, self.version))} of {self.total_size} bytes")
        start, end = header.image_offset, header.image_offset + header.data_size
        covered = 0
        for held_start, held_end in self._overlaps(start, end):
            lo, hi = max(start, held_start), min(end, held_end)
            if self._buffer[lo:hi] != chunk.data[lo - start:hi - start]:
                raise Seed002Error(OtaError.CHUNK_MISMATCH,
                                   f"chunk {header.index} differs from bytes already received "
                                   f"in {lo}..{hi - 1}")
            covered += hi - lo
        if covered == end - start:
            self.chunks_duplicate += 1
            return ChunkOutcome.DUPLICATE
        self._buffer[start:end] = chunk.data
        self._add_range(start, end)
        self.chunks_new += 1
        return ChunkOutcome.NEW

    # ------------------------------------------------------------------------------------------ state

    @property
    def received(self) -> int:
        """Distinct bytes held."""
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    @property
    def complete(self) -> bool:
        return self.total_size is not None and self.received == self.total_size

    def missing(self) -> list[tuple[int, int]]:
        """The gaps as (offset, length), in order; ``[]`` before the first chunk (the size is unknown)."""
        if self.total_size is None:
            return []
        gaps, position = [], 0
        for start, end in zip(self._starts, self._ends, strict=True):
            if start > position:
                gaps.append((position, start - position))
            position = end
        if position < self.total_size:
            gaps.append((position, self.total_size - position))
        return gaps

    def next_request(self, size: int = CHUNK_SIZE) -> tuple[int, int] | None:
        """The (Offset, Size) of the next "Request Data Chunk" to send, aligned to ``size`` so the answer
        indexes cleanly; None when complete."""
        if self.total_size is None:
            return (0, size)
        gaps = self.missing()
        if not gaps:
            return None
        offset = gaps[0][0] // size * size
        return (offset, size)

    def image(self) -> bytes:
        """The reassembled image; ``INCOMPLETE`` naming the first gap while any byte is missing."""
        if not self.complete:
            gaps = self.missing()
            first = f"first gap at {gaps[0][0]}, {gaps[0][1]} bytes" if gaps else "no chunk received"
            raise Seed002Error(OtaError.INCOMPLETE,
                               f"{self.received} of {self.total_size or '?'} bytes received ({first})")
        return bytes(self._buffer)

    # -------------------------------------------------------------------------------------- internals

    def _check_first(self, triple: tuple[int, int, int], total_size: int) -> None:
        if total_size > self.max_size:
            raise Seed002Error(OtaError.TOO_LARGE,
                               f"image of {total_size} bytes exceeds the {self.max_size} accepted")
        shown = ".".join(map(str, triple))
        if self.running_version is not None and not triple > self.running_version.triple:
            raise Seed002Error(OtaError.INVALID_VERSION,
                               f"chunk version {shown} is not newer than running {self.running_version}")
        if self.expected_version is not None and triple != self.expected_version.triple:
            raise Seed002Error(OtaError.CHUNK_MISMATCH,
                               f"chunk version {shown} is not the job document's {self.expected_version}")

    def _overlaps(self, start: int, end: int) -> list[tuple[int, int]]:
        i = bisect.bisect_right(self._ends, start)
        found = []
        while i < len(self._starts) and self._starts[i] < end:
            found.append((self._starts[i], self._ends[i]))
            i += 1
        return found

    def _add_range(self, start: int, end: int) -> None:
        # merge with every held range overlapping or touching [start, end)
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._starts, end)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

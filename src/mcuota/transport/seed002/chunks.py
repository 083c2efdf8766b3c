"""The seed-002 MQTT data chunk: a 32-byte "OTAImage" header and up to 4096 bytes of the image.

Header (``cy_ota_mqtt_chunk_payload_header_t``, little-endian, ``<8s5H2I3H``)::

    0  8s  magic "OTAImage"          16 u16 version build        28 u16 total_num_payloads
    8  u16 offset_to_data (32)       18 u32 total_size           30 u16 this_payload_index (0-based)
    10 u16 image_type (0 = one file) 22 u32 image_offset
    12 u16 version major             26 u16 data_size
    14 u16 version minor

How the publisher splits, from Infineon's ``publisher.py``: "Request Update" sends the whole image in
4096-byte chunks, index i at offset 4096*i, ``total_num_payloads`` = ceil(size/4096). "Request Data
Chunk" {Offset, Size} answers with the bytes [Offset, Offset+Size) indexed as if the image were cut in
``Size``-byte pieces: index Offset // Size, total ceil(image/Size). mcuota does the same for Size <=
4096 and cuts a larger request into whole 4096-byte pieces from Offset on, so no payload ever exceeds
32 + 4096 bytes and every piece short of the image's end is a full piece its index agrees with.

The version fields carry the *offered* version (major, minor, and the "build" that is mcuota's
revision); the agent refuses a chunk whose version is not newer than what it runs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mcuota.errors import CapacityError, UsageError
from mcuota.image.version import ImageVersion
from mcuota.transport.seed002.results import OtaError, Seed002Error

HEADER = struct.Struct("<8s5H2I3H")
HEADER_SIZE = HEADER.size
MAGIC = b"OTAImage"
IMAGE_TYPE_SINGLE = 0
CHUNK_SIZE = 4096
MAX_PAYLOADS = 0xFFFF
MAX_TOTAL_SIZE = 0xFFFFFFFF

assert HEADER_SIZE == 32


@dataclass(frozen=True)
class ChunkHeader:
    """One chunk's header, field for field."""

    major: int
    minor: int
    build: int
    total_size: int
    image_offset: int
    data_size: int
    total_payloads: int
    index: int
    offset_to_data: int = HEADER_SIZE
    image_type: int = IMAGE_TYPE_SINGLE

    @property
    def version_triple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.build)

    @property
    def is_last_piece(self) -> bool:
        """Its data reaches the end of the image."""
        return self.image_offset + self.data_size == self.total_size

    def pack(self) -> bytes:
        try:
            return HEADER.pack(MAGIC, self.offset_to_data, self.image_type, self.major, self.minor,
                               self.build, self.total_size, self.image_offset, self.data_size,
                               self.total_payloads, self.index)
        except struct.error as exc:
            raise UsageError(f"chunk header field out of range: {exc}") from None


@dataclass(frozen=True)
class Chunk:
    header: ChunkHeader
    data: bytes


def is_chunk(payload: bytes) -> bool:
    """Whether a payload on the unique topic is data rather than a JSON document."""
    return payload[:len(MAGIC)] == MAGIC


def pack_chunk(header: ChunkHeader, data: bytes) -> bytes:
    if len(data) != header.data_size:
        raise UsageError(f"chunk data is {len(data)} bytes, header says {header.data_size}")
    if header.offset_to_data < HEADER_SIZE:
        raise UsageError(f"offset_to_data {header.offset_to_data} is inside the {HEADER_SIZE}-byte header")
    return header.pack() + bytes(header.offset_to_data - HEADER_SIZE) + data


def unpack_chunk(payload: bytes, *, max_data: int = CHUNK_SIZE) -> Chunk:
    """Parse and check one chunk on its own (the checks the agent makes, and the ones it should make).

    Consistency with other chunks of the same image is the :class:`~.reassembly.Reassembler`'s job."""
    if len(payload) < HEADER_SIZE:
        raise Seed002Error(OtaError.NOT_A_HEADER,
                           f"payload of {len(payload)} bytes is shorter than the header")
    (magic, offset_to_data, image_type, major, minor, build, total_size, image_offset, data_size,
     total_payloads, index) = HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise Seed002Error(OtaError.NOT_A_HEADER, f"bad magic {magic!r} at offset 0 (expected {MAGIC!r})")
    if not HEADER_SIZE <= offset_to_data <= len(payload):
        raise Seed002Error(OtaError.NOT_A_HEADER,
                           f"offset_to_data {offset_to_data} at offset 8 is outside "
                           f"{HEADER_SIZE}..{len(payload)}")
    if image_type != IMAGE_TYPE_SINGLE:
        raise Seed002Error(OtaError.NOT_A_HEADER, f"image_type {image_type} at offset 10 (only 0 is defined)")
    header = ChunkHeader(major, minor, build, total_size, image_offset, data_size, total_payloads, index,
                         offset_to_data, image_type)
    if len(payload) - offset_to_data != data_size:
        raise Seed002Error(OtaError.BAD_CHUNK_SIZE,
                           f"data_size {data_size} at offset 26, but "
                           f"{len(payload) - offset_to_data} bytes follow")
    if data_size == 0 or data_size > max_data:
        raise Seed002Error(OtaError.BAD_CHUNK_SIZE,
                           f"data_size {data_size} at offset 26 is not in 1..{max_data}")
    if image_offset + data_size > total_size:
        raise Seed002Error(OtaError.BAD_CHUNK_OFFSET,
                           f"image_offset {image_offset} + data_size {data_size} runs past "
                           f"total_size {total_size}")
    if total_payloads == 0 or index >= total_payloads:
        raise Seed002Error(OtaError.BAD_CHUNK_INDEX,
                           f"this_payload_index {index} at offset 30 is not below "
                           f"total_num_payloads {total_payloads}")
    if not header.is_last_piece:
        # a piece short of the end has the full piece size: index and count follow from it
        if image_offset // data_size != index:
            raise Seed002Error(OtaError.BAD_CHUNK_INDEX,
                               f"this_payload_index {index} disagrees with image_offset {image_offset} "
                               f"in pieces of {data_size}")
        if -(-total_size // data_size) != total_payloads:
            raise Seed002Error(OtaError.BAD_CHUNK_INDEX,
                               f"total_num_payloads {total_payloads} disagrees with total_size {total_size} "
                               f"in pieces of {data_size}")
    return Chunk(header, bytes(payload[offset_to_data:]))


def payload_count(total_size: int, piece_size: int = CHUNK_SIZE) -> int:
    """ceil(total_size / piece_size), refused when it does not fit the header's u16."""
    if total_size > MAX_TOTAL_SIZE:
        raise CapacityError(f"image of {total_size} bytes does not fit the chunk header's u32 total_size")
    count = -(-total_size // piece_size)
    if count > MAX_PAYLOADS:
        raise CapacityError(f"image of {total_size} bytes needs {count} pieces of {piece_size}; "
                            f"the chunk header counts at most {MAX_PAYLOADS}")
    return count


def chunk_image(image: bytes, version: ImageVersion, *, chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    """The whole image as "Request Update" sends it: every piece, in order."""
    if not image:
        raise UsageError("cannot chunk an empty image")
    return chunks_for_request(image, version, 0, len(image), chunk_size=chunk_size)


def chunks_for_request(image: bytes, version: ImageVersion, offset: int, size: int, *,
                       chunk_size: int = CHUNK_SIZE) -> list[bytes]:
    """The chunk(s) answering "Request Data Chunk" {Offset, Size}; a request past the end is
    ``BAD_CHUNK_OFFSET``, one so small the image would need more than 65535 pieces ``BAD_CHUNK_SIZE``."""
    if not 1 <= chunk_size <= 0xFFFF:
        raise UsageError(f"chunk size {chunk_size} is not in 1..65535")
    if size <= 0:
        raise Seed002Error(OtaError.BAD_CHUNK_SIZE, f"requested size {size} is not positive")
    if not 0 <= offset < len(image):
        raise Seed002Error(OtaError.BAD_CHUNK_OFFSET,
                           f"requested offset {offset} is outside the {len(image)}-byte image")
    step = min(size, chunk_size)
    try:
        total_payloads = payload_count(len(image), step)
    except CapacityError as exc:
        raise Seed002Error(OtaError.BAD_CHUNK_SIZE, str(exc)) from None
    end = min(offset + size, len(image))
    view = memoryview(image)
    chunks = []
    for start in range(offset, end, step):
        # every piece but the image's last is a full step, so a request over 4096 bytes may get up to
        # 4095 bytes more than it asked for: a short piece in mid-image would contradict its own index
        data = view[start:min(start + step, len(image))]
        header = ChunkHeader(version.major, version.minor, version.revision, len(image), start, len(data),
                             total_payloads, start // step)
        chunks.append(header.pack() + data)
    return chunks

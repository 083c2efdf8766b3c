"""The 32-byte "OTAImage" chunk header, the chunker, and the device-side reassembler."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcuota.errors import CapacityError, UsageError
from mcuota.image.version import ImageVersion
from mcuota.transport.seed002 import (
    CHUNK_SIZE,
    HEADER_SIZE,
    ChunkHeader,
    ChunkOutcome,
    OtaError,
    Reassembler,
    Seed002Error,
    chunk_image,
    chunks_for_request,
    is_chunk,
    pack_chunk,
    payload_count,
    unpack_chunk,
)

V2 = ImageVersion(2, 0, 0)
IMAGE = bytes(random.Random(2).randbytes(10_000))


def infineon_chunk(image: bytes, offset: int, size: int, version: tuple[int, int, int] = (2, 0, 0)) -> bytes:
    """What Infineon's publisher.py do_chunking() builds for one piece, restated from the seed facts."""
    data = image[offset:offset + size]
    total = -(-len(image) // size)
    header = struct.pack("<8s5H2I3H", b"OTAImage", 32, 0, *version, len(image), offset, len(data), total,
                         offset // size)
    return header + data


def test_header_layout_byte_for_byte() -> None:
    header = ChunkHeader(major=1, minor=2, build=3, total_size=0x01020304, image_offset=0x1000,
                         data_size=4096, total_payloads=0x103, index=1)
    raw = header.pack()
    assert len(raw) == HEADER_SIZE == 32
    assert raw == bytes.fromhex("4f5441496d616765" "2000" "0000" "0100" "0200" "0300" "04030201" "00100000"
                                "0010" "0301" "0100")


def test_whole_image_is_what_infineons_publisher_sends() -> None:
    chunks = chunk_image(IMAGE, V2)
    assert chunks == [infineon_chunk(IMAGE, offset, CHUNK_SIZE)
                      for offset in range(0, len(IMAGE), CHUNK_SIZE)]
    assert [len(c) for c in chunks] == [4128, 4128, 32 + 10_000 - 8192]
    assert all(is_chunk(c) for c in chunks)
    assert not is_chunk(b'{"Message": "Update Available"}')


@pytest.mark.parametrize(("offset", "size"), [(0, 4096), (4096, 4096), (8192, 4096), (100, 1000), (9999, 1),
                                              (8000, 4096), (0, 10_000)])
def test_chunk_request_up_to_4096_is_infineons_single_chunk(offset: int, size: int) -> None:
    size = min(size, CHUNK_SIZE)
    assert chunks_for_request(IMAGE, V2, offset, size) == [infineon_chunk(IMAGE, offset, size)]


def test_larger_chunk_requests_are_cut_into_whole_4096_pieces() -> None:
    chunks = [unpack_chunk(c).header for c in chunks_for_request(IMAGE, V2, 0, 5000)]
    assert [(h.image_offset, h.data_size, h.index, h.total_payloads) for h in chunks] == [
        (0, 4096, 0, 3), (4096, 4096, 1, 3)]
    tail = [unpack_chunk(c).header for c in chunks_for_request(IMAGE, V2, 4096, 1 << 20)]
    assert [(h.image_offset, h.data_size, h.index) for h in tail] == [(4096, 4096, 1), (8192, 1808, 2)]


def test_chunk_requests_outside_the_image_are_refused() -> None:
    for offset, size, code in [(10_000, 1, OtaError.BAD_CHUNK_OFFSET), (0, 0, OtaError.BAD_CHUNK_SIZE)]:
        with pytest.raises(Seed002Error) as refused:
            chunks_for_request(IMAGE, V2, offset, size)
        assert refused.value.code is code
    with pytest.raises(Seed002Error) as tiny:     # 10 000 one-byte pieces is fine, 70 000 is not
        chunks_for_request(bytes(70_000), V2, 0, 1)
    assert tiny.value.code is OtaError.BAD_CHUNK_SIZE
    with pytest.raises(UsageError):
        chunk_image(b"", V2)
    with pytest.raises(CapacityError):
        payload_count(0x10000 * CHUNK_SIZE)
    assert payload_count(0xFFFF * CHUNK_SIZE) == 0xFFFF


def _corrupt(chunk: bytes, fmt: str, offset: int, value: int) -> bytes:
    raw = bytearray(chunk)
    struct.pack_into(fmt, raw, offset, value)
    return bytes(raw)


FIRST = infineon_chunk(IMAGE, 0, 4096)
LAST = infineon_chunk(IMAGE, 8192, 4096)
BAD_CHUNKS = {
    "short": (FIRST[:31], OtaError.NOT_A_HEADER),
    "magic": (b"OTAImagf" + FIRST[8:], OtaError.NOT_A_HEADER),
    "offset_to_data below header": (_corrupt(FIRST, "<H", 8, 16), OtaError.NOT_A_HEADER),
    "offset_to_data past payload": (_corrupt(FIRST, "<H", 8, 5000), OtaError.NOT_A_HEADER),
    "image type": (_corrupt(FIRST, "<H", 10, 1), OtaError.NOT_A_HEADER),
    "data_size vs payload": (_corrupt(FIRST, "<H", 26, 4000), OtaError.BAD_CHUNK_SIZE),
    "truncated data": (FIRST[:-1], OtaError.BAD_CHUNK_SIZE),
    "empty data": (_corrupt(FIRST[:32], "<H", 26, 0), OtaError.BAD_CHUNK_SIZE),
    "over 4096": (infineon_chunk(IMAGE, 0, 5000), OtaError.BAD_CHUNK_SIZE),
    "past total_size": (_corrupt(LAST, "<I", 18, 9000), OtaError.BAD_CHUNK_OFFSET),
    "offset beyond image": (_corrupt(FIRST, "<I", 22, 8000), OtaError.BAD_CHUNK_OFFSET),
    "index = total": (_corrupt(LAST, "<H", 30, 3), OtaError.BAD_CHUNK_INDEX),
    "zero payloads": (_corrupt(LAST, "<H", 28, 0), OtaError.BAD_CHUNK_INDEX),
    "index vs offset": (_corrupt(FIRST, "<H", 30, 1), OtaError.BAD_CHUNK_INDEX),
    "count vs size": (_corrupt(FIRST, "<H", 28, 4), OtaError.BAD_CHUNK_INDEX),
    "offset vs index": (_corrupt(FIRST, "<I", 22, 4096), OtaError.BAD_CHUNK_INDEX),
}


@pytest.mark.parametrize(("payload", "code"), BAD_CHUNKS.values(), ids=BAD_CHUNKS.keys())
def test_bad_chunks_are_refused_by_name(payload: bytes, code: OtaError) -> None:
    with pytest.raises(Seed002Error) as refused:
        unpack_chunk(payload)
    assert refused.value.code is code
    with pytest.raises(Seed002Error):
        Reassembler().feed(payload)


def test_pack_chunk_checks_its_arguments() -> None:
    header = ChunkHeader(1, 0, 0, 10, 0, 10, 1, 0, offset_to_data=40)
    payload = pack_chunk(header, b"0123456789")
    assert unpack_chunk(payload).data == b"0123456789"     # a longer header is skipped as the agent does
    with pytest.raises(UsageError):
        pack_chunk(header, b"short")
    with pytest.raises(UsageError):
        ChunkHeader(0x10000, 0, 0, 1, 0, 1, 1, 0).pack()


# ----------------------------------------------------------------------------------------- reassembly


def test_reassembles_in_any_order_with_duplicates() -> None:
    chunks = chunk_image(IMAGE, V2)
    r = Reassembler(running_version=ImageVersion(1, 0, 0))
    assert r.missing() == []
    assert r.next_request() == (0, 4096)
    assert r.feed(chunks[2]) is ChunkOutcome.NEW
    assert (r.total_size, r.version) == (10_000, (2, 0, 0))
    assert r.missing() == [(0, 8192)]
    assert r.feed(chunks[0]) is ChunkOutcome.NEW
    assert r.missing() == [(4096, 4096)]
    assert r.next_request() == (4096, 4096)
    assert not r.complete
    with pytest.raises(Seed002Error) as early:
        r.image()
    assert early.value.code is OtaError.INCOMPLETE
    assert "first gap at 4096" in str(early.value)
    assert r.feed(chunks[0]) is ChunkOutcome.DUPLICATE
    assert r.feed(chunks[1]) is ChunkOutcome.NEW
    assert r.complete
    assert r.next_request() is None
    assert r.image() == IMAGE
    assert (r.chunks_new, r.chunks_duplicate) == (3, 1)


def test_pieces_of_different_sizes_fit_together() -> None:
    r = Reassembler()
    r.feed(chunks_for_request(IMAGE, V2, 0, 1000)[0])
    r.feed(chunks_for_request(IMAGE, V2, 500, 1000)[0])       # overlaps, agrees
    for piece in chunks_for_request(IMAGE, V2, 1500, 20_000):
        r.feed(piece)
    assert r.image() == IMAGE
    assert r.feed(chunks_for_request(IMAGE, V2, 200, 300)[0]) is ChunkOutcome.DUPLICATE


def test_chunks_that_disagree_are_refused() -> None:
    r = Reassembler()
    r.feed(chunk_image(IMAGE, V2)[0])
    other = bytearray(IMAGE)
    other[10] ^= 1
    with pytest.raises(Seed002Error) as changed:
        r.feed(chunk_image(bytes(other), V2)[0])
    assert changed.value.code is OtaError.CHUNK_MISMATCH
    with pytest.raises(Seed002Error) as version:
        r.feed(chunk_image(IMAGE, ImageVersion(2, 0, 1))[1])
    assert version.value.code is OtaError.CHUNK_MISMATCH
    with pytest.raises(Seed002Error) as size:
        r.feed(chunk_image(IMAGE + b"x", V2)[1])
    assert size.value.code is OtaError.CHUNK_MISMATCH
    assert r.missing() == [(4096, 10_000 - 4096)]               # nothing of the refused chunks was kept


def test_version_and_size_limits() -> None:
    for running in (ImageVersion(2, 0, 0), ImageVersion(2, 1, 0)):
        with pytest.raises(Seed002Error) as old:
            Reassembler(running_version=running).feed(chunk_image(IMAGE, V2)[0])
        assert old.value.code is OtaError.INVALID_VERSION
    with pytest.raises(Seed002Error) as unexpected:
        Reassembler(expected_version=ImageVersion(3)).feed(chunk_image(IMAGE, V2)[0])
    assert unexpected.value.code is OtaError.CHUNK_MISMATCH
    with pytest.raises(Seed002Error) as large:
        Reassembler(max_size=9_999).feed(chunk_image(IMAGE, V2)[0])
    assert large.value.code is OtaError.TOO_LARGE
    forged = _corrupt(FIRST, "<I", 18, 0xFFFFFFFF)               # no 4 GiB buffer for a forged size
    with pytest.raises(Seed002Error) as forged_size:
        Reassembler().feed(_corrupt(forged, "<H", 28, 0xFFFF))
    assert forged_size.value.code in (OtaError.TOO_LARGE, OtaError.BAD_CHUNK_INDEX)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=20_000), st.randoms(use_true_random=False),
       st.integers(0, 3))
def test_any_order_any_duplicates_round_trip(image: bytes, rnd: random.Random, extra: int) -> None:
    chunks = chunk_image(image, V2)
    delivered = chunks + [rnd.choice(chunks) for _ in range(extra)]
    rnd.shuffle(delivered)
    r = Reassembler()
    outcomes = [r.feed(c) for c in delivered]
    assert outcomes.count(ChunkOutcome.NEW) == len(chunks)
    assert r.image() == image
    for chunk in chunks:
        header = unpack_chunk(chunk).header
        assert header.total_payloads == len(chunks)
        assert header.version_triple == (2, 0, 0)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=12_000), st.data())
def test_chunk_requests_cover_exactly_what_was_asked(image: bytes, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(image) - 1))
    size = data.draw(st.integers(1, 9000))
    if -(-len(image) // min(size, CHUNK_SIZE)) > 0xFFFF:
        with pytest.raises(Seed002Error):
            chunks_for_request(image, V2, offset, size)
        return
    chunks = chunks_for_request(image, V2, offset, size)
    for chunk in chunks:
        piece = unpack_chunk(chunk)
        start = piece.header.image_offset
        assert piece.data == image[start:start + piece.header.data_size]
    r = Reassembler()
    for chunk in chunks:
        assert r.feed(chunk) is ChunkOutcome.NEW
    end = min(offset + size, len(image))
    for gap_start, gap_length in r.missing():
        assert gap_start + gap_length <= offset or gap_start >= end
    assert len(chunks) == -(-(end - offset) // min(size, CHUNK_SIZE))

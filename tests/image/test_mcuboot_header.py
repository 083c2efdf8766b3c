"""The 32-byte MCUboot header: field offsets as bootutil/image.h lays them out, one description for both
directions (round trips), and clear FormatErrors for what is not a header."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuota.errors import FormatError, UsageError
from mcuota.image.mcuboot import IMAGE_MAGIC, ImageFlag, ImageHeader, looks_like_mcuboot
from mcuota.image.mcuboot.header import flag_names
from mcuota.image.version import ImageVersion

versions = st.builds(ImageVersion, st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 0xFFFF),
                     st.integers(0, 0xFFFFFFFF))
headers = st.builds(
    ImageHeader,
    load_addr=st.integers(0, 0xFFFFFFFF), hdr_size=st.integers(32, 0xFFFF),
    protect_tlv_size=st.integers(0, 0xFFFF), img_size=st.integers(0, 0xFFFFFFFF),
    flags=st.integers(0, 0xFFFFFFFF).map(ImageFlag), version=versions, pad=st.integers(0, 0xFFFFFFFF),
    magic=st.just(IMAGE_MAGIC),
)


def test_field_offsets_match_bootutil() -> None:
    header = ImageHeader(load_addr=0x11223344, hdr_size=0x200, protect_tlv_size=0x1C, img_size=0x5566,
                         flags=ImageFlag.RAM_LOAD | ImageFlag.NON_BOOTABLE,
                         version=ImageVersion(1, 2, 0x0304, 0x05060708))
    raw = header.pack()
    assert len(raw) == 32
    assert struct.unpack_from("<I", raw, 0)[0] == IMAGE_MAGIC == 0x96F3B83D
    assert struct.unpack_from("<I", raw, 4)[0] == 0x11223344
    assert struct.unpack_from("<H", raw, 8)[0] == 0x200
    assert struct.unpack_from("<H", raw, 10)[0] == 0x1C
    assert struct.unpack_from("<I", raw, 12)[0] == 0x5566
    assert struct.unpack_from("<I", raw, 16)[0] == 0x30
    assert raw[20:22] == bytes([1, 2])
    assert struct.unpack_from("<H", raw, 22)[0] == 0x0304
    assert struct.unpack_from("<I", raw, 24)[0] == 0x05060708
    assert raw[28:32] == bytes(4)
    assert header.tlv_offset == 0x200 + 0x5566
    assert header.hashed_size == 0x200 + 0x5566 + 0x1C


@given(headers)
def test_pack_unpack_round_trip(header: ImageHeader) -> None:
    again = ImageHeader.unpack(header.pack() + b"trailing bytes are not the header's business")
    assert again == header
    assert again.version.build == header.version.build


def test_unpack_rejects_what_is_not_a_header() -> None:
    good = ImageHeader(0, 0x200, 0, 16, ImageFlag(0), ImageVersion(1)).pack()
    with pytest.raises(FormatError, match="truncated: 31 bytes"):
        ImageHeader.unpack(good[:31])
    with pytest.raises(FormatError, match="bad magic 0x00000000 at offset 0"):
        ImageHeader.unpack(bytes(32))
    small = bytearray(good)
    small[8:10] = (16).to_bytes(2, "little")
    with pytest.raises(FormatError, match="header size 16 at offset 8"):
        ImageHeader.unpack(bytes(small))


def test_out_of_range_field_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="img_size=0x100000000"):
        ImageHeader(0, 0x200, 0, 1 << 32, ImageFlag(0), ImageVersion()).pack()


def test_looks_like_mcuboot() -> None:
    good = ImageHeader(0, 0x200, 0, 0, ImageFlag(0), ImageVersion()).pack()
    assert looks_like_mcuboot(good)
    assert not looks_like_mcuboot(good[:20])
    assert not looks_like_mcuboot(b"\x00" * 64)
    assert not looks_like_mcuboot(good[:8] + b"\x10\x00" + good[10:])


def test_flag_names_include_unknown_bits() -> None:
    assert flag_names(0) == []
    assert flag_names(ImageFlag.RAM_LOAD | ImageFlag.ROM_FIXED) == ["RAM_LOAD", "ROM_FIXED"]
    assert flag_names(0x10 | 0x8000_0000) == ["NON_BOOTABLE", "0x80000000"]


def test_package_exports_resolve_lazily() -> None:
    """Every exported name loads on first use, and importing the package pulls in no crypto."""
    import subprocess
    import sys

    code = ("import sys, mcuota.image.mcuboot as m; before = 'cryptography' in sys.modules; "
            "[getattr(m, n) for n in m.__all__]; print(before, 'cryptography' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "False"]

"""The slot trailer: sizes as imgtool computes them, field offsets as bootutil reads them, and
encode -> decode round trips over every flash configuration MCUboot supports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcuota.errors import FormatError, UsageError
from mcuota.image.mcuboot import (
    BOOT_MAGIC,
    FlagState,
    MagicState,
    SwapType,
    TrailerLayout,
    decode_trailer,
    encode_trailer,
    swap_info_byte,
    trailer_size,
    trailer_write,
)
from mcuota.image.mcuboot.trailer import boot_magic

SLOT = 0x20000


def test_magic_bytes() -> None:
    assert BOOT_MAGIC.hex() == "77c295f360d2ef7f3552500f2cb67980"
    assert boot_magic(16)[:2] == b"\x10\x00"
    assert boot_magic(32)[:2] == b"\x20\x00"
    assert boot_magic(16)[2:] == boot_magic(32)[2:]
    assert len(boot_magic(32)) == 16


@pytest.mark.parametrize(("kwargs", "size"), [
    ({}, 128 * 3 * 1 + 4 * 8 + 16),
    ({"align": 8}, 128 * 3 * 8 + 4 * 8 + 16),
    ({"align": 4, "max_sectors": 32}, 32 * 3 * 4 + 4 * 8 + 16),
    ({"align": 32}, 128 * 3 * 32 + 4 * 32 + 32),
    ({"align": 8, "max_align": 16}, 128 * 3 * 8 + 4 * 16 + 16),
    ({"overwrite_only": True}, 2 * 8 + 16),
    ({"overwrite_only": True, "align": 32}, 2 * 32 + 32),
])
def test_trailer_size_matches_imgtool(kwargs: dict[str, int], size: int) -> None:
    assert trailer_size(**kwargs) == size
    assert TrailerLayout(SLOT, **kwargs).size == size


def test_field_offsets_for_the_common_layout() -> None:
    layout = TrailerLayout(SLOT, align=8)
    assert layout.magic_offset == SLOT - 16
    assert layout.image_ok_offset == SLOT - 24
    assert layout.copy_done_offset == SLOT - 32
    assert layout.swap_info_offset == SLOT - 40
    assert layout.swap_size_offset == SLOT - 48
    assert layout.offset == layout.status_offset == SLOT - layout.size
    wide = TrailerLayout(SLOT, align=32)
    assert wide.image_ok_offset == SLOT - 64
    assert wide.swap_size_offset == SLOT - 160


def test_pad_and_confirm_trailers() -> None:
    layout = TrailerLayout(SLOT, align=8)
    test = encode_trailer(layout)
    assert len(test) == layout.size == layout.span
    assert test[-16:] == BOOT_MAGIC
    assert set(test[:-16]) == {0xFF}
    perm = encode_trailer(layout, image_ok=True)
    assert perm[-24] == 0x01
    assert perm[-23:-16] == b"\xff" * 7
    state = decode_trailer(test, layout)
    assert (state.magic, state.image_ok, state.copy_done, state.swap_type) == (
        MagicState.GOOD, FlagState.UNSET, FlagState.UNSET, SwapType.NONE)
    assert decode_trailer(perm, layout).image_ok is FlagState.SET


def test_erased_slot_decodes_as_unset() -> None:
    for erased in (0xFF, 0x00):
        layout = TrailerLayout(SLOT, align=4, erased_val=erased)
        state = decode_trailer(bytes([erased]) * SLOT, layout)
        assert state.magic is MagicState.UNSET
        assert state.image_ok is state.copy_done is FlagState.UNSET
        assert state.swap_type is SwapType.NONE
        assert state.swap_size is None


def test_bad_values_decode_as_bad() -> None:
    layout = TrailerLayout(SLOT, align=8)
    data = bytearray(encode_trailer(layout, image_ok=True))
    data[-1] ^= 0x01
    data[-24] = 0x02
    data[-32] = 0x00
    state = decode_trailer(bytes(data), layout)
    assert state.magic is MagicState.BAD
    assert state.image_ok is FlagState.BAD
    assert state.copy_done is FlagState.BAD


def test_swap_info_above_revert_reads_as_none() -> None:
    layout = TrailerLayout(SLOT, align=8)
    data = bytearray(encode_trailer(layout))
    data[layout.swap_info_offset - layout.offset] = 0x15  # image 1, type FAIL
    state = decode_trailer(bytes(data), layout)
    assert state.swap_type is SwapType.NONE
    assert state.image_num == 0
    assert state.swap_info_raw == 0x15


@given(
    align=st.sampled_from([1, 2, 4, 8, 16, 32]),
    erased=st.sampled_from([0x00, 0xFF]),
    overwrite_only=st.booleans(),
    max_sectors=st.integers(1, 256),
    magic=st.booleans(),
    image_ok=st.booleans(),
    copy_done=st.booleans(),
    swap=st.sampled_from([None, SwapType.NONE, SwapType.TEST, SwapType.PERM, SwapType.REVERT]),
    image_num=st.integers(0, 15),
    swap_size=st.none() | st.integers(0, 0xFFFFFFFE),
)
def test_encode_decode_round_trip(align: int, erased: int, overwrite_only: bool, max_sectors: int,  # noqa: PLR0917
                                  magic: bool, image_ok: bool, copy_done: bool, swap: SwapType | None,
                                  image_num: int, swap_size: int | None) -> None:
    layout = TrailerLayout(1 << 20, align=align, erased_val=erased, overwrite_only=overwrite_only,
                           max_sectors=max_sectors)
    if swap_size is not None and swap_size.to_bytes(4, "little") == bytes([erased]) * 4:
        swap_size = None  # all-erased reads back as "not written", as on flash
    data = encode_trailer(layout, magic=magic, image_ok=image_ok, copy_done=copy_done, swap_type=swap,
                          image_num=image_num, swap_size=swap_size)
    slot = bytes([erased]) * (layout.slot_size - layout.span) + data
    for view in (data, slot):
        state = decode_trailer(view, layout)
        assert state.magic is (MagicState.GOOD if magic else MagicState.UNSET)
        assert state.image_ok is (FlagState.SET if image_ok else FlagState.UNSET)
        assert state.copy_done is (FlagState.SET if copy_done else FlagState.UNSET)
        assert state.swap_type is (swap or SwapType.NONE)
        assert state.image_num == (image_num if swap is not None else 0)
        assert state.swap_size == swap_size


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"align": 3}, "alignment 3"),
    ({"max_align": 64}, "max alignment 64"),
    ({"align": 32, "max_align": 16}, "smaller than the alignment"),
    ({"erased_val": 0x55}, "erased value 0x55"),
    ({"max_sectors": 0}, "max sectors 0"),
])
def test_invalid_layouts_are_usage_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TrailerLayout(SLOT, **kwargs)


def test_layout_is_an_immutable_value() -> None:
    layout = TrailerLayout(SLOT, align=8)
    assert layout == TrailerLayout(SLOT, align=8, max_align=8)
    assert layout != TrailerLayout(SLOT, align=4)
    assert len({layout, TrailerLayout(SLOT, align=8)}) == 1
    with pytest.raises(AttributeError):
        layout.align = 4  # type: ignore[misc]


def test_decode_needs_the_whole_trailer() -> None:
    layout = TrailerLayout(SLOT, align=8)
    with pytest.raises(FormatError, match="truncated"):
        decode_trailer(b"\xff" * (layout.size - 1), layout)


def test_encode_rejects_impossible_fields() -> None:
    layout = TrailerLayout(SLOT)
    with pytest.raises(UsageError, match="image number 16"):
        encode_trailer(layout, swap_type=SwapType.TEST, image_num=16)
    with pytest.raises(UsageError, match="swap size"):
        encode_trailer(layout, swap_size=1 << 32)


def test_overwrite_only_fields_reach_below_imgtools_reservation() -> None:
    """imgtool reserves 2 fields + magic in overwrite-only; MCUboot still lays out all four fields, so
    encode/decode cover the wider span while the image-fit check uses imgtool's size."""
    layout = TrailerLayout(SLOT, align=8, overwrite_only=True)
    assert (layout.size, layout.span) == (32, 48)
    data = encode_trailer(layout, image_ok=True, swap_type=SwapType.PERM, swap_size=0x1234)
    assert len(data) == 48
    state = decode_trailer(data, layout)
    assert (state.image_ok, state.swap_type, state.swap_size) == (FlagState.SET, SwapType.PERM, 0x1234)


@pytest.mark.parametrize("align", [1, 2, 4, 8, 16, 32])
def test_field_writes_are_aligned_and_decode(align: int) -> None:
    """Applying bootutil's writes one by one to an erased slot gives the state they describe."""
    layout = TrailerLayout(SLOT, align=align)
    slot = bytearray(b"\xff" * SLOT)
    writes = [trailer_write(layout, "magic"), trailer_write(layout, "image_ok"),
              trailer_write(layout, "copy_done"),
              trailer_write(layout, "swap_info", swap_info_byte(SwapType.REVERT, 2)),
              trailer_write(layout, "swap_size", 0x1_2345)]
    for offset, data in writes:
        assert offset % align == 0
        assert len(data) % align == 0
        assert slot[offset : offset + len(data)] == b"\xff" * len(data)  # each field written once
        slot[offset : offset + len(data)] = data
    state = decode_trailer(bytes(slot), layout)
    assert state.magic is MagicState.GOOD
    assert state.image_ok is state.copy_done is FlagState.SET
    assert (state.swap_type, state.image_num, state.swap_size) == (SwapType.REVERT, 2, 0x1_2345)
    assert bytes(slot[-layout.span :]) == encode_trailer(layout, image_ok=True, copy_done=True,
                                                        swap_type=SwapType.REVERT, image_num=2,
                                                        swap_size=0x1_2345)


def test_field_write_values_are_checked() -> None:
    layout = TrailerLayout(SLOT)
    with pytest.raises(UsageError, match="not a byte"):
        trailer_write(layout, "image_ok", 0x100)
    with pytest.raises(UsageError, match="does not fit 32 bits"):
        trailer_write(layout, "swap_size", -1)
    with pytest.raises(UsageError, match="image number"):
        swap_info_byte(SwapType.TEST, 16)

"""The bootloader's side of the trailer: the decision table row by row, the journal generation that only
reads lower after a partial operation, journal recognition, and the application-side calls."""

from __future__ import annotations

import random

import pytest
from mcuboot_helpers import device, layout_of

from mcuota.boot.mcuboot import development_key
from mcuota.boot.mcuboot.decision import swap_type_for
from mcuota.boot.mcuboot.trailers import decode_gen, encode_gen, parse_journal, read_trailer
from mcuota.boot.verdict import Outcome
from mcuota.errors import UsageError
from mcuota.flash import FaultPlan, PowerLoss
from mcuota.flash.power import TornOp
from mcuota.image.mcuboot import (
    FlagState,
    MagicState,
    SwapType,
    TrailerLayout,
    TrailerState,
    build_image,
    decode_trailer,
    encode_trailer,
)

LAYOUT = TrailerLayout(0x20000, 1)


def state(*, magic: bool = False, image_ok: int | None = None, copy_done: int | None = None,
          bad_magic: bool = False) -> TrailerState:
    data = bytearray(encode_trailer(LAYOUT, magic=magic))
    base = LAYOUT.offset
    if image_ok is not None:
        data[LAYOUT.image_ok_offset - base] = image_ok
    if copy_done is not None:
        data[LAYOUT.copy_done_offset - base] = copy_done
    if bad_magic:
        data[LAYOUT.magic_offset - base] ^= 0x10
    return decode_trailer(bytes(data), LAYOUT)


ERASED = state()


@pytest.mark.parametrize(("primary", "secondary", "expected"), [
    (ERASED, ERASED, SwapType.NONE),
    (ERASED, state(magic=True), SwapType.TEST),
    (ERASED, state(magic=True, image_ok=1), SwapType.PERM),
    (ERASED, state(magic=True, image_ok=0x03), SwapType.NONE),  # torn image_ok: bootutil's BAD
    (ERASED, state(magic=True, bad_magic=True), SwapType.NONE),
    (state(magic=True, copy_done=1), ERASED, SwapType.REVERT),
    (state(magic=True, copy_done=1, image_ok=1), ERASED, SwapType.NONE),
    (state(magic=True, copy_done=1, image_ok=0x7F), ERASED, SwapType.NONE),  # torn confirm: kept
    (state(magic=True, copy_done=0x7F), ERASED, SwapType.REVERT),  # torn copy_done: counts as set
    (state(magic=True), ERASED, SwapType.NONE),
    (state(magic=True, copy_done=1), state(magic=True), SwapType.TEST),  # a new request wins
])
def test_decision_table(primary: TrailerState, secondary: TrailerState, expected: SwapType) -> None:
    assert swap_type_for(primary, secondary) is expected


def test_swap_offset_row() -> None:
    revert_request = state(magic=True, copy_done=1)
    assert swap_type_for(ERASED, revert_request, offset_row=True) is SwapType.REVERT
    assert swap_type_for(ERASED, revert_request) is SwapType.TEST
    assert ERASED.magic is MagicState.UNSET
    assert revert_request.copy_done is FlagState.SET


@pytest.mark.parametrize("erased", [0xFF, 0x00])
def test_generation_reads_lower_after_any_partial_operation(erased: int) -> None:
    """Torn programs set a subset of the bits to program, torn erases clear a subset of the programmed
    ones: with this encoding neither can make a generation read higher than it was written."""
    rng = random.Random(1)
    fill = bytes((erased,)) * 4
    for _ in range(2000):
        gen = rng.randrange(1, 1 << 20)
        stored = encode_gen(gen, erased).to_bytes(4, "little")
        seed = rng.randrange(1 << 30)
        loss = PowerLoss(fault="torn", seq=0, op=1, device="d", kind="program", address=0, length=4)
        style = FaultPlan().torn_style
        torn_program = TornOp(random.Random(seed), style, loss).program_result(fill, stored, 1)
        torn_erase = TornOp(random.Random(seed), style, loss).erase_result(stored, fill)
        for partial in (torn_program, torn_erase):
            assert decode_gen(int.from_bytes(partial, "little"), erased) <= gen
    assert decode_gen(int.from_bytes(fill, "little"), erased) == 0


def test_request_bytes_and_confirm() -> None:
    """A test request is the magic alone, a permanent one adds image_ok (as imgtool --pad/--confirm);
    confirm writes image_ok in the primary trailer once and then touches nothing."""
    for permanent in (False, True):
        dev = device(layout_of("swap-move", "f407"))
        strategy, board = dev.strategy, dev.board
        strategy.stage(board, dev.new, permanent=permanent)
        geo = strategy.secondary
        trailer = board.read("secondary")[-geo.trailer.size:]
        assert trailer == encode_trailer(geo.trailer, image_ok=permanent)
        dev.boot()
        ops = board.domain.op_count
        strategy.confirm(board)
        assert board.domain.op_count == ops + (0 if permanent else 1)
        strategy.confirm(board)
        assert board.domain.op_count == ops + (0 if permanent else 1)


def test_the_magic_is_the_last_write_of_a_request() -> None:
    """Cut before the magic, the bootloader sees no request; torn in it, no request either."""
    dev = device(layout_of("swap-offset", "nrf52840"))
    strategy, board = dev.strategy, dev.board
    base = board.snapshot()
    board.domain.disarm()
    strategy.stage(board, dev.new, permanent=True)
    total = board.domain.ops_since_arm
    for plan in (FaultPlan.cut_before(total), *(FaultPlan.torn_at(total, seed=s) for s in range(20))):
        board.restore(base)
        board.domain.arm(plan)
        with pytest.raises(PowerLoss):
            strategy.stage(board, dev.new, permanent=True)
        board.power_cycle()
        result = dev.boot()
        assert any("Swap type: none" in line for line in result.log)


def test_journal_recognition() -> None:
    dev = device(layout_of("swap-move", "nrf52840"))
    strategy, board = dev.strategy, dev.board
    flash = board.flashes[strategy.primary.device]
    assert parse_journal(read_trailer(flash, strategy.primary), primary=True, max_size=1 << 20) is None
    dev.update()
    journal = parse_journal(read_trailer(flash, strategy.primary), primary=True, max_size=1 << 20)
    assert journal is not None
    assert journal.finished
    assert journal.swap_type is SwapType.TEST
    assert journal.gen == 1
    dev.strategy.stage(board, dev.new)  # the same version again is no downgrade: a second swap
    dev.settle()
    journal = parse_journal(read_trailer(flash, strategy.primary), primary=True, max_size=1 << 20)
    assert journal is not None
    assert journal.gen == 2


def test_request_for_an_image_written_another_way() -> None:
    """``request`` is boot_set_pending: the image is already in the secondary slot (written by a
    download path of the application's own), only the trailer is written."""
    dev = device(layout_of("swap-scratch", "nrf52840"))
    strategy, board = dev.strategy, dev.board
    geo = strategy.secondary
    flash = board.flashes[geo.device]
    strategy.copy_bytes(strategy.image_bytes(dev.new), flash, geo.address)
    assert any("Swap type: none" in line for line in dev.boot().log)
    strategy.request(board, permanent=True)
    ops = board.domain.op_count
    strategy.request(board, permanent=True)  # already standing: nothing written
    assert board.domain.op_count == ops
    assert dev.outcome(dev.boot()) is Outcome.NEW
    assert dev.outcome(dev.boot()) is Outcome.NEW  # permanent: no confirm needed


def test_request_cut_short_needs_a_new_stage() -> None:
    dev = device(layout_of("swap-move", "psoc6"))
    strategy, board = dev.strategy, dev.board
    base = board.snapshot()
    board.domain.disarm()
    strategy.stage(board, dev.new)
    total = board.domain.ops_since_arm
    board.restore(base)
    board.domain.arm(FaultPlan.torn_at(total, seed=3))
    with pytest.raises(PowerLoss):
        strategy.stage(board, dev.new)
    board.power_cycle()
    with pytest.raises(UsageError, match="stage the image again"):
        strategy.request(board)
    strategy.stage(board, dev.new)
    assert dev.outcome(dev.settle()) is Outcome.NEW


@pytest.mark.parametrize("mode", ["swap-move", "swap-scratch", "swap-offset"])
@pytest.mark.parametrize("confirm", [False, True])
def test_padded_image_programmed_into_the_primary_slot(mode: str, confirm: bool) -> None:
    """A factory programmer writing ``imgtool sign --pad`` (or ``--confirm``) output straight into the
    primary slot leaves a magic there without any swap behind it (mcuboot issue 829): it boots, is not
    taken for an unfinished swap, and later updates work."""
    dev = device(layout_of(mode, "nrf52840"))
    strategy, board = dev.strategy, dev.board
    geo = strategy.primary
    padded = build_image(dev.old.payload, version=dev.old.version, header_size=0x200, pad_header=True,
                         key=development_key("ed25519"), slot_size=geo.size, pad=True, confirm=confirm,
                         align=strategy.options.align).data
    flash = board.flashes[geo.device]
    strategy.erase_sectors(flash, geo, range(geo.count))
    strategy.copy_bytes(padded, flash, geo.address)
    result = dev.boot()
    assert dev.outcome(result) is Outcome.OLD
    assert any("Swap type: none" in line for line in result.log)
    assert dev.outcome(dev.update()) is Outcome.NEW

"""MCUboot's swap decision table (``boot_swap_tables`` in bootutil_public.c), row for row.

Rows are tried in order; the first match wins, no match is NONE::

    [swap-offset only]  secondary magic good, image_ok unset, copy_done set   -> REVERT
    secondary magic good, secondary image_ok unset                             -> TEST
    secondary magic good, secondary image_ok set                               -> PERM
    primary magic good, primary image_ok unset, primary copy_done set          -> REVERT

One reading is mcuota's: in the *primary* trailer a flag that is not erased counts as set. Only the
bootloader (copy_done, image_ok at the end of a swap) and the application's confirm (image_ok) write
those flags, always with 0x01, and always as the last act of something already complete; a value
other than 0x01 there is such a write cut short (MCUboot's BAD). bootutil treats a BAD copy_done as
"not set", so a cut during the very last write of a test swap leaves an unconfirmed image that can
never be reverted; here it is reverted like any other unconfirmed image. A BAD image_ok already
blocks the revert in bootutil (the row needs UNSET), so for it the reading changes nothing. Flags in
the *secondary* trailer are read exactly as bootutil does.
"""

from __future__ import annotations

from mcuota.image.mcuboot import FlagState, MagicState, SwapType, TrailerState


def _settled(flag: FlagState) -> FlagState:
    return FlagState.SET if flag is FlagState.BAD else flag


def swap_type_for(primary: TrailerState, secondary: TrailerState, *, offset_row: bool = False) -> SwapType:
    """The swap the trailers ask for: TEST, PERM, REVERT or NONE."""
    if secondary.magic is MagicState.GOOD:
        if (offset_row and secondary.image_ok is FlagState.UNSET
                and secondary.copy_done is FlagState.SET):
            return SwapType.REVERT
        if secondary.image_ok is FlagState.UNSET:
            return SwapType.TEST
        if secondary.image_ok is FlagState.SET:
            return SwapType.PERM
    if (primary.magic is MagicState.GOOD and _settled(primary.image_ok) is FlagState.UNSET
            and _settled(primary.copy_done) is FlagState.SET):
        return SwapType.REVERT
    return SwapType.NONE

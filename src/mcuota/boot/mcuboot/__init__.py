"""MCUboot-compatible bootloaders (overwrite-only, swap-scratch, swap-move, swap-offset) and the
application-side calls that go with them, on the NOR-flash model, surviving torn operations.

Compatible means: images are MCUboot images (built by mcuota or ``imgtool sign``, checked with
:func:`~mcuota.image.mcuboot.verify_image` against the trusted keys); a request is what ``imgtool
--pad`` / ``--confirm`` or ``boot_set_pending`` leave in the secondary trailer (magic, plus image_ok
for a permanent swap); the decision is bootutil's table (:mod:`.decision`); test swaps that are never
confirmed (image_ok in the primary trailer, :meth:`confirm`) are reverted on the next boot; a finished
swap leaves the primary trailer as bootutil does (magic, swap_info, swap_size, image_ok as the type
says, copy_done). Status records are bootutil's (0x01/0x02/0x03 per sector and state, ``align`` bytes
each, below swap_size), and the algorithms move data exactly as the shared reference describes.
Downgrade prevention (by version or security counter) refuses test and permanent swaps, never a
revert; a refused, tampered or wrongly signed image is scrambled and the running image keeps running.

What is mcuota's own is *where and in which order* the progress of a swap is written, because
bootutil's order assumes a write or erase is either done or not done. On real flash, and in this
model, power can fail in the middle of one: a torn program leaves some of its bits set, a torn erase
leaves some bits erased and others not. That broke swap-move in the field (mcuboot issue 1966: a
magic written half-way during a revert made the trailer match no table row, and the revert could never
finish). The rules below make every torn operation harmless; the exhaustive sweeps in
``tests/boot_mcuboot`` cut and tear every single flash operation of an update and of a revert.

1. **Any value a torn operation can leave is one the reader handles.** A field is written in one
   program operation, the commit field last (magic for the primary journal, copy_done for the
   others). A torn magic reads BAD, never good, so a half-initialised journal is ignored. A torn status
   record is either still erased (the step is redone: every step erases its destination first and
   copies from a source no later step has touched yet, so redoing it is harmless) or not erased (the
   step is done: records are written only after the step's copy completed). A torn image_ok or
   copy_done in the primary trailer counts as written (:mod:`.decision`): they are only ever written
   after what they announce is complete.

2. **A torn erase can only rewind a sector.** Programming only moves bits one way between erases, so
   a partly erased sector reads as some earlier state of it (since its last erase) or as one in which
   more of the bits are erased. The engine therefore never erases a sector holding the journal that
   currently governs the swap. Before it erases a trailer it makes sure something *else* decides
   what happens next, whatever that trailer is rewound to:

   * while the primary trailer is erased to start a test or permanent swap, the request in the
     secondary slot stands, and a standing request overrides any journal in the primary slot (as
     bootutil's ``swap_status_source`` does): a cut there restarts the swap, which is safe because
     nothing but spare space has been written yet. If the restarted request is refused, the stale
     primary journal is erased before anything else is touched (the secondary is scrambled only
     after that), so it can never be resumed against a different secondary image;
   * the request is erased only after the primary journal is committed, and swap-move and
     swap-offset keep image data out of the secondary's trailer sectors so that erasing the request
     loses nothing. A request rewound by a torn erase is then either still a request (the swap
     restarts, still safe), or no request (the committed journal carries on), or a magic whose
     image_ok reads neither set nor erased. The application always completes a request before its
     magic, so that last one can only be such a rewound request: the journal next to it is genuine,
     and the swap carries on with it (a permanent request is not lost to the tear);
   * a revert's request *is* the primary trailer, so the revert first writes a journal into the
     erased secondary trailer (swap-move, swap-offset) or the scratch area (swap-scratch), and only
     then erases the primary trailer. Those side journals never carry a magic, so they can never be
     taken for an update request, and a half-written one is simply not a journal (issue 1966 cannot
     happen: there is no magic write whose failure leaves the revert stuck);
   * which journal governs when several look valid is decided by a *generation* stored in the
     padding of the swap_size field. Each journal gets the generation of the newest one plus one,
     and the encoding only ever reads lower after a partial write or erase (see :mod:`.trailers`).
     So a rewound older journal always loses to the one written after it, and the journal that
     survives is always the one that was written last and completely.

3. **Nothing that decides is left behind.** Finishing a swap erases any secondary or scratch journal
   (and the scratch area) *before* copy_done closes the primary journal, so between swaps the primary
   trailer is the newest and only journal.

What a swap costs beyond bootutil's: swap-move and swap-offset write a three-field journal into the
secondary trailer for a revert; swap-scratch writes it into the scratch area for every swap and
erases the scratch area once more at the end. A swap journal left behind by a real MCUboot
(generation 0) is not resumed; a finished MCUboot trailer is read as bootutil reads it.

Also mcuota's: swap-move lets the image reach into the primary trailer's sector (see
:mod:`.swap_move`), and every swap copies only as many bytes of a sector as the larger image covers.

Strategies are found by :mod:`mcuota.boot.registry` through their ``name`` attribute:
``mcuboot-overwrite`` (:class:`McubootOverwrite`), ``mcuboot-swap-scratch`` (:class:`McubootSwapScratch`),
``mcuboot-swap-move`` (:class:`McubootSwapMove`) and ``mcuboot-swap-offset`` (:class:`McubootSwapOffset`).
They read the partitions ``primary``, ``secondary`` and (swap-scratch) ``scratch`` and the layout
options ``header_size`` (0x200), ``align`` (largest write unit), ``max_sectors`` (128),
``downgrade_prevention`` (true/"version", "security-counter", false; overwrite-only defaults to
"version"), ``security_counter`` (releases carry imgtool's ``auto`` counter), ``signature``
(``ed25519``, ``ecdsa-p256``, ``rsa-2048``, ``rsa-3072`` or ``none``), ``keys`` (trusted keys; default:
mcuota's development key of that type, see :mod:`.keys`), ``validate_primary`` (true),
``check_vectors`` (true), ``copy_chunk`` (1024) and ``stage_chunk`` (4096).
"""

from mcuota.boot.mcuboot.base import McubootStrategy
from mcuota.boot.mcuboot.keys import development_key
from mcuota.boot.mcuboot.overwrite import McubootOverwrite
from mcuota.boot.mcuboot.swap import SwapStrategy
from mcuota.boot.mcuboot.swap_move import McubootSwapMove
from mcuota.boot.mcuboot.swap_offset import McubootSwapOffset
from mcuota.boot.mcuboot.swap_scratch import McubootSwapScratch

STRATEGIES: dict[str, type[McubootStrategy]] = {
    cls.name: cls for cls in (McubootOverwrite, McubootSwapScratch, McubootSwapMove, McubootSwapOffset)
}

__all__ = [
    "STRATEGIES",
    "McubootOverwrite",
    "McubootStrategy",
    "McubootSwapMove",
    "McubootSwapOffset",
    "McubootSwapScratch",
    "SwapStrategy",
    "development_key",
]

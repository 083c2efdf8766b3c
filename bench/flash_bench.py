"""Speed of the NOR-flash model's hot paths, each against the plain-bytes floor it is built on.

A power-cut sweep restores an image and replays an update thousands of times, so what matters is how
close program / erase / snapshot / restore stay to a bare ``bytearray`` slice copy of the same size
(the peer measured in the same run). Run: ``.venv/bin/python bench/flash_bench.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from mcuota.flash import FaultPlan, PowerDomain, PowerLoss, new_flash


def rate(action: Callable[[], object], seconds: float = 0.4) -> float:
    """Calls per second of ``action`` over roughly ``seconds`` of wall time."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(16):
            action()
        count += 16
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def row(label: str, ours: float, peer: float) -> None:
    print(f"{label:<34} {ours:>12,.0f} ops/s   peer {peer:>12,.0f} ops/s   ratio {peer / ours:6.1f}x")


def main() -> None:
    domain = PowerDomain()
    f407 = new_flash("stm32f407", domain)
    f429 = new_flash("stm32f429", domain)
    f103 = new_flash("stm32f103c8", domain)
    scratch = bytearray(2 * 1024 * 1024)
    page = bytes(range(256)) * 16

    def program_4k() -> None:
        f407.poke(0x08040000, b"\xff" * 4096)
        f407.program(0x08040000, page)

    def peer_4k() -> None:
        scratch[0:4096] = b"\xff" * 4096
        scratch[0:4096] = page

    row("program 4 KB (stm32f407)", rate(program_4k), rate(peer_4k))

    def program_half_words() -> None:
        f103.poke(0x08001000, b"\xff" * 1024)
        f103.program(0x08001000, page[:1024])

    row("program 1 KB (stm32f103, 0x0000 rule)", rate(program_half_words), rate(peer_4k))
    addresses = range(0x08002000, 0x08002400, 2)

    def half_words() -> None:
        f103.erase(0x08002000)
        for address in addresses:
            f103.program(address, b"\x34\x12")

    def peer_half_words() -> None:
        scratch[0:1024] = b"\xff" * 1024
        for offset in range(0, 1024, 2):
            scratch[offset:offset + 2] = b"\x34\x12"

    row("page erase + 512 half-word programs", rate(half_words), rate(peer_half_words))
    fill = b"\xff" * (128 * 1024)

    def erase_128k() -> None:
        f407.erase(0x08020000)

    def peer_128k() -> None:
        scratch[0:128 * 1024] = fill

    row("erase 128 KB sector (stm32f407)", rate(erase_128k), rate(peer_128k))
    snap_1m = f407.snapshot()
    image_1m = bytes(1024 * 1024)

    def snapshot_1m() -> None:
        f407.snapshot()

    def restore_1m() -> None:
        f407.restore(snap_1m)

    buffer_1m = bytearray(1024 * 1024)

    def peer_copy_1m() -> None:
        bytes(buffer_1m)

    def peer_restore_1m() -> None:
        scratch[: 1024 * 1024] = image_1m

    row("snapshot 1 MB (stm32f407)", rate(snapshot_1m), rate(peer_copy_1m))
    row("restore 1 MB (stm32f407)", rate(restore_1m), rate(peer_restore_1m))
    snap_2m = f429.snapshot()
    image_2m = bytes(2 * 1024 * 1024)

    def restore_2m() -> None:
        f429.restore(snap_2m)

    def peer_restore_2m() -> None:
        scratch[:] = image_2m

    row("restore 2 MB (stm32f429)", rate(restore_2m), rate(peer_restore_2m))
    f407.poke(0x08040000, b"\xff" * 4096)
    whole = domain.snapshot()
    buffer_3m = bytearray(3 * 1024 * 1024 + 64 * 1024)
    image_3m = bytes(len(buffer_3m))

    def domain_restore() -> None:
        domain.restore(whole)

    def peer_restore_3m() -> None:
        buffer_3m[:] = image_3m

    row("restore domain (407+429+103, 3 MB)", rate(domain_restore), rate(peer_restore_3m))

    def torn_program() -> None:
        domain.restore(whole)
        domain.arm(FaultPlan.torn_at(1, seed=1))
        with contextlib.suppress(PowerLoss):
            f407.program(0x08040000, page)

    def torn_erase() -> None:
        domain.restore(whole)
        domain.arm(FaultPlan.torn_at(1, seed=1))
        with contextlib.suppress(PowerLoss):
            f407.erase(0x08020000)

    row("restore + torn program 4 KB", rate(torn_program), rate(domain_restore))
    row("restore + torn erase 128 KB", rate(torn_erase), rate(domain_restore))


if __name__ == "__main__":
    main()

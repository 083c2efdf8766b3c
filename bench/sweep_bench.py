"""Exhaustive power-cut sweep of a ~230 KB MCUboot swap-move update, and what each strategy costs.

1. The full sweep with torn operations of large-f407 1.0.0 -> 2.0.0 on mcuboot-swap-move-f407: every
   flash operation cut before it runs and torn half-way, each followed by a reboot to completion
   (target: < 60 s on a 2-core machine). The peer, measured in the same run, is the same sweep by
   straightforward re-execution (``engine="rerun"``: replay the update up to the cut, as MCUboot's own
   simulator does), so the ratio shows what the journal engine buys.
2. For the same image, each MCUboot strategy's clean update: erases, bytes programmed and modeled
   install time, as ratios to the physical minimum (erase the sectors the image covers and program it
   once).

    .venv/bin/python bench/sweep_bench.py [--skip-peer]
"""

from __future__ import annotations

import argparse
import time

from mcuota.boot.presets import get_layout
from mcuota.boot.registry import strategy_for
from mcuota.boot.sweep import SweepReport, prepare_release, sweep
from mcuota.image.keys import generate_private_key
from mcuota.samples import sample_path

TARGET = "large-f407"
STRATEGY_LAYOUTS = ("mcuboot-overwrite-f407", "mcuboot-swap-scratch-f407", "mcuboot-swap-move-f407",
                    "mcuboot-swap-offset-f407")


def _run(layout_name: str, *, torn: bool, engine: str = "journal") -> tuple[SweepReport, int]:
    import dataclasses

    key = generate_private_key("ed25519")
    layout = get_layout(layout_name)
    layout = dataclasses.replace(layout, options={**layout.options, "keys": (key.public(),)})
    strategy = strategy_for(layout)
    old = prepare_release(layout, strategy, sample_path(TARGET, "1.0.0", "bin").read_bytes(),
                          name="sample-app-1.0.0.bin", signer=key)
    new = prepare_release(layout, strategy, sample_path(TARGET, "2.0.0", "bin").read_bytes(),
                          name="sample-app-2.0.0.bin", signer=key)
    report = sweep(layout, old, new, torn=torn, engine=engine)  # type: ignore[arg-type]
    return report, len(new.payload)


def _physical_minimum(layout_name: str, payload_len: int, min_erases: int) -> float:
    layout = get_layout(layout_name)
    part = layout.device("internal").flash_part()
    sectors = part.geometry.sectors_in(layout.app_address, payload_len)
    erase = sum(part.erase_time(s.size).typical for s in sectors)
    assert len(sectors) == min_erases
    return erase + part.program_duration(payload_len).typical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-peer", action="store_true", help="do not run the re-execution peer")
    args = parser.parse_args()

    started = time.perf_counter()
    report, size = _run("mcuboot-swap-move-f407", torn=True)
    print(f"sweep: mcuboot-swap-move-f407, {TARGET} 1.0.0 -> 2.0.0 ({size} bytes), torn")
    print(f"  flash ops {report.flash_ops}, points {report.points} (cut {report.cut_points}, torn "
          f"{report.torn_points}, recovery {report.recovery_points})")
    print(f"  outcomes {report.outcomes}, failures {len(report.failures)}")
    print(f"  wall {report.wall_s:.2f} s, {report.points_per_s:.0f} cut points/s "
          f"(target < 60 s: {'met' if report.wall_s < 60 else 'MISSED'})")
    if not args.skip_peer:
        peer, _ = _run("mcuboot-swap-move-f407", torn=True, engine="rerun")
        same = peer.outcomes == report.outcomes
        print(f"  peer (re-execution engine): wall {peer.wall_s:.2f} s, {peer.points_per_s:.0f} points/s; "
              f"mcuota journal / peer = {report.wall_s / peer.wall_s:.2f}x, same outcomes: {same}")

    print(f"\nclean update cost of {TARGET} 2.0.0 per strategy (ratio to erase + program once):")
    print(f"{'layout':<28}{'erases':>8}{'x':>7}{'programmed':>12}{'x':>7}{'install s':>11}{'x':>7}")
    for name in STRATEGY_LAYOUTS:
        rep, payload_len = _run(name, torn=False)
        minimum_s = _physical_minimum(name, payload_len, rep.minimum_erases)
        print(f"{name:<28}{rep.erases_total:>8}{rep.erases_total / rep.minimum_erases:>7.2f}"
              f"{rep.bytes_programmed:>12}{rep.bytes_programmed / payload_len:>7.2f}"
              f"{rep.modeled_install_s:>11.2f}{rep.modeled_install_s / minimum_s:>7.2f}")
    print(f"\nbench wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

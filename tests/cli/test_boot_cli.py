"""``mcuota boot layouts | sweep``: JSON fields, the table, and exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcuota.boot.presets import get_layout, layout_names
from mcuota.cli.main import main
from mcuota.samples import sample_path

SEED_LAYOUTS = ("gizwits-f103", "stm32-header-f103", "stm32-header-w25q", "dapboot-f103", "interrupt-f429")


def boot(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["boot", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _sample(layout: str, version: str, ext: str = "bin") -> Path:
    return sample_path(get_layout(layout).sample_target, version, ext)


def test_layouts_json_lists_every_preset_with_devices_partitions_and_strategy(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = boot(capsys, "layouts", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [entry["name"] for entry in listed] == list(layout_names())
    by_name = {entry["name"]: entry for entry in listed}
    gizwits = by_name["gizwits-f103"]
    assert gizwits["strategy"] == "gizwits"
    assert gizwits["devices"][0]["part"] == "stm32f103c8"
    assert {p["name"]: p["address"] for p in gizwits["partitions"]}["app_bak"] == 0x08009800
    assert by_name["mcuboot-swap-move-psoc6"]["devices"][0]["changes"] == {"write_unit": 8}


def test_layouts_table_names_each_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = boot(capsys, "layouts")
    assert code == 0
    assert "gizwits-f103" in out
    assert "interrupt-f429" in out


@pytest.mark.parametrize("layout", SEED_LAYOUTS)
def test_sweep_json_of_every_seed_preset(capsys: pytest.CaptureFixture[str], layout: str) -> None:
    code, out, _err = boot(capsys, "sweep", "--layout", layout, "--from", _sample(layout, "1.0.0"),
                           "--to", _sample(layout, "2.0.0"), "--torn", "--json")
    report = json.loads(out)
    assert code == 0, report["failures"][:3]
    for key in ("layout", "strategy", "flash_ops", "cut_points", "torn_points", "outcomes",
                "modeled_install_s", "erases_total", "minimum_erases", "wall_s"):
        assert key in report
    assert report["layout"] == layout
    assert report["strategy"] == get_layout(layout).strategy
    assert set(report["outcomes"]) >= {"new", "old", "bricked", "wrong"}
    assert report["cut_points"] == report["torn_points"] == report["flash_ops"] > 0
    assert sum(report["outcomes"].values()) == report["points"]
    assert report["outcomes"]["bricked"] == report["outcomes"]["wrong"] == 0
    assert report["modeled_install_s"] > 0
    assert report["erases_total"] >= report["minimum_erases"] > 0
    assert report["new_version"] == "2.0.0"


def test_sweep_table_from_hex_and_elf(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = boot(capsys, "sweep", "--layout", "gizwits-f103",
                           "--from", _sample("gizwits-f103", "1.0.1", "hex"),
                           "--to", _sample("gizwits-f103", "1.1.0", "elf"))
    assert code == 0
    assert "1.0.1 -> 1.1.0" in out
    assert "PASS" in out


def test_sweep_exits_1_when_the_new_image_cannot_boot(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    # dapboot's build is linked for 0x08002000: taken at Gizwits' 0x08003000 it faults when started
    foreign = tmp_path / "sample-app-2.0.0.bin"
    foreign.write_bytes(_sample("dapboot-f103", "2.0.0").read_bytes())
    code, out, _err = boot(capsys, "sweep", "--layout", "gizwits-f103", "--from",
                           _sample("gizwits-f103", "1.0.0"), "--to", foreign, "--json")
    report = json.loads(out)
    assert code == 1
    assert report["outcomes"]["bricked"] > 0
    assert report["clean"] == "bricked"
    assert not report["ok"]


@pytest.mark.parametrize(("args", "message"), [
    (("--layout", "nope"), "unknown layout 'nope'"),
    (("--layout", "gizwits-f103", "--revert"), "cannot revert"),
    (("--layout", "gizwits-f103", "--key", "k.pem"), "does not sign its images"),
])
def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                           message: str) -> None:
    code, out, err = boot(capsys, "sweep", *args, "--from", _sample("gizwits-f103", "1.0.0"),
                          "--to", _sample("gizwits-f103", "2.0.0"))
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_missing_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["boot", "sweep", "--layout", "gizwits-f103"])
    assert exited.value.code == 2
    assert "required" in capsys.readouterr().err


def test_help_ends_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in ("layouts", "sweep"):
        with pytest.raises(SystemExit):
            main(["boot", verb, "--help"])
        text = capsys.readouterr().out.rstrip()
        assert text.splitlines()[-1].strip().startswith(f"mcuota boot {verb}")


def _needs_mcuboot() -> None:
    pytest.importorskip("mcuota.boot.mcuboot.swap_move", reason="the MCUboot strategies are not installed")


def test_mcuboot_sweep_signs_with_a_throw_away_key_and_reverts(capsys: pytest.CaptureFixture[str]) -> None:
    _needs_mcuboot()
    layout = "mcuboot-swap-move-f407"
    code, out, _err = boot(capsys, "sweep", "--layout", layout, "--from", _sample(layout, "1.0.0"),
                           "--to", _sample(layout, "2.0.0"), "--revert", "--json")
    report = json.loads(out)
    assert code == 0, report["failures"][:3]
    assert report["strategy"] == "mcuboot-swap-move"
    assert report["clean"] == "old", "never confirmed, so rolled back"
    assert report["outcomes"]["old"] == report["points"] > 0


def test_mcuboot_sweep_with_a_given_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _needs_mcuboot()
    from mcuota.image.keys import generate_private_key

    key = tmp_path / "signing.pem"
    key.write_bytes(generate_private_key("ed25519").pem())
    layout = "mcuboot-overwrite-f407"
    code, out, _err = boot(capsys, "sweep", "--layout", layout, "--from", _sample(layout, "1.0.0"),
                           "--to", _sample(layout, "1.1.0"), "--key", key, "--json")
    report = json.loads(out)
    assert code == 0, report["failures"][:3]
    assert report["clean"] == "new"
    assert report["outcomes"]["new"] > 0

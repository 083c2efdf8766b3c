"""One simulated device per seed bootloader, updated by its OTA agent from an in-memory update service:
the real flash model, bootloader strategy, agent and emulated core; power cut at every flash operation
of the download and of the install."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcuota.agent.core import Status
from mcuota.agent.errors import AgentCode
from mcuota.agent.memory import MemoryHttpServer, Network
from mcuota.agent.transport import HttpTransport
from mcuota.boot.strategy import BootAction, ReleaseImage
from mcuota.device.config import DeviceConfig, Protocol
from mcuota.device.device import BootReport, SimDevice
from mcuota.device.layouts import JOURNAL, device_layout
from mcuota.device.store import load_device, save_device
from mcuota.errors import UsageError
from mcuota.flash import FaultPlan, count_ops
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.transport.seed002 import Connection, JobDocument, build_job_document

V1, V2 = ImageVersion.parse("1.0.0"), ImageVersion.parse("2.0.0")
LAYOUTS = {
    "gizwits-f103": "gizwits-f103",
    "stm32-header-f103": "stm32-header-f103",
    "stm32-header-w25q": "stm32-header-f103",
    "mcuboot-swap-move-f407": "mcuboot-f407",
}


@dataclass
class Bench:
    device: SimDevice
    network: Network
    update: ReleaseImage
    wire: bytes

    def fresh(self) -> SimDevice:
        """The same board with a new agent and link, as after a reset."""
        return SimDevice(self.device.config, board=self.device.board,
                         transport=HttpTransport(MemoryHttpServer(self.network)))


def serve(network: Network, wire: bytes, *, sha256: str | None = None) -> None:
    network.files["/fw.bin"] = wire
    network.job = build_job_document(JobDocument(
        board="B", version=V2, connection=Connection.HTTP, host="h", port=80, file="/fw.bin", size=len(wire),
        sha256=hashlib.sha256(wire).hexdigest() if sha256 is None else sha256))


def make_bench(layout: str, *, wire: bytes | None = None) -> Bench:
    network = Network()
    device = SimDevice(DeviceConfig("SN1", layout, "B"), transport=HttpTransport(MemoryHttpServer(network)))
    target = LAYOUTS[layout]
    factory = device.make_release(sample_path(target, "1.0.0", "bin").read_bytes(), V1)
    update = device.make_release(sample_path(target, "2.0.0", "bin").read_bytes(), V2)
    report = device.factory_install(factory)
    assert report.running == "1.0.0", report.boot.reason
    if wire is None:
        wire = update.payload if device.layout.image_format == "gizwits" else update.data
    serve(network, wire)
    return Bench(device, network, update, wire)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_update_runs_2_0_0_on_the_emulated_core(layout: str) -> None:
    bench = make_bench(layout)
    outcome, boot = bench.device.update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert boot is not None
    assert boot.outcome is not None
    assert boot.outcome.status is Status.UPDATED, boot.outcome.reason
    assert boot.running == "2.0.0"
    assert bench.device.power_on().running == "2.0.0"
    assert [r["Message"] for r in bench.network.results] == ["Success", "Success"]
    # nothing more to do: the running version is not lower than the offer
    again = bench.device.check()
    assert again.status is Status.FAILED
    assert again.code is AgentCode.INVALID_VERSION


def _phase_ops(layout: str) -> tuple[int, int]:
    bench = make_bench(layout)
    download = count_ops(bench.device.board.domain, bench.device.check)
    install = count_ops(bench.device.board.domain, bench.device.reset)
    return download, install


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("phase", ["download", "install"])
def test_a_torn_power_cut_at_any_flash_operation_never_bricks(layout: str, phase: str) -> None:
    download_ops, install_ops = _phase_ops(layout)
    total = download_ops if phase == "download" else install_ops
    assert total > 3
    for op in range(1, total + 1):
        bench = make_bench(layout)
        device = bench.device
        if phase == "install":
            assert device.check().status is Status.STAGED
        device.arm(FaultPlan.torn_at(op, seed=op))
        result = device.survive(device.check if phase == "download" else device.reset)
        device.disarm()
        assert device.counters.power_cuts == 1, f"op {op} of {total} was not cut"
        assert isinstance(result, BootReport)
        assert result.boot.action is BootAction.JUMP, f"{layout} bricked by a cut at {phase} op {op}"
        assert result.running in ("1.0.0", "2.0.0"), f"op {op}: runs {result.running}"
        if result.running == "2.0.0":
            continue
        # power is back: the agent of the next boot finishes the job, resuming what is intact
        device = bench.fresh()
        outcome, boot = device.update()
        assert outcome.status is Status.STAGED, f"op {op}: {outcome.reason}"
        assert boot is not None
        assert boot.running == "2.0.0", f"op {op}"
        assert outcome.bytes_fetched <= len(bench.wire) + 4096


def test_download_resumes_from_the_saved_state_directory(tmp_path: Path) -> None:
    bench = make_bench("mcuboot-swap-move-f407")
    download_ops, _ = _phase_ops("mcuboot-swap-move-f407")
    bench.device.arm(FaultPlan.cut_before(download_ops - 3))
    bench.device.survive(bench.device.check)
    save_device(tmp_path / "dev", bench.device.config, bench.device.board, token="secret")
    assert (tmp_path / "dev" / "token").stat().st_mode & 0o777 == 0o600
    config, board, token = load_device(tmp_path / "dev")
    assert token == "secret"
    assert config == bench.device.config
    device = SimDevice(config, board=board, transport=HttpTransport(MemoryHttpServer(bench.network)))
    assert device.power_on().running == "1.0.0"
    outcome, boot = device.update()
    assert outcome.resumed_from > 0
    assert boot is not None
    assert boot.running == "2.0.0"


def test_an_image_that_crashes_before_confirming_is_reverted_and_reported() -> None:
    bench = make_bench("mcuboot-swap-move-f407")
    bench.device.self_test.crash_version = V2
    outcome, boot = bench.device.update()
    assert outcome.status is Status.STAGED
    assert boot is not None
    assert boot.outcome is not None
    assert boot.outcome.status is Status.REVERTED, boot.outcome.reason
    assert boot.running == "1.0.0"
    assert boot.resets >= 1
    assert bench.network.results[-1]["Message"] == "Failure"
    assert bench.network.results[-1]["Reason"].startswith("reverted")
    assert bench.device.power_on().running == "1.0.0"


@pytest.mark.parametrize("layout", ["gizwits-f103", "stm32-header-f103"])
def test_bytes_that_do_not_match_the_job_hash_are_never_requested(layout: str) -> None:
    bench = make_bench(layout)
    serve(bench.network, bench.wire, sha256="0" * 64)
    outcome = bench.device.check()
    assert outcome.status is Status.FAILED
    assert outcome.code is AgentCode.VERIFY
    assert not bench.device.storage.request_stands()
    assert bench.device.reset().running == "1.0.0"
    assert bench.network.results[-1]["Message"] == "Failure"


def test_a_gizwits_device_refuses_an_image_that_is_not_an_application() -> None:
    bench = make_bench("gizwits-f103", wire=b"\xff" * 5000)
    outcome = bench.device.check()
    assert outcome.code is AgentCode.WRONG_FORMAT
    assert bench.device.reset().running == "1.0.0"


def test_a_seed001_image_larger_than_the_staging_area_is_refused_before_writing() -> None:
    bench = make_bench("stm32-header-f103")
    big = bench.device.strategy.make_release(b"\0" * 100, V2).data[:16] + b"\0" * (40 * 1024)
    serve(bench.network, big)
    ops = bench.device.board.domain.op_count
    outcome = bench.device.check()
    assert outcome.code is AgentCode.TOO_LARGE
    assert bench.device.board.domain.op_count == ops
    assert bench.device.reset().running == "1.0.0"


def test_device_layouts_place_the_journal_in_free_flash() -> None:
    gizwits = device_layout("gizwits-f103")
    journal = gizwits.partition(JOURNAL)
    assert gizwits.devices[0].part == "stm32f103cb"
    assert journal.address >= max(p.end for p in gizwits.partitions if p.name != JOURNAL)
    w25q = device_layout("stm32-header-w25q")
    assert w25q.devices[0].part == "stm32f103c8"      # room left on the 64 KB part: no larger part
    with pytest.raises(UsageError, match="no room for the OTA agent's journal"):
        device_layout("mcuboot-swap-scratch-f407")


def test_device_configuration_round_trips_and_refuses_junk() -> None:
    config = DeviceConfig("SN9", "gizwits-f103", "gokit", protocol=Protocol.SEED002_MQTT, mqtt="127.0.0.1:1",
                          agent={"step": 1024})
    assert DeviceConfig.from_json(config.to_json()) == config
    assert config.agent_config().step == 1024
    with pytest.raises(UsageError, match="unknown field 'colour'"):
        DeviceConfig.from_json('{"serial": "a", "layout": "b", "board": "c", "colour": 1}')
    with pytest.raises(UsageError, match="not a device configuration"):
        DeviceConfig.from_json("[1]")


def test_a_result_the_server_did_not_hear_is_sent_at_the_next_check() -> None:
    bench = make_bench("mcuboot-swap-move-f407")
    assert bench.device.check().status is Status.STAGED
    link, bench.device.transport = bench.device.transport, None     # the server is unreachable at reset
    boot = bench.device.reset()
    assert boot.outcome is not None
    assert boot.outcome.status is Status.UPDATED
    assert len(bench.network.results) == 1
    bench.device.transport = link
    bench.device.check()
    assert bench.network.results[1]["Message"] == "Success"
    assert bench.network.results[1]["Reason"].startswith("updated (reported after a reset")
    before = len(bench.network.results)
    bench.device.check()                                               # owed once, sent once
    assert not any(r["Reason"].startswith("updated (") for r in bench.network.results[before:])

"""The agent on a Linux host: a file-backed slot with the same journal as a device, resume after a
process killed mid-download, install by command, self-test by command, confirm or revert."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from mcuota.agent.config import AgentConfig
from mcuota.agent.core import Agent, Status
from mcuota.agent.errors import AgentCode
from mcuota.agent.host import HostSlot, run_host
from mcuota.agent.memory import MemoryHttpServer, Network, RecordingClock
from mcuota.agent.transport import HttpTransport
from mcuota.image.keys import generate_private_key
from mcuota.image.mcuboot import build_image
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.transport.seed002 import Connection, JobDocument, build_job_document

V1, V2 = ImageVersion.parse("1.0.0"), ImageVersion.parse("2.0.0")
KEY = generate_private_key("ed25519")


def signed(version: ImageVersion = V2) -> bytes:
    payload = sample_path("mcuboot-f407", str(version), "bin").read_bytes()
    return build_image(payload, version=version, header_size=0x200, key=KEY, pad_header=True).data


def network(image: bytes, *, sha256: str | None = None) -> Network:
    net = Network()
    net.files["/fw.bin"] = image
    digest = hashlib.sha256(image).hexdigest() if sha256 is None else sha256
    net.job = build_job_document(JobDocument(board="GW", version=V2, connection=Connection.HTTP, host="h",
                                             port=80, file="/fw.bin", size=len(image), sha256=digest))
    return net


def slot_at(path: Path, image_format: str = "mcuboot") -> HostSlot:
    slot = HostSlot(path, image_format=image_format, keys=[KEY.public()])
    if slot.running_version() is None:
        slot.set_running(V1)
    return slot


def test_update_installs_by_command_and_confirms_after_the_self_test(tmp_path: Path) -> None:
    image = signed()
    net = network(image)
    slot = slot_at(tmp_path / "slot")
    target = tmp_path / "installed.bin"
    events: list[str] = []
    running = run_host(slot, HttpTransport(MemoryHttpServer(net)), AgentConfig(board="GW"),
                       install=["cp", "{image}", str(target)],
                       self_test=[sys.executable, "-c", "import sys; sys.exit(sys.argv[1] != '2.0.0')",
                                  "{version}"],
                       checks=1, clock=RecordingClock(), on_event=events.append)
    assert running == V2
    assert target.read_bytes() == image
    assert (tmp_path / "slot" / "current.bin").read_bytes() == image
    assert slot.state()["confirmed"] is True
    assert [r["Message"] for r in net.results] == ["Success", "Success"]
    assert any("installed 2.0.0" in e for e in events)


def test_a_failing_self_test_reverts_and_reports_it(tmp_path: Path) -> None:
    net = network(signed())
    slot = slot_at(tmp_path / "slot")
    (tmp_path / "slot" / "current.bin").write_bytes(b"old firmware")
    running = run_host(slot, HttpTransport(MemoryHttpServer(net)), AgentConfig(board="GW"),
                       self_test=[sys.executable, "-c", "raise SystemExit(1)"], checks=1,
                       clock=RecordingClock())
    assert running == V1
    assert (tmp_path / "slot" / "current.bin").read_bytes() == b"old firmware"
    assert net.results[-1]["Message"] == "Failure"
    assert net.results[-1]["Reason"].startswith("reverted")


def test_a_download_cut_short_resumes_from_the_journal(tmp_path: Path) -> None:
    image = signed()
    net = network(image)
    slot = slot_at(tmp_path / "slot")
    agent = Agent(AgentConfig(board="GW"), HttpTransport(MemoryHttpServer(net)), slot, clock=RecordingClock(),
                  self_test=lambda boot, version: True)
    # a process killed after two steps: the slot file and the journal hold them, nothing else
    from mcuota.agent.storage import Session
    session = Session("/fw.bin", V2, len(image))
    slot.open(session, 4096)
    slot.write_step(0, image[:4096])
    slot.write_step(4096, image[4096:8192])
    with (tmp_path / "slot" / "journal").open("ab") as journal:
        journal.write(b"\x01\x02\x03")                   # a torn record at the end
    outcome = agent.check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert outcome.resumed_from == 8192
    assert slot.request_stands()
    assert json.loads((tmp_path / "slot" / "state.json").read_text())["pending"]["version"] == "2.0.0"


def test_a_raw_slot_needs_the_job_hash_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    raw = b"\x00" * 5000
    slot = slot_at(tmp_path / "slot", image_format="raw")
    link = HttpTransport(MemoryHttpServer(network(raw, sha256="1" * 64)))
    agent = Agent(AgentConfig(board="GW"), link, slot, clock=RecordingClock(),
                  self_test=lambda boot, version: True)
    outcome = agent.check_for_update()
    assert outcome.code is AgentCode.VERIFY
    assert not slot.request_stands()
    assert slot.running_version() == V1


def test_an_unsigned_image_is_refused_by_an_mcuboot_slot(tmp_path: Path) -> None:
    payload = sample_path("mcuboot-f407", "2.0.0", "bin").read_bytes()
    unsigned = build_image(payload, version=V2, header_size=0x200, pad_header=True).data
    slot = slot_at(tmp_path / "slot")
    agent = Agent(AgentConfig(board="GW"), HttpTransport(MemoryHttpServer(network(unsigned))), slot,
                  clock=RecordingClock(), self_test=lambda boot, version: True)
    outcome = agent.check_for_update()
    assert outcome.code is AgentCode.VERIFY
    assert slot.running_version() == V1


def test_the_command_line_needs_a_trusted_key_and_an_initialised_slot(mcuota, tmp_path: Path) -> None:
    no_key = mcuota("agent", "run", "--dir", tmp_path / "s", "--server", "http://127.0.0.1:9", "--serial",
                    "A", "--board", "gw")
    assert no_key.returncode == 2
    assert "--trust" in no_key.stderr
    assert mcuota("agent", "init", "--dir", tmp_path / "s", "--version", "1.0.0").returncode == 0
    pem = tmp_path / "pub.pem"
    pem.write_bytes(KEY.public().pem())
    down = mcuota("agent", "run", "--dir", tmp_path / "s", "--server", "http://127.0.0.1:9", "--serial", "A",
                  "--board", "gw", "--trust", pem, "--checks", "1", "--until", "2.0.0", "--retries", "1")
    assert down.returncode == 1
    assert "CONNECTION_LOST" in down.stdout
    assert "Traceback" not in down.stderr


@pytest.mark.parametrize("bad", ["zip"])
def test_an_unknown_slot_format_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    from mcuota.errors import UsageError
    with pytest.raises(UsageError, match="host slot format"):
        HostSlot(tmp_path, image_format=bad)

"""The agent over the update service's own device API (check-in, artifact ranges, reports) against a
real server: the attempt's states as the server records them, reports after a reboot from a fresh
transport, a refused token, and a late report the server will not take."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import agent_net_helpers as helpers
import pytest
from agent_net_helpers import BOARD, Rig, Rollout, roll_out_2_0_0
from server_helpers import LiveServer

from mcuota.agent.core import Status
from mcuota.agent.device_api import DeviceApiTransport, release_id_of
from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.http_port import HttpxPort
from mcuota.agent.states import State
from mcuota.agent.transport import HttpReply, ReportKind
from mcuota.transport.seed002 import Message, parse_job_document

pytest_plugins = ["server_fixtures"]
rig = helpers.rig


@pytest.fixture
def server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_server_factory()


def transport_for(server: LiveServer, rig: Rig, world: Rollout, token: str | None = None
                  ) -> DeviceApiTransport:
    port = HttpxPort(server.url, serial=world.serial, token=token or world.token)
    return DeviceApiTransport(port, serial=world.serial, board=BOARD, running_version=rig.running_version)


def test_device_api_update_is_recorded_downloaded_then_success(server: LiveServer, rig: Rig) -> None:
    world = roll_out_2_0_0(server, rig)
    transport = transport_for(server, rig, world)
    job = parse_job_document(transport.get_job_document())
    assert job.message is Message.UPDATE_AVAILABLE
    assert job.file == f"/api/v1/device/artifacts/{world.release['id']}"
    assert (job.size, job.image_format) == (len(world.image), "mcuboot")
    assert len(job.sha256) == 64
    assert len(job.md5) == 32

    outcome = rig.agent(transport).check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert world.states()[-1] == "downloaded"

    after = rig.agent(transport_for(server, rig, world)).on_boot(rig.reboot())   # a fresh transport
    assert after.status is Status.UPDATED, after.reason
    assert rig.running() == "2.0.0"
    states = world.states()
    assert states[0] == "offered"
    assert states[-2:] == ["downloaded", "success"]
    assert world.device()["version"] == "2.0.0"
    # the device now checks in as 2.0.0: nothing more to offer
    assert rig.agent(transport_for(server, rig, world)).check_for_update().status is Status.NO_UPDATE


def test_no_rollout_means_no_update(server: LiveServer, rig: Rig) -> None:
    world = roll_out_2_0_0(server, rig, rollout=False)
    transport = transport_for(server, rig, world)
    doc = parse_job_document(transport.get_job_document())
    assert doc.message is Message.NO_UPDATE_AVAILABLE
    assert str(doc.version) == "1.0.0"
    assert rig.agent(transport).check_for_update().status is Status.NO_UPDATE
    assert world.states() == []


def test_wrong_token_fails_without_touching_the_firmware(server: LiveServer, rig: Rig) -> None:
    world = roll_out_2_0_0(server, rig)
    outcome = rig.agent(transport_for(server, rig, world, token="mcd_wrong"), retries=2).check_for_update()
    assert outcome.status is Status.FAILED
    assert outcome.code is AgentCode.HTTP_STATUS
    assert "401" in outcome.reason
    assert len(rig.clock.sleeps) == 1                  # retried once (retries=2), as any HTTP status is
    assert not any(e.state is State.STORAGE_WRITE for e in rig.events)
    assert world.states() == []
    assert rig.running() == "1.0.0"


def test_refused_job_is_reported_as_failure_to_the_offered_release(server: LiveServer, rig: Rig) -> None:
    world = roll_out_2_0_0(server, rig)
    transport = transport_for(server, rig, world)
    outcome = rig.agent(transport, board="another-board").check_for_update()
    assert outcome.code is AgentCode.WRONG_BOARD
    assert world.states()[-1] == "failure"             # no file yet, but the check-in named the release
    assert rig.running() == "1.0.0"


def test_a_report_contradicting_the_end_is_dropped_and_others_raise(server: LiveServer, rig: Rig) -> None:
    world = roll_out_2_0_0(server, rig)
    transport = transport_for(server, rig, world)
    assert rig.agent(transport).check_for_update().status is Status.STAGED
    assert rig.agent(transport).on_boot(rig.reboot()).status is Status.UPDATED
    url = f"/api/v1/device/artifacts/{world.release['id']}"
    transport.report(url, ReportKind.FAILED, "late news")      # 409 conflicting_report: final, not raised
    assert world.states()[-1] == "success"
    with pytest.raises(AgentError) as caught:
        transport.report("/api/v1/device/artifacts/999999", ReportKind.FAILED, "no such job")
    assert caught.value.code is AgentCode.HTTP_STATUS
    assert "404" in caught.value.detail


class _Canned:
    """An HttpPort that always gives the same 200 answer: what a damaged or confused server sends."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> HttpReply:
        return HttpReply(200, {}, self.body)


@pytest.mark.parametrize(("body", "code"), [
    (json.dumps({"update": True, "job": {"version": "two", "board": BOARD, "url": "/x", "size": 1}}).encode(),
     AgentCode.MALFORMED_JOB_DOC),                       # the server's offer itself is wrong: final
    (b'{"update": tr\x00e, "job"', AgentCode.CONNECTION_LOST),   # bytes damaged on the way: retried
], ids=["bad-offer", "damaged"])
def test_unusable_check_in_answers(body: bytes, code: AgentCode) -> None:
    transport = DeviceApiTransport(_Canned(body), serial="S", board=BOARD, running_version=lambda: helpers.V1)
    with pytest.raises(AgentError) as caught:
        transport.get_job_document()
    assert caught.value.code is code


@pytest.mark.parametrize(("file", "expected"), [
    ("/api/v1/device/artifacts/17", 17), ("http://h:8080/api/v1/device/artifacts/3", 3),
    ("/seed002/S/app.bin", None), ("", None)])
def test_release_id_comes_from_the_artifact_url(file: str, expected: int | None) -> None:
    assert release_id_of(file) == expected

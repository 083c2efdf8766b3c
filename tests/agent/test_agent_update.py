"""The OTA agent end to end on a simulated STM32F407 with MCUboot swap-move: real signed sample
firmware served by an in-memory HTTP server / MQTT publisher, written into the board's flash, booted by
the MCUboot strategy and run on the emulated core."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from mcuota.agent.config import AgentConfig
from mcuota.agent.core import Agent, Outcome, Status
from mcuota.agent.errors import AgentCode
from mcuota.agent.memory import Fault, FaultRule, MemoryHttpServer, MemoryPublisher, Network, RecordingClock
from mcuota.agent.selftest import BannerSelfTest
from mcuota.agent.states import Answer, Event, Reason, State
from mcuota.agent.storage import McubootStorage
from mcuota.agent.transport import HttpTransport, MqttTransport, Transport
from mcuota.boot.board import Board
from mcuota.boot.layout import Partition
from mcuota.boot.mcuboot import McubootStrategy
from mcuota.boot.presets import get_layout
from mcuota.boot.registry import strategy_for
from mcuota.boot.strategy import BootAction, BootResult, ReleaseImage
from mcuota.errors import UsageError
from mcuota.flash import FaultPlan, PowerLoss
from mcuota.image.keys import generate_private_key
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.transport.seed002 import Connection, DeviceInfo, JobDocument, build_job_document

BOARD = "CY8CPROTO_062_4343W"
FILE = "/ota/app-2.0.0.bin"
V1, V2 = ImageVersion.parse("1.0.0"), ImageVersion.parse("2.0.0")
CUT_JSON = b'{"Message": "Update Available", "Board": '



def payload(release: str) -> bytes:
    return sample_path("mcuboot-f407", release, "bin").read_bytes()


def job(version: ImageVersion = V2, board: str = BOARD, file: str = FILE) -> bytes:
    return build_job_document(JobDocument(board=board, version=version, connection=Connection.HTTP,
                                          host="ota.example", port=80, file=file))


@dataclass
class Rig:
    board: Board
    strategy: McubootStrategy
    network: Network
    clock: RecordingClock
    mqtt: bool = False
    events: list[Event] = dataclasses.field(default_factory=list)
    stop_in: State | None = None

    def release(self, version: ImageVersion = V2, source: str = "2.0.0", signer: object | None = None
                ) -> ReleaseImage:
        return self.strategy.make_release(payload(source), version, signer=signer)

    def transport(self) -> Transport:
        if self.mqtt:
            return MqttTransport(MemoryPublisher(self.network, V2), DeviceInfo(board=BOARD, version=V1),
                                 "anycloud/board/OTAImage/1")
        return HttpTransport(MemoryHttpServer(self.network))

    def agent(self, **config: object) -> Agent:
        """A fresh agent, as after a reset: nothing but flash carries over."""
        def callback(event: Event) -> Answer:
            self.events.append(event)
            return Answer.STOP if event.state is self.stop_in else Answer.CONTINUE
        settings = AgentConfig(board=BOARD, **config)  # type: ignore[arg-type]
        return Agent(settings, self.transport(), McubootStorage(self.board, self.strategy), clock=self.clock,
                     self_test=BannerSelfTest(self.board), callback=callback)

    def reboot(self) -> BootResult:
        self.board.warm_reset()
        result = self.strategy.boot(self.board)
        assert result.action is BootAction.JUMP, result.reason
        return result

    def running(self) -> str | None:
        test = BannerSelfTest(self.board)
        boot = self.reboot()
        test(boot, V1)
        return test.last


@pytest.fixture
def rig() -> Rig:
    base = get_layout("mcuboot-swap-move-f407")
    layout = dataclasses.replace(base, partitions=(
        *base.partitions, Partition("agent", "internal", 0x080E0000, 128 * 1024)))
    board = Board(layout)
    strategy = strategy_for(layout)
    assert isinstance(strategy, McubootStrategy)
    strategy.factory_install(board, strategy.make_release(payload("1.0.0"), V1))
    rig = Rig(board, strategy, Network(job=job()), RecordingClock())
    rig.network.files[FILE] = rig.release().data
    return rig


def test_full_update_runs_2_0_0_after_reboot(rig: Rig) -> None:
    agent = rig.agent()
    assert agent.on_boot(rig.reboot()).status is Status.RUNNING
    outcome = agent.check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert outcome.reset_requested
    assert outcome.version == V2
    assert rig.network.results[-1]["Message"] == "Success"
    states = [e.state for e in rig.events if e.reason is Reason.STATE_CHANGE]
    for state in (State.JOB_DOWNLOAD, State.JOB_PARSE, State.DATA_DOWNLOAD, State.STORAGE_WRITE, State.VERIFY,
                  State.RESULT_SEND, State.OTA_COMPLETE):
        assert state in states
    assert states.index(State.VERIFY) < states.index(State.RESULT_SEND)
    percents = [e.percent for e in rig.events if e.state is State.STORAGE_WRITE]
    assert percents == sorted(percents)
    assert percents[-1] == 100

    served = rig.network.bytes_served
    again = rig.agent().check_for_update()          # asked again before the reset: nothing to fetch
    assert again.status is Status.STAGED
    assert rig.network.bytes_served == served

    after = rig.agent().on_boot(rig.reboot())       # the file to report to comes from the journal
    assert after.status is Status.UPDATED, after.reason
    assert rig.network.results[-1] == {"Message": "Success", "File": FILE, "Reason": "updated to 2.0.0"}
    assert rig.running() == "2.0.0"        # confirmed: a further reset keeps 2.0.0
    assert rig.agent().check_for_update().status is Status.FAILED  # 2.0.0 is no longer newer


def test_full_update_over_mqtt_chunks(rig: Rig) -> None:
    rig.mqtt = True
    outcome = rig.agent().check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert rig.agent().on_boot(rig.reboot(), file=FILE).status is Status.UPDATED
    assert rig.running() == "2.0.0"


def test_direct_flow_downloads_the_known_file(rig: Rig) -> None:
    rig.network.job = None
    outcome = rig.agent(use_job_flow=False, direct_file=FILE).check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert rig.agent(direct_file=FILE).on_boot(rig.reboot()).status is Status.UPDATED


@pytest.mark.parametrize("torn", [False, True])
@pytest.mark.parametrize("cut_at", [9, 24, 37])
def test_resume_after_power_cut_mid_download(rig: Rig, torn: bool, cut_at: int) -> None:
    total = len(rig.network.files[FILE])
    step = 512                    # the sample image is 12 KB: small steps give many cut points
    domain = rig.board.domain
    domain.arm(FaultPlan.torn_at(cut_at, seed=3) if torn else FaultPlan.cut_before(cut_at))
    with pytest.raises(PowerLoss):
        rig.agent(step=step).check_for_update()
    rig.board.power_cycle()
    domain.disarm()
    served = rig.network.bytes_served
    assert served < total
    outcome = rig.agent(step=step).check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert outcome.resumed_from > 0
    # bytes already safe in flash were not fetched again: only the rest, plus the probe of the first
    # step (which tells the size) and at most the one step that was being written when power went
    assert outcome.resumed_from >= served - 3 * step
    assert rig.network.bytes_served - served <= total - outcome.resumed_from + 2 * step
    assert rig.agent().on_boot(rig.reboot(), file=FILE).status is Status.UPDATED
    assert rig.running() == "2.0.0"


def test_transient_faults_are_retried_with_jittered_backoff(rig: Rig) -> None:
    rig.network.rules = [FaultRule(Fault.DROP, after=2, times=1), FaultRule(Fault.TRUNCATE, after=5, times=2)]
    outcome = rig.agent(step=1024).check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    config = AgentConfig(board=BOARD, step=1024)
    rng = config.rng()         # seeded: the same configuration waits the same, jittered, times
    expected = [config.retry_delay(1, rng), config.retry_delay(1, rng), config.retry_delay(2, rng)]
    assert rig.clock.sleeps == expected
    assert 3.75 <= expected[0] <= 6.25
    assert 7.5 <= expected[2] <= 12.5
    assert expected[0] != 5
    assert rig.agent().on_boot(rig.reboot(), file=FILE).status is Status.UPDATED


def _untouched(rig: Rig, outcome: Outcome, code: AgentCode) -> None:
    assert outcome.status is Status.FAILED
    assert outcome.code is code, outcome.reason
    assert rig.network.results
    assert rig.network.results[-1]["Message"] == "Failure"
    assert rig.running() == "1.0.0"


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda r: setattr(r.network, "job", CUT_JSON), AgentCode.MALFORMED_JOB_DOC),
    (lambda r: setattr(r.network, "job", job(board="OTHER_BOARD")), AgentCode.WRONG_BOARD),
    (lambda r: setattr(r.network, "job", job(version=V1)), AgentCode.INVALID_VERSION),
    (lambda r: r.network.files.__setitem__(FILE, r.release().data + bytes(400 * 1024)), AgentCode.TOO_LARGE),
    (lambda r: r.network.files.__setitem__(FILE, payload("2.0.0")), AgentCode.WRONG_FORMAT),
    (lambda r: r.network.rules.append(FaultRule(Fault.WHOLE_FILE)), AgentCode.NOT_PARTIAL),
    (lambda r: r.network.rules.append(FaultRule(Fault.TRUNCATE, after=1)), AgentCode.TRUNCATED),
    (lambda r: r.network.rules.append(FaultRule(Fault.DROP, after=1)), AgentCode.CONNECTION_LOST),
    (lambda r: r.network.rules.append(FaultRule(Fault.BAD_RANGE, after=1)), AgentCode.BAD_CONTENT_RANGE),
], ids=["malformed-job", "wrong-board", "not-newer", "too-big", "not-mcuboot", "200-not-206", "truncated",
        "dropped", "bad-content-range"])
def test_bad_input_is_refused_and_reported(rig: Rig, mutate: object, code: AgentCode) -> None:
    mutate(rig)  # type: ignore[operator]
    _untouched(rig, rig.agent().check_for_update(), code)


@pytest.mark.parametrize(("fault", "code"), [
    (Fault.BAD_MAGIC, AgentCode.NOT_A_HEADER), (Fault.BAD_OFFSET, AgentCode.BAD_CHUNK_OFFSET),
    (Fault.BAD_SIZE, AgentCode.BAD_CHUNK_SIZE), (Fault.BAD_INDEX, AgentCode.BAD_CHUNK_INDEX),
])
def test_bad_chunk_headers_are_refused(rig: Rig, fault: Fault, code: AgentCode) -> None:
    rig.mqtt = True
    rig.network.rules.append(FaultRule(fault, after=2))
    _untouched(rig, rig.agent().check_for_update(), code)


def test_wrong_hash_is_refused_before_the_request(rig: Rig) -> None:
    data = bytearray(rig.release().data)
    data[0x400] ^= 0x01
    rig.network.files[FILE] = bytes(data)
    outcome = rig.agent().check_for_update()
    _untouched(rig, outcome, AgentCode.VERIFY)
    assert "hash" in outcome.reason.lower() or "sha" in outcome.reason.lower()


def test_wrong_signature_is_refused_before_the_request(rig: Rig) -> None:
    rig.network.files[FILE] = rig.release(signer=generate_private_key("ed25519")).data
    outcome = rig.agent().check_for_update()
    _untouched(rig, outcome, AgentCode.VERIFY)
    # a refused image is not resumed: the next attempt starts from zero
    rig.network.files[FILE] = rig.release().data
    retry = rig.agent().check_for_update()
    assert retry.status is Status.STAGED
    assert retry.resumed_from == 0


def test_failed_self_test_is_not_confirmed_and_the_revert_is_reported(rig: Rig) -> None:
    # 1.0.1's code signed as 2.0.0: it boots, but announces 1.0.1, so the self-test fails
    rig.network.files[FILE] = rig.release(V2, source="1.0.1").data
    assert rig.agent().check_for_update().status is Status.STAGED
    trial = rig.agent().on_boot(rig.reboot(), file=FILE)
    assert trial.status is Status.TRIAL_FAILED
    assert trial.reset_requested
    after = rig.agent().on_boot(rig.reboot(), file=FILE)
    assert after.status is Status.REVERTED, after.reason
    assert rig.network.results[-1]["Message"] == "Failure"
    assert "reverted" in rig.network.results[-1]["Reason"]
    assert rig.running() == "1.0.0"


def test_callback_stop_ends_the_update_without_a_request(rig: Rig) -> None:
    rig.stop_in = State.STORAGE_WRITE
    outcome = rig.agent().check_for_update()
    _untouched(rig, outcome, AgentCode.APP_RETURNED_STOP)
    assert any(e.reason is Reason.FAILURE for e in rig.events)


@pytest.mark.parametrize("changes", [{"retry_interval": 1}, {"next_check": 400 * 86400}, {"retries": 0},
                                     {"step": 3000}, {"jitter": 1.5}, {"use_job_flow": False}])
def test_config_ranges(changes: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        AgentConfig(**changes)  # type: ignore[arg-type]


def test_config_defaults_are_the_seed_agents() -> None:
    config = AgentConfig()
    assert (config.initial_check, config.next_check, config.retry_interval, config.check_timeout) == \
        (60, 86400, 5, 600)
    assert (config.packet_interval, config.job_check, config.data_check) == (60, 30, 1200)
    assert (config.retries, config.connect_retries, config.max_download_tries, config.http_timeout_ms) == \
        (5, 3, 3, 3000)


def test_trial_the_agent_never_saw_is_still_reported_as_reverted(rig: Rig) -> None:
    assert rig.agent().check_for_update().status is Status.STAGED
    rig.reboot()                  # the new image runs, but power goes before the agent's on_boot
    after = rig.agent().on_boot(rig.reboot(), file=FILE)
    assert after.status is Status.REVERTED, after.reason
    assert rig.running() == "1.0.0"


def test_every_cut_and_tear_during_the_download_resumes_to_the_new_image(rig: Rig) -> None:
    """A sweep: count the flash operations of a clean download, then tear each one in turn, power-cycle,
    and let a fresh agent resume; every run must end staged, boot 2.0.0, and confirm it."""
    step = 1024
    start = rig.board.snapshot()
    rig.board.domain.arm(FaultPlan.cut_before(10**6))
    assert rig.agent(step=step).check_for_update().status is Status.STAGED
    total_ops = rig.board.domain.ops_since_arm
    assert total_ops > 20
    for op in range(1, total_ops + 1):
        rig.board.restore(start)
        rig.network.bytes_served = 0
        rig.board.domain.arm(FaultPlan.torn_at(op, seed=op))
        with pytest.raises(PowerLoss):
            rig.agent(step=step).check_for_update()
        rig.board.power_cycle()
        rig.board.domain.disarm()
        outcome = rig.agent(step=step).check_for_update()
        assert outcome.status is Status.STAGED, (op, outcome.reason)
        assert rig.agent().on_boot(rig.reboot(), file=FILE).status is Status.UPDATED, op
        assert rig.running() == "2.0.0", op


def test_a_second_cut_while_restoring_a_torn_sector_still_converges(rig: Rig) -> None:
    step = 512
    rig.board.domain.arm(FaultPlan.torn_at(24, seed=5))       # tears a data write
    with pytest.raises(PowerLoss):
        rig.agent(step=step).check_for_update()
    rig.board.power_cycle()
    rig.board.domain.arm(FaultPlan.torn_at(1, seed=6))        # tears the erase that clears its sector
    with pytest.raises(PowerLoss):
        rig.agent(step=step).check_for_update()
    rig.board.power_cycle()
    rig.board.domain.disarm()
    outcome = rig.agent(step=step).check_for_update()
    assert outcome.status is Status.STAGED, outcome.reason
    assert rig.agent().on_boot(rig.reboot(), file=FILE).status is Status.UPDATED
    assert rig.running() == "2.0.0"

"""When the agent checks again, and how often it tries to reach the server: the seed agent's settings."""

from __future__ import annotations

from mcuota.agent.config import AgentConfig
from mcuota.agent.core import Agent, Outcome, Status
from mcuota.agent.errors import AgentCode, AgentError
from mcuota.agent.memory import RecordingClock
from mcuota.agent.transport import Fetched, ReportKind
from mcuota.device.config import DeviceConfig
from mcuota.device.device import SimDevice


class Unreachable:
    """A server nobody can connect to, counting the attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def get_job_document(self) -> bytes:
        self.attempts += 1
        raise AgentError(AgentCode.CONNECTION_LOST, "connection refused")

    def fetch(self, file: str, offset: int, size: int) -> Fetched:
        raise AgentError(AgentCode.CONNECTION_LOST, "connection refused")

    def report(self, file: str, kind: ReportKind, reason: str) -> None:
        raise AgentError(AgentCode.CONNECTION_LOST, "connection refused")


def _agent(link: Unreachable, **settings: object) -> tuple[Agent, RecordingClock]:
    device = SimDevice(DeviceConfig("S1", "mcuboot-swap-move-f407", "B"))
    clock = RecordingClock()
    config = AgentConfig(board="B", **settings)  # type: ignore[arg-type]
    return Agent(config, link, device.storage, clock=clock, self_test=lambda boot, version: True), clock


def test_reaching_the_server_gets_connect_retries_attempts_with_backoff() -> None:
    link = Unreachable()
    agent, clock = _agent(link, connect_retries=4, retries=2, retry_interval=10, jitter=0)
    outcome = agent.check_for_update()
    assert outcome.status is Status.FAILED
    assert outcome.code is AgentCode.CONNECTION_LOST
    assert link.attempts == 4
    assert clock.sleeps[:3] == [10.0, 20.0, 40.0]


def test_next_check_follows_the_settings() -> None:
    agent, _ = _agent(Unreachable(), initial_check=30, next_check=3600, retry_interval=10, check_timeout=60,
                      jitter=0)
    assert agent.next_check_in(None) == 30
    assert agent.next_check_in(Outcome(Status.NO_UPDATE)) == 3600
    assert agent.next_check_in(Outcome(Status.UPDATED)) == 3600
    failed = Outcome(Status.FAILED)
    assert [agent.next_check_in(failed, n) for n in (1, 2, 3, 4)] == [10, 20, 40, 60]


def test_jitter_spreads_retries_reproducibly() -> None:
    first, _ = _agent(Unreachable(), retry_interval=100, jitter=0.25, seed=5)
    again, _ = _agent(Unreachable(), retry_interval=100, jitter=0.25, seed=5)
    delays = [first.next_check_in(Outcome(Status.FAILED), 1) for _ in range(20)]
    assert delays == [again.next_check_in(Outcome(Status.FAILED), 1) for _ in range(20)]
    assert all(75 <= d <= 125 for d in delays)
    assert len(set(delays)) > 10

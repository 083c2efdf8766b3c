"""The agent's settings, with the seed-002 agent's defaults (``cy_ota_config.h``) and its ranges.

Intervals are seconds and must lie within 5 s .. 1 year, as the seed agent checks them; a retry
waits ``retry_interval`` doubled per failed attempt (capped at ``check_timeout``) and spread by
``jitter`` so a fleet that lost its server does not come back in lock-step. The spread comes from a
``random.Random`` seeded with ``seed``: the same configuration retries at the same instants, which is
what a test and a simulation replay need.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mcuota.errors import UsageError

MIN_INTERVAL = 5
MAX_INTERVAL = 365 * 24 * 3600
STEP_MIN = 256
STEP_MAX = 64 * 1024


@dataclass(frozen=True)
class AgentConfig:
    board: str = ""
    """The board name a job document must carry (WRONG_BOARD otherwise)."""
    initial_check: float = 60
    next_check: float = 86400
    retry_interval: float = 5
    check_timeout: float = 600
    packet_interval: float = 60
    job_check: float = 30
    data_check: float = 1200
    retries: int = 5
    """Attempts at one request (job document, one range, one result) before the update fails."""
    connect_retries: int = 3
    max_download_tries: int = 3
    http_timeout_ms: int = 3000
    step: int = 4096
    """Bytes asked for per range request / chunk request, and written to flash per step."""
    jitter: float = 0.25
    """Each retry delay is scaled by a factor drawn from 1 - jitter .. 1 + jitter."""
    seed: int = 0
    use_job_flow: bool = True
    job_path: str = "/ota_update.json"
    direct_file: str = ""
    """The direct flow's image path (no job document)."""
    reset_after_complete: bool = True
    self_test_timeout: float = 60

    def __post_init__(self) -> None:
        for name in ("initial_check", "next_check", "retry_interval", "check_timeout", "packet_interval",
                     "job_check", "data_check", "self_test_timeout"):
            value = getattr(self, name)
            if not MIN_INTERVAL <= value <= MAX_INTERVAL:
                raise UsageError(f"agent setting {name} = {value} s is outside {MIN_INTERVAL} s .. 1 year")
        for name in ("retries", "connect_retries", "max_download_tries"):
            if not 1 <= getattr(self, name) <= 100:
                raise UsageError(f"agent setting {name} = {getattr(self, name)} is outside 1..100")
        if not 100 <= self.http_timeout_ms <= 600_000:
            raise UsageError(f"agent setting http_timeout_ms = {self.http_timeout_ms} is outside 100..600000")
        if not STEP_MIN <= self.step <= STEP_MAX or self.step & (self.step - 1):
            raise UsageError(f"agent setting step = {self.step} is not a power of two in "
                             f"{STEP_MIN}..{STEP_MAX}")
        if not 0 <= self.jitter < 1:
            raise UsageError(f"agent setting jitter = {self.jitter} is outside 0..1")
        if not self.use_job_flow and not self.direct_file:
            raise UsageError("the direct flow needs direct_file (the image's path)")

    def rng(self) -> random.Random:
        return random.Random(f"mcuota-agent/{self.seed}")

    def retry_delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt`` + 1 (``attempt`` >= 1 failed attempts so far)."""
        base = float(min(self.retry_interval * 2 ** (attempt - 1), self.check_timeout))
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)

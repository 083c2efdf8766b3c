"""A fleet rehearsal: many simulated devices, mixed bootloaders and protocols, updated by a staged
rollout on a real update service while a seeded fault plan cuts their power, drops and corrupts their
traffic and crashes new images.

Devices are coroutines on one asyncio loop that hand their CPU-bound work (flash model, bootloader,
emulated core) to a small thread pool; network waits release the GIL, so a few workers keep a thousand
devices moving. Each device loop is what the firmware does: check for an update, download it (power may
fail at any flash operation: the device powers on again and its agent resumes), reset into the
bootloader (power may fail during the install too), self-test and confirm, report; a device with
nothing to do checks again after its poll interval.

The verdict is the devices' own: after the run every device is powered on once more, cleanly, and what
its emulated core prints is what it runs. A device whose bootloader does not start an application and
cannot take an update either is *bricked* — the number a layout and a bootloader exist to keep at zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from mcuota.agent.core import Outcome, Status
from mcuota.agent.errors import AgentCode
from mcuota.agent.memory import MemoryHttpServer, Network, RecordingClock
from mcuota.agent.transport import HttpTransport
from mcuota.boot.strategy import BootAction, ReleaseImage
from mcuota.device.config import DeviceConfig, Protocol
from mcuota.device.device import BootReport, SimDevice
from mcuota.device.links import link_factory
from mcuota.errors import McuotaError, UsageError
from mcuota.flash import PowerLoss, count_ops
from mcuota.image.keys import PrivateKey, generate_private_key
from mcuota.image.version import ImageVersion
from mcuota.samples import sample_path
from mcuota.sim.admin import AdminApi
from mcuota.sim.faults import DeviceFaults, FaultPlan, Phase
from mcuota.sim.proxy import FaultProxy
from mcuota.sim.server import ServerHandle
from mcuota.transport.seed002 import Connection, JobDocument, build_job_document


@dataclass(frozen=True)
class Cohort:
    """Devices alike: one layout (bootloader), one protocol, one sample firmware, one server board."""

    name: str
    layout: str
    protocol: Protocol
    sample: str
    board: str
    weight: float = 1.0


DEMO_COHORTS = (
    Cohort("gizwits-http", "gizwits-f103", Protocol.SEED002_HTTP, "gizwits-f103", "gokit-f103", 0.25),
    Cohort("mcuboot-api", "mcuboot-swap-move-f407", Protocol.DEVICE_API, "mcuboot-f407", "f407-mcuboot",
           0.35),
    Cohort("mcuboot-mqtt", "mcuboot-swap-move-f407", Protocol.SEED002_MQTT, "mcuboot-f407", "f407-mcuboot",
           0.2),
    Cohort("seed001-api", "stm32-header-f103", Protocol.DEVICE_API, "stm32-header-f103", "stm32-f103", 0.2),
)
"""The demo's fleet: Gizwits F103 over seed-002 HTTP, MCUboot swap-move F407 over our API and over
seed-002 MQTT, and seed-001 header-bootloader F103 devices."""

LARGE_COHORTS = (
    Cohort("large-api", "mcuboot-swap-move-f407", Protocol.DEVICE_API, "large-f407", "f407-large", 1.0),
)
"""The benchmark's fleet: the ~230 KB sample on MCUboot swap-move over HTTP."""


@dataclass(frozen=True)
class FleetSpec:
    devices: int = 200
    cohorts: tuple[Cohort, ...] = DEMO_COHORTS
    faults: FaultPlan = field(default_factory=FaultPlan)
    seed: int = 1
    from_version: str = "1.0.0"
    to_version: str = "2.0.0"
    stages: tuple[int, ...] = (1, 10, 50, 100)
    halt_failure_rate: float = 0.25
    min_attempts: int = 20
    max_attempts: int = 3
    poll_s: float = 0.0
    """Real seconds between two checks of a device with nothing to do; 0 picks one from the fleet size
    that keeps check-ins near :data:`CHECKIN_RATE`."""
    modeled_poll_s: float = 300.0
    """What one such wait stands for in the devices' modeled time (their next-check interval)."""
    deadline_s: float = 110.0
    workers: int = 8

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise UsageError("a fleet needs at least one device")
        if not self.cohorts or sum(c.weight for c in self.cohorts) <= 0:
            raise UsageError("a fleet needs at least one cohort with a positive share")
        if self.workers < 1:
            raise UsageError("a fleet needs at least one worker thread")

    @property
    def needs_mqtt(self) -> bool:
        return any(c.protocol is Protocol.SEED002_MQTT for c in self.cohorts)

    def poll_interval(self) -> float:
        return self.poll_s if self.poll_s > 0 else max(0.3, self.devices / CHECKIN_RATE)


CHECKIN_RATE = 150.0
"""Idle check-ins per second the fleet aims at: what one server process answers comfortably."""


@dataclass
class DeviceRun:
    device: SimDevice
    cohort: Cohort
    faults: DeviceFaults
    image_size: int
    done: bool = False
    result: str = "pending"
    reason: str = ""
    failures: list[str] = field(default_factory=list)
    download_cut_armed: bool = False
    install_cut_armed: bool = False
    cuts: Counter[str] = field(default_factory=Counter)
    polls: int = 0


@dataclass(frozen=True)
class FleetProgress:
    devices: int
    converged: int
    reverted: int
    failed: int
    faults: int
    elapsed_s: float


@dataclass
class FleetReport:
    devices: int
    converged: int
    reverted: int
    failed: int
    bricked: int
    running_versions: dict[str, int]
    faults_injected: dict[str, int]
    bytes_over_air: int
    bytes_resent: int
    modeled_device_s: dict[str, float]
    failure_reasons: dict[str, int]
    cohorts: dict[str, dict[str, int]]
    rollouts: list[dict[str, Any]]
    target_version: str
    fault_plan: str
    seed: int
    wall_s: float
    ok: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "devices": self.devices, "converged": self.converged, "reverted": self.reverted,
            "failed": self.failed, "bricked": self.bricked, "running_versions": self.running_versions,
            "faults_injected": self.faults_injected, "bytes_over_air": self.bytes_over_air,
            "bytes_resent": self.bytes_resent, "modeled_device_s": self.modeled_device_s,
            "failure_reasons": self.failure_reasons, "cohorts": self.cohorts, "rollouts": self.rollouts,
            "target_version": self.target_version, "fault_plan": self.fault_plan, "seed": self.seed,
            "wall_s": round(self.wall_s, 2), "ok": self.ok,
        }


@dataclass
class _Release:
    factory: ReleaseImage
    update: ReleaseImage
    wire: bytes
    """What the server serves: the update in the layout's format (Gizwits: the bare .bin)."""
    download_ops: int = 1
    install_ops: int = 1


class Fleet:
    """Prepare (keys, releases, devices, rollouts) on a running update service, then run."""

    def __init__(self, spec: FleetSpec, server: ServerHandle, *,
                 on_progress: Callable[[FleetProgress], None] | None = None,
                 server_url: str | None = None) -> None:
        self.spec = spec
        self.server = server
        self.device_url = server_url or server.url
        self.on_progress = on_progress
        self.runs: list[DeviceRun] = []
        self.rollout_ids: list[int] = []
        self.key: PrivateKey = generate_private_key("ed25519")
        self.v_from = ImageVersion.parse(spec.from_version)
        self.v_to = ImageVersion.parse(spec.to_version)
        self.http = httpx.Client(limits=httpx.Limits(max_connections=spec.workers * 2,
                                                     max_keepalive_connections=spec.workers * 2))
        self.mqtt: Any = None
        self.proxies: list[FaultProxy] = []
        self.started = 0.0

    def close(self) -> None:
        self.http.close()
        if self.mqtt is not None:
            self.mqtt.close()
        for proxy in self.proxies:
            proxy.close()

    def _proxy(self, host: str, port: int, *, http: bool) -> tuple[str, int]:
        """Put a fault proxy in front of ``host:port`` when the plan has network faults."""
        plan = self.spec.faults
        if not any((plan.drop, plan.corrupt, plan.stall, plan.truncate)):
            return host, port
        proxy = FaultProxy(upstream=(host, port), plan=plan, seed=self.spec.seed, http=http).start()
        self.proxies.append(proxy)
        return proxy.address

    # -- preparation ------------------------------------------------------------------------------
    def prepare(self, *, progress: Callable[[str], None] | None = None) -> None:
        say = progress or (lambda _text: None)
        spec = self.spec
        pem = self.key.public().pem().decode()
        counts = _split(spec.devices, spec.cohorts)
        server = httpx.URL(self.device_url)
        host, port = self._proxy(server.host, server.port or 80, http=True)
        self.device_url = f"{server.scheme}://{host}:{port}"
        if spec.needs_mqtt:
            if not self.server.mqtt:
                raise UsageError("the fleet has MQTT devices but the update service has no MQTT broker")
            from mcuota.agent.mqtt_port import MqttLink  # noqa: PLC0415 - paho only for MQTT fleets

            broker, _, broker_port = self.server.mqtt.rpartition(":")
            broker, mqtt_port = self._proxy(broker, int(broker_port), http=False)
            self.mqtt = MqttLink(broker, mqtt_port, client_id=f"mcuota-sim-{spec.seed}")
        releases: dict[tuple[str, str, str], _Release] = {}
        with AdminApi(self.server.url, self.server.api_key) as admin:
            boards: dict[str, int] = {}
            for cohort in spec.cohorts:
                key = (cohort.board, cohort.layout, cohort.sample)
                if key in releases:
                    continue
                template = SimDevice(self._config(cohort, "TEMPLATE"))
                release = self._releases(template, cohort)
                releases[key] = release
                if cohort.board in boards:
                    continue
                if template.layout.image_format == "mcuboot":
                    admin.ensure_board(cohort.board)
                    admin.trust(pem, board=cohort.board)
                say(f"uploading {cohort.board} {spec.to_version} ({len(release.wire)} bytes)")
                gizwits = template.layout.image_format == "gizwits"
                uploaded = admin.upload_release(release.wire, board=cohort.board,
                                                image_format="gizwits" if gizwits else None,
                                                version=spec.to_version if gizwits else None)
                boards[cohort.board] = int(uploaded["id"])
            say(f"registering {spec.devices} devices")
            for cohort, count in zip(spec.cohorts, counts, strict=True):
                release = releases[(cohort.board, cohort.layout, cohort.sample)]
                for index in range(count):
                    serial = f"{cohort.name}-{index:05d}"
                    token = admin.add_device(serial, board=cohort.board, version=spec.from_version,
                                             tags=[cohort.name])
                    self.runs.append(self._device(cohort, serial, token, release))
            for board, release_id in boards.items():
                rollout = admin.create_rollout(release_id, board=board, stages=list(spec.stages),
                                               halt_failure_rate=spec.halt_failure_rate,
                                               min_attempts=spec.min_attempts, max_attempts=spec.max_attempts)
                self.rollout_ids.append(int(rollout["id"]))
        say(f"{len(self.runs)} devices running {spec.from_version}; {len(self.rollout_ids)} rollouts to "
            f"{spec.to_version} created")

    def _config(self, cohort: Cohort, serial: str) -> DeviceConfig:
        pem = self.key.public().pem().decode()
        return DeviceConfig(serial=serial, layout=cohort.layout, board=cohort.board, protocol=cohort.protocol,
                            server=self.device_url, mqtt=self.server.mqtt, keys=(pem,),
                            agent={"retries": 4, "retry_interval": 5, "next_check": 300,
                                   "seed": random.Random(serial).getrandbits(16)})

    def _releases(self, template: SimDevice, cohort: Cohort) -> _Release:
        def payload(version: str) -> bytes:
            return sample_path(cohort.sample, version, "bin").read_bytes()

        signer = self.key if template.layout.image_format == "mcuboot" else None
        factory = template.make_release(payload(self.spec.from_version), self.v_from, signer=signer)
        update = template.make_release(payload(self.spec.to_version), self.v_to, signer=signer)
        wire = update.payload if template.layout.image_format == "gizwits" else update.data
        release = _Release(factory, update, wire)
        release.download_ops, release.install_ops = _count_phases(template, release, self.v_to)
        return release

    def _device(self, cohort: Cohort, serial: str, token: str, release: _Release) -> DeviceRun:
        config = self._config(cohort, serial)
        link = link_factory(config, token, http_client=self.http, mqtt_link=self.mqtt)
        device = SimDevice(config, transport=link, clock=RecordingClock())
        device.strategy.factory_install(device.board, release.factory)
        faults = self.spec.faults.for_device(self.spec.seed, serial, download_ops=release.download_ops,
                                             install_ops=release.install_ops)
        if faults.crash and device.strategy.can_revert:
            device.self_test.crash_version = self.v_to
        return DeviceRun(device, cohort, faults, len(release.wire))

    # -- the run ----------------------------------------------------------------------------------
    def run_prepared(self) -> FleetReport:
        """:meth:`prepare` then :meth:`run`."""
        try:
            self.prepare()
        except BaseException:
            self.close()
            raise
        return self.run()

    def run(self) -> FleetReport:
        self.started = time.monotonic()
        try:
            asyncio.run(self._main())
        finally:
            self.close()
        return self._report()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        poll = self.spec.poll_interval()
        deadline = self.started + self.spec.deadline_s
        stop = asyncio.Event()
        with ThreadPoolExecutor(self.spec.workers, thread_name_prefix="device") as pool:
            # devices come up together, as a fleet does after a maintenance window: first boot spread
            for run in self.runs:
                await loop.run_in_executor(pool, self._first_boot, run)

            async def live(run: DeviceRun) -> None:
                rng = random.Random(f"poll/{run.device.config.serial}")
                await asyncio.sleep(rng.uniform(0, poll))
                while not run.done and not stop.is_set() and time.monotonic() < deadline:
                    again = await loop.run_in_executor(pool, self._step, run)
                    if run.done:
                        return
                    if not again:
                        run.polls += 1
                        run.device.clock.sleep(self.spec.modeled_poll_s)
                        await asyncio.sleep(poll * rng.uniform(0.75, 1.25))

            async def watch() -> None:
                while not stop.is_set():
                    self._progress()
                    if all(r.done for r in self.runs) or time.monotonic() >= deadline:
                        stop.set()
                        return
                    if await loop.run_in_executor(None, self._rollouts_over):
                        stop.set()
                        return
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(watch())
            await asyncio.gather(*(live(r) for r in self.runs))
            stop.set()
            await watcher
            # the verdict: every device powered on once more, cleanly
            for run in self.runs:
                await loop.run_in_executor(pool, self._final_boot, run)
        self._progress()

    def _first_boot(self, run: DeviceRun) -> None:
        report = run.device.power_on()
        if report.boot.action is not BootAction.JUMP:
            run.done, run.result, run.reason = True, "bricked", f"does not start: {report.boot.reason}"

    def _rollouts_over(self) -> bool:
        """All rollouts halted or cancelled: nobody will be offered anything any more."""
        try:
            with AdminApi(self.server.url, self.server.api_key, timeout=5) as admin:
                states = [admin.rollout(rid).get("state") for rid in self.rollout_ids]
        except Exception:      # a busy server: keep going, the deadline still holds
            return False
        return bool(states) and all(s in ("halted", "cancelled") for s in states)

    def _step(self, run: DeviceRun) -> bool:
        """One check and what follows; True when the device has more to do right away."""
        device = run.device
        cuts = device.counters.power_cuts
        # the cut waits for a check that writes flash (one with nothing to download writes none)
        if not run.download_cut_armed and run.faults.cut_download_at is not None:
            device.arm(run.faults.power_plan(Phase.DOWNLOAD))
        try:
            checked = device.survive(device.check)
        finally:
            device.disarm()
        if device.counters.power_cuts > cuts:
            run.download_cut_armed = True
            run.cuts["power-download"] += device.counters.power_cuts - cuts
            return self._settle(run, checked if isinstance(checked, BootReport) else None)
        assert isinstance(checked, Outcome)
        if checked.status is Status.FAILED:
            run.failures.append(checked.reason)
            # a flaky link only costs this check; an offer the device refuses will not get better
            refusals = [f for f in run.failures if f.split(":", 1)[0] in _REFUSALS]
            if len(refusals) >= self.spec.max_attempts:
                run.done, run.result, run.reason = True, "failed", checked.reason
            return False
        if checked.status is not Status.STAGED:
            return self._settle(run, None)
        cuts = device.counters.power_cuts
        if not run.install_cut_armed and run.faults.cut_install_at is not None:
            run.install_cut_armed = True
            device.arm(run.faults.power_plan(Phase.INSTALL))
        try:
            booted = device.survive(device.reset)
        finally:
            device.disarm()
        if device.counters.power_cuts > cuts:
            run.cuts["power-install"] += device.counters.power_cuts - cuts
        return self._settle(run, booted)

    def _settle(self, run: DeviceRun, boot: BootReport | None) -> bool:
        device = run.device
        if boot is not None and boot.boot.action is not BootAction.JUMP and not boot.boot.recoverable:
            run.done, run.result, run.reason = True, "bricked", boot.boot.reason
            return False
        outcome = boot.outcome if boot is not None else None
        if outcome is not None and outcome.status is Status.REVERTED:
            run.cuts["crash"] += device.self_test.crashes > 0
            run.done, run.result, run.reason = True, "reverted", outcome.reason
            return False
        running = device.running_version()
        if running is not None and running.triple == self.v_to.triple:
            run.done, run.result = True, "converged"
            # the next routine check-in: it tells the service what runs now, should the report sent
            # after the reset have been lost on the way
            with contextlib.suppress(McuotaError, PowerLoss):
                device.check()
            return False
        return boot is not None     # after a reset or a power cut, check again at once

    def _final_boot(self, run: DeviceRun) -> None:
        device = run.device
        device.disarm()
        report = device.survive(device.power_on)
        assert isinstance(report, BootReport)
        running = device.running_version()
        if report.boot.action is not BootAction.JUMP:
            run.result = "bricked" if not report.boot.recoverable else "stuck-recoverable"
            run.reason = report.boot.reason
        elif running is not None and running.triple == self.v_to.triple:
            run.result = "converged"
        elif run.result not in ("reverted", "failed"):
            run.result = "failed"
            run.reason = run.failures[-1] if run.failures else "not updated before the deadline"

    def _progress(self) -> None:
        if self.on_progress is None:
            return
        counts = Counter(r.result for r in self.runs)
        self.on_progress(FleetProgress(
            len(self.runs), counts["converged"], counts["reverted"], counts["failed"] + counts["bricked"],
            sum(sum(r.cuts.values()) for r in self.runs), time.monotonic() - self.started))

    # -- the report -------------------------------------------------------------------------------
    def _report(self) -> FleetReport:
        counts = Counter(r.result for r in self.runs)
        versions = Counter(r.device.running or "none" for r in self.runs)
        faults: Counter[str] = Counter()
        for run in self.runs:
            faults.update(run.cuts)
        for proxy in self.proxies:
            faults.update({f"net-{kind}": n for kind, n in proxy.stats.faults.items()})
        fetched = sum(r.device.counters.bytes_fetched for r in self.runs)
        needed = sum(r.image_size for r in self.runs if r.result == "converged")
        modeled = sorted(r.device.modeled_seconds for r in self.runs)
        reasons = Counter(_reason_key(r.reason) for r in self.runs if r.result in ("failed", "reverted"))
        cohorts: dict[str, dict[str, int]] = {}
        for run in self.runs:
            entry = cohorts.setdefault(run.cohort.name, Counter())
            entry[run.result] += 1
        rollouts: list[dict[str, Any]] = []
        try:
            with AdminApi(self.server.url, self.server.api_key) as admin:
                rollouts = [admin.rollout(rid) for rid in self.rollout_ids]
        except Exception as exc:
            rollouts = [{"error": str(exc)}]
        report = FleetReport(
            devices=len(self.runs), converged=counts["converged"], reverted=counts["reverted"],
            failed=counts["failed"] + counts["stuck-recoverable"], bricked=counts["bricked"],
            running_versions=dict(sorted(versions.items())), faults_injected=dict(sorted(faults.items())),
            bytes_over_air=fetched, bytes_resent=max(0, fetched - needed),
            modeled_device_s={"median": round(modeled[len(modeled) // 2], 1) if modeled else 0.0,
                              "max": round(modeled[-1], 1) if modeled else 0.0},
            failure_reasons=dict(reasons.most_common(10)), cohorts={k: dict(v) for k, v in cohorts.items()},
            rollouts=rollouts, target_version=str(self.v_to), fault_plan=str(self.spec.faults),
            seed=self.spec.seed, wall_s=time.monotonic() - self.started)
        report.ok = report.bricked == 0 and report.converged == report.devices
        return report


_REFUSALS = frozenset(code.value for code in (
    AgentCode.WRONG_BOARD, AgentCode.TOO_LARGE, AgentCode.WRONG_FORMAT, AgentCode.STORAGE))
"""Failures that are the offer's (the device will refuse it every time), as opposed to the link's."""


def _split(total: int, cohorts: tuple[Cohort, ...]) -> list[int]:
    """``total`` devices over the cohorts by weight, largest remainders first, every cohort ≥ 1 if it can."""
    weight = sum(c.weight for c in cohorts)
    exact = [total * c.weight / weight for c in cohorts]
    counts = [int(x) for x in exact]
    order = sorted(range(len(cohorts)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[:total - sum(counts)]:
        counts[i] += 1
    return counts


def _reason_key(reason: str) -> str:
    return reason.split(":", 1)[0].strip() or "unknown"


def _count_phases(template: SimDevice, release: _Release, target: ImageVersion) -> tuple[int, int]:
    """Flash operations of a clean download and a clean install on this layout, counted on an in-memory
    copy of the device: where the fault plan places its power cuts."""
    network = Network()
    network.files["/update.bin"] = release.wire
    network.job = build_job_document(JobDocument(board=template.config.board, version=target,
                                                 connection=Connection.HTTP, host="sim", port=80,
                                                 file="/update.bin"))
    probe = SimDevice(template.config, transport=HttpTransport(MemoryHttpServer(network)))
    probe.strategy.factory_install(probe.board, release.factory)
    probe.power_on()
    outcome: list[Outcome] = []
    download = count_ops(probe.board.domain, lambda: outcome.append(probe.check()))
    if not outcome or outcome[0].status is not Status.STAGED:
        raise UsageError(f"{template.layout.name}: a clean update does not stage "
                         f"({outcome[0].reason if outcome else 'nothing happened'})")
    install = count_ops(probe.board.domain, probe.reset)
    return max(1, download), max(1, install)


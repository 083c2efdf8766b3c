"""``mcuota sim``: everything simulated — one device kept in a state directory (``sim device create|run|
power-cycle|status``) and whole fleets against an update service (``sim fleet``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mcuota.cli.common import add_command, print_json

PROTOCOLS = ("http", "api", "mqtt")


def register(sub: Any) -> None:
    parser = add_command(sub, "sim", "simulated devices and fleets (flash, bootloader, agent, emulated core)",
                         "mcuota sim fleet --embedded --devices 200 --faults demo --json report.json")
    verbs = parser.add_subparsers(dest="sim_verb", metavar="VERB", required=True)
    _register_device(verbs)
    _register_fleet(verbs)


def _register_device(verbs: Any) -> None:
    device = add_command(verbs, "device", "one simulated device kept in a state directory",
                         "mcuota sim device status --state dev1")
    dverbs = device.add_subparsers(dest="device_verb", metavar="VERB", required=True)

    create = add_command(
        dverbs, "create", "build a device as it leaves the factory, firmware installed",
        "mcuota sim device create --state dev1 --layout mcuboot-swap-move-f407 --firmware app.elf "
        "--version 1.0.0 --serial SN1 --board f407 --protocol api --server http://127.0.0.1:8080 --token T",
        description="Build a simulated device in DIR: its flash (the layout plus the agent's journal), the "
                    "firmware installed by the factory, and how it reaches the update service. FIRMWARE is "
                    "an image in the layout's format, or raw firmware (ELF, HEX, BIN) with --version, which "
                    "is wrapped in that format (MCUboot: signed with --key, else the layout's development "
                    "key).")
    create.add_argument("--state", required=True, metavar="DIR", help="state directory to create")
    create.add_argument("--layout", required=True, help="bootloader layout (see mcuota boot layouts)")
    create.add_argument("--firmware", required=True, metavar="FILE", help="firmware installed at the factory")
    create.add_argument("--serial", required=True, help="the device's serial number")
    create.add_argument("--version", help="version of raw firmware (x.y.z)")
    create.add_argument("--board", help="board name the update service uses (default: the layout's name)")
    create.add_argument("--protocol", choices=PROTOCOLS, default="api",
                        help="http: seed-002 HTTP; api: mcuota's device API; mqtt: seed-002 MQTT "
                             "(default api)")
    create.add_argument("--server", metavar="URL", default="", help="update service base URL")
    create.add_argument("--mqtt", metavar="HOST:PORT", default="", help="broker of the MQTT protocol")
    create.add_argument("--token", default=None, help="device token (default $MCUOTA_DEVICE_TOKEN)")
    create.add_argument("--key", metavar="PEM", help="MCUboot: private key to sign raw firmware with")
    create.add_argument("--trust", metavar="PEM", action="append", default=[],
                        help="MCUboot: a public key the bootloader trusts (repeatable; default: --key's, "
                             "else the development key)")
    create.add_argument("--agent", metavar="NAME=VALUE", action="append", default=[],
                        help="agent setting, e.g. step=1024 or next_check=60 (repeatable)")
    create.add_argument("--force", action="store_true", help="replace an existing device in DIR")
    create.set_defaults(handler=_create)

    run = add_command(dverbs, "run", "run a device: boot, check for updates, install them",
                      "mcuota sim device run --state dev1 --interval 5 --until 2.0.0",
                      description="Run the device in DIR in real time: power on, then check for an update "
                                  "every --interval seconds, resetting into the bootloader when the agent "
                                  "asks. The flash is saved after every step: killing the process is a power "
                                  "cut, and the next run resumes.")
    run.add_argument("--state", required=True, metavar="DIR")
    run.add_argument("--server", metavar="URL", help="override the configured update service URL")
    run.add_argument("--interval", type=float, default=None, metavar="S",
                     help="seconds between checks (default: the agent's settings: initial check, next check, "
                          "retry interval with backoff and jitter)")
    run.add_argument("--checks", type=int, default=None, metavar="N", help="stop after N checks")
    run.add_argument("--until", metavar="VERSION", help="stop once the device runs VERSION")
    run.set_defaults(handler=_run)

    cycle = add_command(dverbs, "power-cycle", "power the device off and on: the bootloader runs",
                        "mcuota sim device power-cycle dev1")
    cycle.add_argument("state", metavar="DIR")
    cycle.set_defaults(handler=_power_cycle)

    serial = add_command(
        dverbs, "serve-serial", "receive one image over a serial port (YMODEM) and install it",
        "mcuota sim device serve-serial --state dev1 --port /dev/pts/7",
        description="Make the device in DIR a UART bootloader (ST AN4657 style): wait for a YMODEM sender "
                    "on --port, write the blocks into the staging area as they arrive (journaled: a power "
                    "cut leaves the running firmware alone), verify, and install it through the layout's "
                    "bootloader. Send with 'mcuota flash --port P --protocol ymodem IMAGE' or "
                    "'sz --ymodem IMAGE'.")
    serial.add_argument("--state", required=True, metavar="DIR")
    serial.add_argument("--port", required=True, help="serial port (a pty from socat works)")
    serial.add_argument("--baud", type=int, default=115200)
    serial.add_argument("--timeout", type=float, default=60.0, metavar="S",
                        help="seconds to wait for the sender (and for each block)")
    serial.set_defaults(handler=_serve_serial)

    status = add_command(dverbs, "status", "what the device runs (its emulated UART), slots, download state",
                         "mcuota sim device status dev1 --json")
    status.add_argument("state", metavar="DIR")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)


def _register_fleet(verbs: Any) -> None:
    fleet = add_command(
        verbs, "fleet", "rehearse a staged rollout on a simulated fleet, with faults",
        "mcuota sim fleet --embedded --devices 500 --faults power-download=0.1,drop=0.05 --json report.json",
        description="Register N simulated devices with an update service, upload release --to for each "
                    "board, create staged rollouts and run the fleet against them with a seeded fault plan "
                    "(power cuts during download and install, dropped, corrupted, stalled and truncated "
                    "HTTP exchanges, images that crash before confirming). Ends with a report; exit 0 when "
                    "every device runs --to and none is bricked, 1 otherwise.")
    target = fleet.add_mutually_exclusive_group(required=True)
    target.add_argument("--embedded", action="store_true",
                        help="start an update service (SQLite, embedded MQTT broker) in a temporary "
                             "directory")
    target.add_argument("--server", metavar="URL", help="a running update service (needs its admin key)")
    fleet.add_argument("--api-key", help="admin API key of --server (default $MCUOTA_API_KEY)")
    fleet.add_argument("--mqtt", metavar="HOST:PORT", default="", help="broker of --server for MQTT devices")
    fleet.add_argument("--devices", type=int, default=200, metavar="N", help="fleet size (default 200)")
    fleet.add_argument("--layout", action="append", default=[], metavar="L",
                       help="only devices of this layout (repeatable); default: the demo's mixed fleet")
    fleet.add_argument("--protocol", choices=PROTOCOLS, default="api", help="protocol of --layout devices")
    fleet.add_argument("--large", action="store_true", help="the ~230 KB sample on MCUboot swap-move")
    fleet.add_argument("--faults", default="none", metavar="PLAN",
                       help="fault plan: a preset (none, light, default, heavy, demo) or rates such as "
                            "power-download=0.1,power-install=0.05,drop=0.05,corrupt=0.02,crash=0.01")
    fleet.add_argument("--seed", type=int, default=1, help="fault and timing seed (default 1)")
    fleet.add_argument("--stages", default="1,10,50,100", help="rollout stages in percent")
    fleet.add_argument("--deadline", type=float, default=110.0, metavar="S", help="give up after S seconds")
    fleet.add_argument("--workers", type=int, default=8, help="device worker threads (default 8)")
    fleet.add_argument("--server-workers", type=int, default=1, help="--embedded: server processes")
    fleet.add_argument("--json", metavar="FILE", help="write the report as JSON to FILE ('-': stdout)")
    fleet.set_defaults(handler=_fleet)


# -- device verbs --------------------------------------------------------------------------------------

def _agent_settings(items: list[str]) -> dict[str, Any]:
    from mcuota.errors import UsageError

    settings: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--agent {item!r}: use NAME=VALUE, e.g. step=1024")
        value: Any = text
        for cast in (int, float):
            try:
                value = cast(text)
                break
            except ValueError:
                continue
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        settings[name.strip()] = value
    return settings


def _create(args: argparse.Namespace) -> int:
    from mcuota.device.config import DeviceConfig, Protocol
    from mcuota.device.device import SimDevice
    from mcuota.device.store import CONFIG, save_device
    from mcuota.errors import UsageError
    from mcuota.fsutil import read_input
    from mcuota.image.firmware import parse_firmware
    from mcuota.image.keys import load_private_key_file, load_public_key_file
    from mcuota.image.version import ImageVersion

    state = Path(args.state)
    if (state / CONFIG).exists() and not args.force:
        raise UsageError(f"{state} already holds a device (--force replaces it)")
    trusted = [load_public_key_file(p).pem().decode() for p in args.trust]
    signer = load_private_key_file(args.key) if args.key else None
    if signer is not None and not trusted:
        trusted = [signer.public().pem().decode()]
    token = args.token if args.token is not None else os.environ.get("MCUOTA_DEVICE_TOKEN", "")
    config = DeviceConfig(serial=args.serial, layout=args.layout, board=args.board or args.layout,
                          protocol=Protocol(args.protocol), server=args.server, mqtt=args.mqtt,
                          keys=tuple(trusted), agent=_agent_settings(args.agent))
    config.agent_config()                                  # refuse bad settings before writing anything
    device = SimDevice(config)
    data = read_input(args.firmware, "firmware")
    release = device.strategy.parse_release(data)
    if release is None:
        if not args.version:
            raise UsageError(f"{args.firmware} is not a {device.layout.image_format} image: give --version "
                             "to wrap raw firmware")
        firmware = parse_firmware(data, name=args.firmware)
        release = device.make_release(firmware.contiguous(), ImageVersion.parse(args.version), signer=signer)
    report = device.factory_install(release)
    save_device(state, config, device.board, token=token)
    print(f"created {args.serial} ({device.layout.name}) in {state}: {_boot_line(report)}")
    return 0 if report.running else 1


def _boot_line(report: Any) -> str:
    if report.outcome is None:
        return f"the bootloader stays ({report.boot.reason})"
    return f"runs {report.running or 'nothing'}"


def _open(state: str, server: str | None = None) -> tuple[Any, Any]:
    """(device with its link, save function)."""
    import dataclasses

    from mcuota.device.device import SimDevice
    from mcuota.device.links import link_factory
    from mcuota.device.store import load_device, save_flash_state

    config, board, token = load_device(state)
    if server:
        config = dataclasses.replace(config, server=server)
    mqtt = None
    if config.mqtt:
        from mcuota.agent.mqtt_port import MqttLink

        host, _, port = config.mqtt.rpartition(":")
        mqtt = MqttLink(host, int(port), client_id=f"mcuota-{config.serial}")
    link = link_factory(config, token, mqtt_link=mqtt) if (config.server or mqtt) else None
    device = SimDevice(config, board=board, transport=link)
    return device, lambda: save_flash_state(state, device.board)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from mcuota.device.runner import RunEvent, run_device

    console = Console(stderr=False, highlight=False)
    device, save = _open(args.state, args.server)

    def show(event: RunEvent) -> None:
        console.print(f"[bold]{device.config.serial}[/] {event.what}: {event.detail}")

    running = run_device(device, interval=args.interval, checks=args.checks, until=args.until, save=save,
                         on_event=show)
    return 0 if args.until is None or running == args.until else 1


def _serve_serial(args: argparse.Namespace) -> int:
    from mcuota.agent.errors import AgentError
    from mcuota.device.serial_install import serve_serial
    from mcuota.transport.ymodem_serial import open_serial

    device, save = _open(args.state)
    boot = device.power_on()
    print(f"{device.config.serial}: {_boot_line(boot)}; waiting for a YMODEM sender on {args.port}",
          flush=True)
    line = open_serial(args.port, args.baud)
    try:
        report = serve_serial(device, line, timeout=args.timeout)
    except AgentError as exc:
        save()
        print(f"{device.config.serial}: refused: {exc}; still {_boot_line(device.power_on())}")
        return 1
    finally:
        line.close()
    save()
    print(f"{device.config.serial}: installed; {_boot_line(report)}")
    return 0 if report.running else 1


def _power_cycle(args: argparse.Namespace) -> int:
    device, save = _open(args.state)
    report = device.power_on()
    save()
    print(f"{device.config.serial}: {_boot_line(report)}")
    return 0 if report.running else 1


def _status(args: argparse.Namespace) -> int:
    device, _save = _open(args.state)
    # what runs is what the emulated core prints: boot a copy, leave the saved flash as it is
    report = device.power_on()
    status = device.status()
    status["boot_log"] = list(report.boot.log)
    if args.json:
        print_json(status)
        return 0
    download = status["download"]
    assert isinstance(download, dict)
    print(f"{status['serial']} ({status['layout']}, board {status['board']}, {status['protocol']})")
    print(f"  runs:       {status['running_version'] or 'nothing (bootloader stays)'}")
    print(f"  bootloader: {report.boot.reason}")
    staged = status["staged_version"]
    if staged:
        print(f"  download:   {staged}, {download['steps_done']} steps of {download['total']} bytes"
              f"{', requested' if download['requested'] else ''}{', done' if download['done'] else ''}")
    slots = status["slots"]
    assert isinstance(slots, dict)
    for name, slot in slots.items():
        if isinstance(slot, dict) and "trailer" in slot:
            trailer = slot["trailer"]
            print(f"  {name + ':':11} {slot['version'] or 'no image'}; trailer magic {trailer['magic']}, "
                  f"image_ok {trailer['image_ok']}, copy_done {trailer['copy_done']}")
        else:
            print(f"  {name + ':':11} {slot}")
    print(f"  flash:      {status['flash_ops']} operations, {status['modeled_seconds']} s modeled")
    return 0


# -- fleet ----------------------------------------------------------------------------------------------

def _fleet(args: argparse.Namespace) -> int:
    import tempfile

    from mcuota.errors import UsageError
    from mcuota.sim.faults import FaultPlan
    from mcuota.sim.fleet import DEMO_COHORTS, LARGE_COHORTS, Cohort, FleetSpec
    from mcuota.sim.server import ServerHandle, ServerProcess

    plan = FaultPlan.parse(args.faults)
    try:
        stages = tuple(int(s) for s in args.stages.split(","))
    except ValueError:
        raise UsageError(f"--stages {args.stages!r}: use percentages like 1,10,50,100") from None
    cohorts: tuple[Cohort, ...] = LARGE_COHORTS if args.large else DEMO_COHORTS
    if args.layout:
        from mcuota.boot.presets import get_layout
        from mcuota.device.config import Protocol

        cohorts = tuple(Cohort(f"{name}-{args.protocol}", name, Protocol(args.protocol),
                               get_layout(name).sample_target, name) for name in args.layout)
    spec = FleetSpec(devices=args.devices, cohorts=cohorts, faults=plan, seed=args.seed, stages=stages,
                     deadline_s=args.deadline, workers=args.workers)
    if args.embedded:
        with tempfile.TemporaryDirectory(prefix="mcuota-fleet-") as work, \
                ServerProcess(Path(work) / "server", workers=args.server_workers,
                              mqtt=spec.needs_mqtt) as handle:
            report = run_fleet(spec, handle)
    else:
        key = args.api_key or os.environ.get("MCUOTA_API_KEY")
        if not key:
            raise UsageError("--server needs the admin key: --api-key or $MCUOTA_API_KEY")
        report = run_fleet(spec, ServerHandle(args.server.rstrip("/"), key, args.mqtt))
    write_report(report.to_json(), args.json)
    return 0 if report.ok else 1


def run_fleet(spec: Any, handle: Any, *, title: str = "fleet") -> Any:
    """Prepare and run a fleet with a live progress bar; print the report's summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mcuota.sim.fleet import Fleet, FleetProgress

    console = Console(stderr=True, highlight=False)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(title, total=spec.devices, detail="preparing")

        def update(state: FleetProgress) -> None:
            progress.update(task, completed=state.converged + state.reverted + state.failed,
                            detail=f"converged {state.converged} · reverted {state.reverted} · failed "
                                   f"{state.failed} · faults {state.faults}")

        fleet = Fleet(spec, handle, on_progress=update)
        fleet.prepare(progress=lambda text: progress.update(task, detail=text))
        report = fleet.run()
    print_summary(report, console)
    return report


def print_summary(report: Any, console: Any) -> None:
    versions = ", ".join(f"{v}: {n}" for v, n in report.running_versions.items())
    faults = ", ".join(f"{k} {n}" for k, n in report.faults_injected.items()) or "none"
    console.print(f"devices {report.devices} · converged {report.converged} · reverted {report.reverted} · "
                  f"failed {report.failed} · [bold]bricked {report.bricked}[/]")
    console.print(f"running versions: {versions}")
    console.print(f"faults injected: {faults}")
    console.print(f"bytes over the air {report.bytes_over_air:,} (re-sent {report.bytes_resent:,}); modeled "
                  f"device time median {report.modeled_device_s['median']} s; wall {report.wall_s:.1f} s")
    if report.failure_reasons:
        console.print("failures: " + ", ".join(f"{k} x{n}" for k, n in report.failure_reasons.items()))
    for rollout in report.rollouts:
        if "id" in rollout:
            console.print(f"rollout {rollout['id']} ({rollout.get('board')}): {rollout.get('state')}, stage "
                          f"{rollout.get('stage')}")


def write_report(data: dict[str, Any], target: str | None) -> None:
    if not target:
        return
    text = json.dumps(data, indent=2) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    from mcuota.fsutil import atomic_write

    atomic_write(target, text)

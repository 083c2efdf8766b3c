"""``mcuota agent``: the OTA agent on a Linux host, staging updates in a file-backed slot."""

from __future__ import annotations

import argparse
from typing import Any

from mcuota.cli.common import add_command


def register(sub: Any) -> None:
    parser = add_command(sub, "agent", "run the OTA agent on this host (a file-backed slot)",
                         "mcuota agent run --dir /var/lib/fw --server https://ota.example --serial GW1 "
                         "--board gw")
    verbs = parser.add_subparsers(dest="agent_verb", metavar="VERB", required=True)
    init = add_command(verbs, "init", "create the slot directory and say what the host runs today",
                       "mcuota agent init --dir /var/lib/fw --version 1.0.0")
    init.add_argument("--dir", required=True, help="slot directory")
    init.add_argument("--version", required=True, help="version the host runs now")
    init.set_defaults(handler=_init)

    run = add_command(
        verbs, "run", "check for updates, download with resume, verify, install, self-test, confirm",
        "mcuota agent run --dir fw --server http://127.0.0.1:8080 --serial GW1 --board gw --token T "
        "--trust signing-pub.pem --install-cmd 'cp {image} /opt/app.bin' "
        "--self-test-cmd '/opt/check {version}'",
        description="Run the OTA agent against an update service, staging in DIR/slot.bin with the download "
                    "journaled in DIR/journal (a host that loses power resumes). A verified image is "
                    "installed by --install-cmd ({image}: the staged file) and becomes DIR/current.bin on "
                    "trial; --self-test-cmd ({version}) decides whether it is confirmed or reverted.")
    run.add_argument("--dir", required=True, help="slot directory (see mcuota agent init)")
    run.add_argument("--server", required=True, metavar="URL", help="update service base URL")
    run.add_argument("--serial", required=True, help="this host's serial number")
    run.add_argument("--board", required=True, help="board name the update service uses")
    run.add_argument("--token", default=None, help="device token (default $MCUOTA_DEVICE_TOKEN)")
    run.add_argument("--protocol", choices=("api", "http"), default="api",
                     help="api: mcuota's device API (default); http: the seed-002 HTTP flow")
    run.add_argument("--format", choices=("mcuboot", "raw"), default="mcuboot",
                     help="image format: mcuboot (hash and signature checked) or raw (the job's SHA-256)")
    run.add_argument("--trust", metavar="PEM", action="append", default=[], help="trusted signing key")
    run.add_argument("--install-cmd", default="", help="command installing {image}")
    run.add_argument("--self-test-cmd", default="", help="command whose exit 0 confirms {version}")
    run.add_argument("--interval", type=float, default=60.0, metavar="S", help="seconds between checks")
    run.add_argument("--retries", type=int, default=5, metavar="N",
                     help="attempts at each request before the check fails (default 5, as the seed agent)")
    run.add_argument("--checks", type=int, metavar="N", help="stop after N checks")
    run.add_argument("--until", metavar="VERSION", help="stop once VERSION runs")
    run.set_defaults(handler=_run)


def _init(args: argparse.Namespace) -> int:
    from mcuota.agent.host import HostSlot
    from mcuota.image.version import ImageVersion

    slot = HostSlot(args.dir, image_format="raw")
    slot.set_running(ImageVersion.parse(args.version))
    print(f"{args.dir}: runs {args.version}")
    return 0


def _run(args: argparse.Namespace) -> int:
    import os
    import shlex

    from mcuota.agent.config import AgentConfig
    from mcuota.agent.host import HostSlot, run_host
    from mcuota.agent.http_port import HttpxPort
    from mcuota.agent.transport import HttpTransport, Transport
    from mcuota.errors import UsageError
    from mcuota.image.keys import load_public_key_file
    from mcuota.image.version import ImageVersion

    keys = [load_public_key_file(path) for path in args.trust]
    if args.format == "mcuboot" and not keys:
        raise UsageError("an MCUboot slot needs at least one --trust key to check signatures against")
    slot = HostSlot(args.dir, image_format=args.format, keys=keys)
    if slot.running_version() is None:
        raise UsageError(f"{args.dir} does not say what runs: mcuota agent init --dir {args.dir} --version V")
    token = args.token if args.token is not None else os.environ.get("MCUOTA_DEVICE_TOKEN", "")
    config = AgentConfig(board=args.board, retries=args.retries)
    port = HttpxPort(args.server, serial=args.serial, token=token or None, timeout_ms=config.http_timeout_ms)
    transport: Transport
    if args.protocol == "http":
        transport = HttpTransport(port, job_path=f"/seed002/{args.serial}/ota_update.json")
    else:
        from mcuota.agent.device_api import DeviceApiTransport

        transport = DeviceApiTransport(port, serial=args.serial, board=args.board,
                                       running_version=lambda: slot.running_version() or ImageVersion())
    running = run_host(slot, transport, config, install=shlex.split(args.install_cmd),
                       self_test=shlex.split(args.self_test_cmd), interval=args.interval, checks=args.checks,
                       until=args.until, on_event=lambda text: print(f"{args.serial} {text}", flush=True))
    return 0 if args.until is None or str(running) == args.until else 1

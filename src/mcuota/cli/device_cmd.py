"""``mcuota device add | list | show``: the devices the update server knows, and their tokens."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mcuota.cli.common import add_command
from mcuota.cli.fleet_client import add_json_option, add_server_options


def register(sub: Any) -> None:
    parser = sub.add_parser("device", help="register and inspect devices on the update server",
                            description="Register and inspect devices on the update server.")
    verbs = parser.add_subparsers(dest="device_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True

    add = add_command(verbs, "add", "register a device; prints its token (shown only this once)",
                      "mcuota device add SN0001 --board nrf52840dk --version 1.0.0 --tag canary --json",
                      description="Register a device. The server issues a token the device authenticates "
                                  "with; it is printed once and stored on the server only as a hash.")
    add.add_argument("serial", metavar="SERIAL", help="the device's serial number")
    add.add_argument("--board", required=True, help="its board (must be known to the server)")
    add.add_argument("--product", help="its product (default: the board's)")
    add.add_argument("--version", default="0.0.0", help="the version it runs now (default 0.0.0)")
    add.add_argument("--tag", action="append", default=[], metavar="T", help="a tag for rollout targeting "
                     "(repeatable)")
    add_json_option(add)
    add_server_options(add)
    add.set_defaults(handler=_add)

    lst = add_command(verbs, "list", "list devices", "mcuota device list --board nrf52840dk --tag canary")
    lst.add_argument("--board", help="only this board's devices")
    lst.add_argument("--tag", help="only devices with this tag")
    add_json_option(lst)
    add_server_options(lst)
    lst.set_defaults(handler=_list)

    show = add_command(verbs, "show", "show a device with its update attempts",
                       "mcuota device show SN0001 --json")
    show.add_argument("serial", metavar="SERIAL")
    add_json_option(show)
    add_server_options(show)
    show.set_defaults(handler=_show)


def _add(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client

    created = Client(args).call("POST", "/api/v1/devices", json={
        "serial": args.serial, "board": args.board, "product": args.product, "version": args.version,
        "tags": args.tag})
    if args.json:
        print_json({"serial": created["serial"], "token": created["token"]})
    else:
        print(created["token"])
        print(f"registered device {created['serial']} ({created['board']}, {created['version']}); its "
              "token is shown only this once", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client

    found = Client(args).call("GET", "/api/v1/devices", params={"board": args.board, "tag": args.tag})
    if args.json:
        print_json(found)
        return 0
    for d in found:
        print(f"{d['serial']:<20}  {d['board']:<16}  {d['version']:<12}  {','.join(d['tags']) or '-':<16}  "
              f"last seen {d['last_seen_at'] or 'never'}")
    if not found:
        print("no devices")
    return 0


def _show(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client

    d = Client(args).call("GET", f"/api/v1/devices/{args.serial}")
    if args.json:
        print_json(d)
        return 0
    print(f"device {d['serial']}: board {d['board']}, product {d['product'] or '-'}, runs {d['version']}, "
          f"tags {','.join(d['tags']) or '-'}, last seen {d['last_seen_at'] or 'never'}")
    for a in d["attempts"]:
        steps = " → ".join(h["state"] for h in a["history"])
        print(f"  attempt {a['id']}: release {a['release_id']} ({a['version']}), rollout {a['rollout_id']}, "
              f"{a['state']}{': ' + a['reason'] if a['reason'] else ''}  [{steps}]")
    return 0

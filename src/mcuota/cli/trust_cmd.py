"""``mcuota trust add | list``: the signing keys the update server accepts releases from."""

from __future__ import annotations

import argparse
from typing import Any

from mcuota.cli.common import add_command
from mcuota.cli.fleet_client import add_json_option, add_server_options


def register(sub: Any) -> None:
    parser = sub.add_parser("trust", help="manage the signing keys the update server trusts",
                            description="Manage the public keys whose signatures the update server accepts.")
    verbs = parser.add_subparsers(dest="trust_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True

    add = add_command(verbs, "add", "trust a public key for releases (of every board, or of one)",
                      "mcuota trust add signing-pub.pem --board nrf52840dk --data-dir /var/lib/mcuota",
                      description="Send a public key (PEM; a private key file works too: only its public "
                                  "half is sent) to the update server, which then accepts releases signed "
                                  "with it.")
    add.add_argument("key", metavar="PUBLIC_KEY.pem", help="PEM public key file")
    add.add_argument("--board", help="trust the key for this board only")
    add_json_option(add)
    add_server_options(add)
    add.set_defaults(handler=_add)

    lst = add_command(verbs, "list", "list trusted keys", "mcuota trust list --json")
    add_json_option(lst)
    add_server_options(lst)
    lst.set_defaults(handler=_list)


def _add(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client
    from mcuota.image.keys import load_public_key_file

    key = load_public_key_file(args.key)  # catch a wrong file here, before the network
    result = Client(args).call("POST", "/api/v1/trust/keys",
                               json={"pem": key.pem().decode(), "board": args.board})
    if args.json:
        print_json(result)
    else:
        scope = f"board {result['board']}" if result["board"] else "every board"
        print(f"trusted key {result['id']}: {result['key_type']} {result['key_hash']} for {scope}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client

    keys = Client(args).call("GET", "/api/v1/trust/keys")
    if args.json:
        print_json(keys)
        return 0
    for k in keys:
        print(f"{k['id']:>4}  {k['key_type']:<10}  {k['key_hash']}  {k['board'] or '(every board)'}")
    if not keys:
        print("no trusted keys")
    return 0

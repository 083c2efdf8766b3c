"""``mcuota release upload | list``: release images on the update server."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mcuota.cli.common import add_command
from mcuota.cli.fleet_client import add_json_option, add_server_options


def register(sub: Any) -> None:
    parser = sub.add_parser("release", help="upload and list release images on the update server",
                            description="Upload and list release images on the update server.")
    verbs = parser.add_subparsers(dest="release_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True

    up = add_command(verbs, "upload", "upload a signed image as a release for a board; prints its id",
                     "mcuota release upload app-signed.bin --board nrf52840dk --data-dir /var/lib/mcuota",
                     description="Upload an image (MCUboot, signed by a trusted key unless the server "
                                 "allows unsigned releases). The server verifies it as the bootloader will "
                                 "and refuses malformed, tampered, untrusted or duplicate-version images. "
                                 "Prints "
                                 "the release id.")
    up.add_argument("image", metavar="IMAGE", help="the image file")
    up.add_argument("--board", required=True, help="board the release is for")
    up.add_argument("--product", help="product the release belongs to")
    up.add_argument("--file-name",
                    help="name devices download it as (default <product>_<board>_v<version>.bin)")
    add_json_option(up)
    add_server_options(up)
    up.set_defaults(handler=_upload)

    lst = add_command(verbs, "list", "list releases", "mcuota release list --board nrf52840dk --json")
    lst.add_argument("--board", help="only this board's releases")
    add_json_option(lst)
    add_server_options(lst)
    lst.set_defaults(handler=_list)


def _upload(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client
    from mcuota.fsutil import read_input

    data = read_input(args.image, "image")
    release = Client(args).call("POST", "/api/v1/releases", content=data,
                                params={"board": args.board, "product": args.product,
                                        "file_name": args.file_name})
    if args.json:
        print_json(release)
    else:
        print(release["id"])
        signed = "signed" if release["signed"] else "unsigned"
        print(f"uploaded release {release['id']}: {release['board']} {release['version']} "
              f"({release['format']}, {signed}, {release['size']} bytes, sha256 {release['sha256']})",
              file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client

    found = Client(args).call("GET", "/api/v1/releases", params={"board": args.board})
    if args.json:
        print_json(found)
        return 0
    for r in found:
        print(f"{r['id']:>4}  {r['board']:<16}  {r['version']:<12}  {r['format']:<9}  "
              f"{'signed' if r['signed'] else 'unsigned':<8}  {r['size']:>8}  {r['file_name']}")
    if not found:
        print("no releases")
    return 0

"""``mcuota release upload | list``: release images on the update server."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mcuota.cli.common import add_command
from mcuota.cli.fleet_client import add_json_option, add_server_options

if TYPE_CHECKING:
    from mcuota.image.version import ImageVersion


def register(sub: Any) -> None:
    parser = sub.add_parser("release", help="upload and list release images on the update server",
                            description="Upload and list release images on the update server.")
    verbs = parser.add_subparsers(dest="release_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True

    up = add_command(verbs, "upload", "upload a signed image as a release for a board; prints its id",
                     "mcuota release upload app-signed.bin --board nrf52840dk --data-dir /var/lib/mcuota",
                     description="Upload an image (MCUboot, signed by a trusted key unless the server "
                                 "allows unsigned releases; or an Interrupt or stm32-header image, which "
                                 "carry no signature). The server verifies it as the bootloader will "
                                 "and refuses malformed, tampered, untrusted or duplicate-version images. "
                                 "A Gizwits application is a bare .bin: give its version with --format "
                                 "gizwits --version, or the sidecar 'mcuota image build --format gizwits' "
                                 "wrote with --metadata. Prints the release id.")
    up.add_argument("image", metavar="IMAGE", help="the image file")
    up.add_argument("--board", required=True, help="board the release is for")
    up.add_argument("--product", help="product the release belongs to")
    up.add_argument("--file-name",
                    help="name devices download it as (default <product>_<board>_v<version>.bin)")
    up.add_argument("--format", choices=("auto", "gizwits"), default=None,
                    help="auto (default): recognised from the bytes; gizwits: a bare Gizwits application")
    up.add_argument("--version", metavar="X.Y.Z", help="the version of a --format gizwits application")
    up.add_argument("--metadata", metavar="SIDECAR.json",
                    help="the gizwits sidecar of IMAGE: its size and MD5 are checked, its softVer is the "
                         "version (implies --format gizwits)")
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
    image_format, version = _format_and_version(args, data)
    release = Client(args).call("POST", "/api/v1/releases", content=data,
                                params={"board": args.board, "product": args.product,
                                        "file_name": args.file_name, "format": image_format,
                                        "version": version})
    if args.json:
        print_json(release)
    else:
        print(release["id"])
        signed = "signed" if release["signed"] else "unsigned"
        print(f"uploaded release {release['id']}: {release['board']} {release['version']} "
              f"({release['format']}, {signed}, {release['size']} bytes, sha256 {release['sha256']})",
              file=sys.stderr)
    return 0


def _format_and_version(args: argparse.Namespace, data: bytes) -> tuple[str | None, str | None]:
    """What the upload says about the bytes: nothing (auto), or gizwits with its version, taken from
    --version or from a sidecar that matches the file."""
    from mcuota.errors import UsageError

    if args.metadata is None:
        if args.version is not None and args.format != "gizwits":
            raise UsageError("--version is for --format gizwits; the other formats carry their version")
        if args.format == "gizwits" and args.version is None:
            raise UsageError("--format gizwits needs --version X.Y.Z or --metadata SIDECAR.json")
        return args.format, args.version
    if args.version is not None:
        raise UsageError("give the version either with --version or in --metadata, not both")
    if args.format == "auto":
        raise UsageError("--metadata is a gizwits sidecar; it cannot go with --format auto")
    return "gizwits", str(_sidecar_version(args.metadata, args.image, data))


def _sidecar_version(sidecar: str, image: str, data: bytes) -> ImageVersion:
    from mcuota.errors import IntegrityError
    from mcuota.fsutil import read_input
    from mcuota.image.gizwits import parse_sidecar, verify_gizwits_image

    metadata = parse_sidecar(read_input(sidecar, "metadata", limit=64 * 1024))
    check = verify_gizwits_image(data, metadata)
    if not check.ok:
        raise IntegrityError(f"{image} does not match {sidecar}: {check.reason}")
    return metadata.version


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

"""``mcuota keys generate | public``: the signing keys MCUboot images are signed with.

Passwords never travel on the command line (where ``ps`` and shell history would keep them): they come
from an environment variable or a file, the way CI systems hand out secrets. A new private key is
written atomically with mode 0600 and never replaces an existing file without ``--force``: losing a
production signing key to a mistyped path bricks every device that trusts it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from mcuota.cli.common import add_command

KEY_TYPE_CHOICES = ("ed25519", "ecdsa-p256", "rsa-2048", "rsa-3072")


def add_password_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--password-env VAR`` / ``--password-file F``, shared by every command that opens a key."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-env", metavar="VAR", help=f"read the password {what} from environment "
                       "variable VAR")
    group.add_argument("--password-file", metavar="F", help=f"read the password {what} from file F (one "
                       "line; a trailing newline is ignored)")


def read_password(args: argparse.Namespace) -> bytes | None:
    """The password chosen by :func:`add_password_options`, or None; empty passwords are refused."""
    from mcuota.errors import UsageError

    if getattr(args, "password_env", None):
        value = os.environ.get(args.password_env)
        if value is None:
            raise UsageError(f"environment variable {args.password_env} is not set")
        if not value:
            raise UsageError(f"environment variable {args.password_env} is empty")
        return value.encode()
    if getattr(args, "password_file", None):
        from mcuota.fsutil import read_input

        raw = read_input(args.password_file, "password file", limit=64 * 1024)
        password = raw[:-1] if raw.endswith(b"\n") else raw
        password = password[:-1] if password.endswith(b"\r") else password
        if not password:
            raise UsageError(f"password file {args.password_file} is empty")
        return password
    return None


def register(sub: Any) -> None:
    parser = sub.add_parser("keys", help="generate MCUboot signing keys and export their public half",
                            description="Generate MCUboot signing keys and export their public half.")
    verbs = parser.add_subparsers(dest="keys_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True

    gen = add_command(
        verbs, "generate", "generate a private signing key (PKCS#8 PEM, as imgtool keygen writes)",
        "mcuota keys generate --type ed25519 --out signing.pem --password-env SIGNING_KEY_PASSWORD",
        description="Generate a private signing key as PKCS#8 PEM (readable by imgtool), optionally "
                    "encrypted with a password. The file is created with mode 0600 and an existing file "
                    "is only replaced with --force.")
    gen.add_argument("--type", "-t", required=True, choices=KEY_TYPE_CHOICES, help="key type")
    gen.add_argument("--out", "-o", required=True, metavar="FILE", help="private key file to create")
    gen.add_argument("--force", action="store_true", help="replace FILE if it exists")
    add_password_options(gen, "that encrypts the key")
    gen.set_defaults(handler=_generate)

    pub = add_command(
        verbs, "public", "export the public key as PEM or as the C array MCUboot compiles in",
        "mcuota keys public signing.pem --format c --out boot/keys.c",
        description="Export the public key of a private (or public) PEM key: as SubjectPublicKeyInfo PEM, "
                    "or as a C array of the exact bytes MCUboot compiles in (the same array imgtool getpub "
                    "prints: SubjectPublicKeyInfo DER for Ed25519/ECDSA, PKCS#1 DER for RSA).")
    pub.add_argument("key", metavar="KEY", help="PEM key file (private or public)")
    pub.add_argument("--format", "-f", choices=("pem", "c"), default="pem",
                     help="output format (default pem)")
    pub.add_argument("--name", help="C identifier of the array (default: imgtool's, e.g. ed25519_pub_key)")
    pub.add_argument("--out", "-o", metavar="FILE", help="write here instead of standard output")
    add_password_options(pub, "of an encrypted private key")
    pub.set_defaults(handler=_public)


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcuota.errors import UsageError
    from mcuota.fsutil import atomic_write
    from mcuota.image.keys import generate_private_key

    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"{out} is a directory")
    if out.exists() and not args.force:
        raise UsageError(f"{out} already exists; use --force to replace it")
    password = read_password(args)
    key = generate_private_key(args.type)
    atomic_write(out, key.pem(password), mode=0o600)
    protection = "encrypted" if password else "unencrypted"
    print(f"wrote {out}: {args.type} private key (PKCS#8 PEM, {protection}), key hash "
          f"{key.public().key_hash.hex()}")
    return 0


def _public(args: argparse.Namespace) -> int:
    from mcuota.fsutil import atomic_write
    from mcuota.image.keys import load_public_key_file

    key = load_public_key_file(args.key, read_password(args))
    if args.format == "pem":
        text = key.pem().decode()
    else:
        source = os.path.basename(args.key).replace("*/", "* /")  # cannot end the comment early
        text = (f"/* {key.type} public key of {source}, as MCUboot compiles it in "
                f"(generated by mcuota keys public). */\n{key.c_array(args.name)}")
    if args.out:
        atomic_write(args.out, text)
        print(f"wrote {args.out}: {key.type} public key ({args.format}), key hash {key.key_hash.hex()}")
    else:
        sys.stdout.write(text)
    return 0

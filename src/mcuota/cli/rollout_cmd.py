"""``mcuota rollout create | list | status | pause | resume | cancel``: staged rollouts of a release."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mcuota.cli.common import add_command
from mcuota.cli.fleet_client import add_json_option, add_server_options


def _stages(text: str) -> list[int]:
    from mcuota.server.rollout_policy import PolicyError, parse_stages

    try:
        return list(parse_stages(text))
    except PolicyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _attempts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of attempts {text!r}") from None
    if not 1 <= value <= 10:
        raise argparse.ArgumentTypeError(f"attempts {text} is not between 1 and 10")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"rate {text} is not between 0 and 1")
    return value


def register(sub: Any) -> None:
    parser = sub.add_parser("rollout", help="roll a release out to devices in stages",
                            description="Create and steer staged rollouts of a release.")
    verbs = parser.add_subparsers(dest="rollout_command", metavar="VERB", parser_class=type(parser))
    verbs.required = True

    create = add_command(
        verbs, "create", "start a staged rollout of a release; prints its id",
        "mcuota rollout create --release 3 --tag canary --stages 1,10,50,100 --halt-failure-rate 0.1",
        description="Offer a release to the devices of its board (and product) that carry every --tag, "
                    "in stages given as cumulative percentages. The next stage opens when the current one is "
                    "full and --advance-success-rate of it succeeded; the rollout halts itself once "
                    "--min-attempts attempts finished and the failed share reached --halt-failure-rate. "
                    "Devices are never offered a version <= the one they run, unless --allow-downgrade.")
    create.add_argument("--release", required=True, type=int, metavar="R", help="release id")
    create.add_argument("--board", help="the release's board (checked; the rollout always targets it)")
    create.add_argument("--tag", action="append", default=[], metavar="T",
                        help="target only devices with this tag (repeatable: all must match)")
    create.add_argument("--stages", type=_stages, default=[1, 10, 50, 100], metavar="P,P,…",
                        help="cumulative percentages (default 1,10,50,100)")
    create.add_argument("--halt-failure-rate", type=_rate, default=0.1, metavar="R", help="default 0.1")
    create.add_argument("--min-attempts", type=int, default=20, metavar="N",
                        help="finished attempts before the halt rule applies (default 20)")
    create.add_argument("--advance-success-rate", type=_rate, default=0.9, metavar="R", help="default 0.9")
    create.add_argument("--allow-downgrade", action="store_true", help="an explicit downgrade rollout")
    create.add_argument("--max-attempts", type=_attempts, default=3, metavar="N",
                        help="attempts per device: a failed device is offered the release again until it "
                             "used N (1..10, default 3); a reverted one never is")
    add_json_option(create)
    add_server_options(create)
    create.set_defaults(handler=_create)

    lst = add_command(verbs, "list", "list rollouts", "mcuota rollout list --json")
    add_json_option(lst)
    add_server_options(lst)
    lst.set_defaults(handler=_list)

    for verb, text in (("status", "show a rollout's stage and counts"), ("pause", "stop offering the update"),
                       ("resume", "offer the update again (also after an automatic halt)"),
                       ("cancel", "end the rollout for good")):
        p = add_command(verbs, verb, text, f"mcuota rollout {verb} 1")
        p.add_argument("rollout", type=int, metavar="ID", help="rollout id")
        add_json_option(p)
        add_server_options(p)
        p.set_defaults(handler=_act, verb=verb)


def _line(r: dict[str, Any]) -> str:
    return (f"rollout {r['id']}: release {r['release_id']} ({r['board']} {r['version']}) {r['state']}, stage "
            f"{r['stage']}/{len(r['stages'])} ({r['stage_percent']}%, cap {r['stage_cap']} of "
            f"{r['targets']} targets); "
            f"admitted {r['admitted']}, succeeded {r['succeeded']}, failed {r['failed']}, in progress "
            f"{r['in_progress']}, retried {r.get('retried', 0)}"
            + (f" — {r['reason']}" if r["reason"] else ""))


def _create(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client

    r = Client(args).call("POST", "/api/v1/rollouts", json={
        "release_id": args.release, "board": args.board, "tags": args.tag, "stages": args.stages,
        "halt_failure_rate": args.halt_failure_rate, "min_attempts": args.min_attempts,
        "advance_success_rate": args.advance_success_rate, "allow_downgrade": args.allow_downgrade,
        "max_attempts": args.max_attempts})
    if args.json:
        print_json(r)
    else:
        print(r["id"])
        print(_line(r), file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client

    found = Client(args).call("GET", "/api/v1/rollouts")
    if args.json:
        print_json(found)
        return 0
    for r in found:
        print(_line(r))
    if not found:
        print("no rollouts")
    return 0


def _act(args: argparse.Namespace) -> int:
    from mcuota.cli.common import print_json
    from mcuota.cli.fleet_client import Client

    client = Client(args)
    if args.verb == "status":
        r = client.call("GET", f"/api/v1/rollouts/{args.rollout}")
    else:
        r = client.call("POST", f"/api/v1/rollouts/{args.rollout}/{args.verb}")
    if args.json:
        print_json(r)
    else:
        print(_line(r))
    return 0

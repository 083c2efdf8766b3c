"""``mcuota serve``: run the update server (HTTP API, seed-002 HTTP flow, MQTT publisher) in the
foreground."""

from __future__ import annotations

import argparse
import os
from typing import Any

from mcuota.cli.common import add_command, int_arg

DEFAULT_DATA_DIR = "mcuota-data"


def register(sub: Any) -> None:
    p = add_command(
        sub, "serve", "run the update server (releases, devices, rollouts; HTTP and MQTT delivery)",
        "mcuota serve --data-dir /var/lib/mcuota --host 0.0.0.0 --port 8080 --workers 2 --no-mqtt",
        description="Run the update server in the foreground. State lives in the data directory: a SQLite "
                    "database (or --database-url postgresql+psycopg://…), the release images stored by "
                    "SHA-256, and, on first start, the admin API key (<data-dir>/admin-api-key, mode 0600) "
                    "that the trust/release/device/rollout commands use. Logs are JSON lines on stderr.")
    p.add_argument("--data-dir", default=os.environ.get("MCUOTA_DATA_DIR", DEFAULT_DATA_DIR), metavar="DIR",
                   help=f"state directory (default $MCUOTA_DATA_DIR or ./{DEFAULT_DATA_DIR})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument("--database-url", default=os.environ.get("MCUOTA_DATABASE_URL"), metavar="URL",
                   help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db (default: SQLite in DIR)")
    mqtt = p.add_mutually_exclusive_group()
    mqtt.add_argument("--mqtt-url", metavar="URL",
                      help="MQTT broker for the publisher (default: embedded broker)")
    mqtt.add_argument("--no-mqtt", action="store_true", help="serve HTTP only")
    p.add_argument("--mqtt-port", type=int, metavar="PORT",
                   help="port of the embedded MQTT broker (default 1883, a free one if taken; 0: any "
                        "free one)")
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert (PEM)")
    p.add_argument("--public-url", metavar="URL", help="base URL devices are told to download from "
                   "(default: the URL each request came to)")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="accept releases without a trusted signature (default: signatures required)")
    p.add_argument("--max-upload", type=int_arg, default=16 * 1024 * 1024, metavar="BYTES",
                   help="largest release upload (default 16M)")
    p.add_argument("--rate-limit", type=float, default=100.0, metavar="PER_SECOND",
                   help="requests per second per client, 0 for none (default 100)")
    p.add_argument("--rate-burst", type=int, default=1000, metavar="N",
                   help="burst allowance per client (default 1000)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes sharing the port (default 1); migrations run once before they "
                        "start, the MQTT publisher runs in worker 0, and a rotated or revoked token is "
                        "refused by every worker within 2 s")
    p.add_argument("--access-log", action="store_true",
                   help="log every request (default: refusals and failures each, successful requests "
                        "summed per route every 10 s)")
    p.add_argument("--log-format", choices=("json", "text"), default="json", help="log lines (default json)")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcuota.errors import UsageError
    from mcuota.server.serve import run
    from mcuota.server.settings import Settings

    if not 0 <= args.port <= 65535:
        raise UsageError(f"port {args.port} is not between 0 and 65535")
    if not 1 <= args.workers <= 64:
        raise UsageError(f"--workers {args.workers} is not between 1 and 64")
    settings = Settings(
        data_dir=Path(args.data_dir), database_url=args.database_url, host=args.host, port=args.port,
        public_url=args.public_url, require_signatures=not args.allow_unsigned,
        max_upload_bytes=args.max_upload,
        rate_limit=args.rate_limit, rate_burst=args.rate_burst, mqtt_url=args.mqtt_url,
        mqtt_enabled=not args.no_mqtt, mqtt_port=args.mqtt_port,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None, workers=args.workers,
        access_log=args.access_log)
    return run(settings, log_format=args.log_format)
